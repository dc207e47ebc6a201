/**
 * Configuration loading for both binaries: a zod schema (defaults and `.describe()` on every
 * field) is filled from, in rising precedence, a YAML/JSON file, the environment and command-line
 * flags, then parsed once. Bad input becomes one TetherError(E_BAD_CONFIG) whose message is
 * zod's readable report, prefixed with where the value came from.
 *
 * Environment names are the prefix plus the key in SCREAMING_SNAKE_CASE, nested keys joined by
 * `__` (TETHER_EDGE_LISTEN, TETHER_EDGE_STORE__DIR). Flags use the key in kebab-case, nested keys
 * joined by `.` (--listen, --store.dir). Values from env and flags are strings: they are turned
 * into the type the schema expects (numbers, booleans, comma-separated lists) before parsing.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ErrorCode, TetherError, messageOf } from './errors.ts';

type Obj = Record<string, unknown>;

export interface LoadConfigOptions {
  /** Path of a YAML or JSON file; absent means none. */
  file?: string;
  /** Environment variables (the entry point passes process.env). */
  env?: Record<string, string | undefined>;
  envPrefix: string;
  /** Flag values keyed by kebab-case path ("store.dir"); undefined entries are ignored. */
  flags?: Record<string, unknown>;
}

export function loadConfig<S extends z.ZodType>(schema: S, opts: LoadConfigOptions): z.infer<S> {
  const fromFile = opts.file ? readConfigFile(opts.file) : {};
  const merged = deepMerge(fromFile, collectEnv(schema, opts.env ?? {}, opts.envPrefix));
  deepMergeInto(merged, collectFlags(schema, opts.flags ?? {}));
  const result = schema.safeParse(merged);
  if (!result.success) {
    const where = opts.file ? ` (file ${opts.file}, environment ${opts.envPrefix}*, flags)` : '';
    throw new TetherError(
      ErrorCode.BadConfig,
      `invalid configuration${where}:\n${z.prettifyError(result.error)}`,
      { cause: result.error },
    );
  }
  return result.data;
}

function readConfigFile(path: string): Obj {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TetherError(ErrorCode.BadConfig, `read config file ${path}: ${messageOf(e)}`, { cause: e });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new TetherError(ErrorCode.BadConfig, `parse config file ${path}: ${messageOf(e)}`, { cause: e });
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new TetherError(ErrorCode.BadConfig, `parse config file ${path}: expected a mapping of keys to values`);
  }
  return doc as Obj;
}

/** The object schema under wrappers such as default/optional, or undefined for a leaf. */
function inner(s: z.ZodType): z.ZodType {
  let cur: z.ZodType = s;
  for (;;) {
    const def = cur.def as { type: string; innerType?: z.ZodType };
    if ((def.type === 'default' || def.type === 'optional' || def.type === 'prefault' || def.type === 'nullable') && def.innerType) {
      cur = def.innerType;
    } else return cur;
  }
}

function shapeOf(s: z.ZodType): Record<string, z.ZodType> | undefined {
  const i = inner(s);
  return i.def.type === 'object' ? (i as z.ZodObject).shape : undefined;
}

const snake = (k: string) => k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
const kebab = (k: string) => k.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();

/** Turns a string from env or a flag into what the leaf schema expects. */
function coerce(leaf: z.ZodType, raw: unknown): unknown {
  if (typeof raw !== 'string') return raw;
  const t = inner(leaf).def.type;
  if (t === 'number') return raw.trim() === '' ? raw : Number.isNaN(Number(raw)) ? raw : Number(raw);
  if (t === 'boolean') return raw === 'true' || raw === '1' ? true : raw === 'false' || raw === '0' ? false : raw;
  if (t === 'array') {
    const element = (inner(leaf) as z.ZodArray<z.ZodType>).element;
    return raw
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x !== '')
      .map((x) => coerce(element, x));
  }
  return raw;
}

function collectEnv(schema: z.ZodType, env: Record<string, string | undefined>, prefix: string): Obj {
  const out: Obj = {};
  const walk = (s: z.ZodType, path: string[], target: Obj) => {
    const shape = shapeOf(s);
    if (!shape) return;
    for (const [k, child] of Object.entries(shape)) {
      const name = prefix + [...path, k].map(snake).join('__');
      if (shapeOf(child)) {
        const sub: Obj = {};
        walk(child, [...path, k], sub);
        if (Object.keys(sub).length) target[k] = sub;
      } else if (env[name] !== undefined) {
        target[k] = coerce(child, env[name]);
      }
    }
  };
  walk(schema, [], out);
  return out;
}

function collectFlags(schema: z.ZodType, flags: Record<string, unknown>): Obj {
  const out: Obj = {};
  const walk = (s: z.ZodType, path: string[], target: Obj) => {
    const shape = shapeOf(s);
    if (!shape) return;
    for (const [k, child] of Object.entries(shape)) {
      const name = [...path, k].map(kebab).join('.');
      if (shapeOf(child)) {
        const sub: Obj = {};
        walk(child, [...path, k], sub);
        if (Object.keys(sub).length) target[k] = sub;
      } else if (flags[name] !== undefined) {
        target[k] = coerce(child, flags[name]);
      }
    }
  };
  walk(schema, [], out);
  return out;
}

function isPlain(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(a: Obj, b: Obj): Obj {
  const out: Obj = { ...a };
  deepMergeInto(out, b);
  return out;
}

function deepMergeInto(target: Obj, src: Obj): void {
  for (const [k, v] of Object.entries(src)) {
    const cur = target[k];
    if (isPlain(cur) && isPlain(v)) target[k] = deepMerge(cur, v);
    else target[k] = v;
  }
}

/** Every flag path ("store.dir") a schema accepts, with its description, for --help. */
export function flagDescriptions(schema: z.ZodType): { name: string; description: string }[] {
  const out: { name: string; description: string }[] = [];
  const walk = (s: z.ZodType, path: string[]) => {
    const shape = shapeOf(s);
    if (!shape) return;
    for (const [k, child] of Object.entries(shape)) {
      if (shapeOf(child)) walk(child, [...path, k]);
      else out.push({ name: [...path, k].map(kebab).join('.'), description: child.description ?? '' });
    }
  };
  walk(schema, []);
  return out;
}
