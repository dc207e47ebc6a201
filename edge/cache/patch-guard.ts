/**
 * The limits every offline patch is held to, and the JSON helpers the patch algorithms share.
 *
 * Contract: `checkTree` walks a value once, without recursion, and refuses (TetherError
 * E_BAD_REQUEST, a 400 Status) anything that is not plain JSON, anything nested deeper than
 * MAX_PATCH_DEPTH, and — for a patch — any object key that names a prototype (`__proto__`,
 * `constructor`, `prototype`), including the field part of `$setElementOrder/…` and
 * `$deleteFromPrimitiveList/…` directives. Only after both the cached object and the patch have
 * passed it do the (recursive) algorithms run, so their recursion depth is bounded by
 * MAX_PATCH_DEPTH and never reaches the engine's stack limit.
 *
 * Every object the algorithms build is `Object.create(null)` (see `cloneJson` and `newObj`): a key
 * from a patch or from the cache lands as an own data property, never on a prototype.
 */
import { ErrorCode, TetherError } from '../../shared/errors.ts';

export type Json = null | boolean | number | string | Json[] | Obj;
export type Obj = { [k: string]: Json };

/**
 * Containers nested inside one another (`{"a":{"b":1}}` is 2). Node and Pod objects, managedFields
 * included, are about 15 deep; the apiserver's JSON decoder stops at 10,000, which would let a
 * 60 KB body be 10,000 levels deep. 100 keeps a wide margin over real objects and keeps the
 * algorithms' recursion far below the engine's stack.
 */
export const MAX_PATCH_DEPTH = 100;
/** As the apiserver's maxJSONPatchOperations. */
export const MAX_JSON_PATCH_OPERATIONS = 10_000;
/**
 * Work a JSON patch may do beyond reading its input once: values copied by `copy`, compared by
 * `test`, array elements shifted by `add`/`remove` (one unit each). Bounds what a short patch can
 * make of a large object (a `copy` that doubles the document, repeated).
 */
export const MAX_JSON_PATCH_WORK = 2_000_000;

/** Keys that would reach a prototype if they were ever used on an ordinary object. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);
const DIRECTIVE_PREFIXES = ['$setElementOrder/', '$deleteFromPrimitiveList/'];

export const bad = (msg: string) => new TetherError(ErrorCode.BadRequest, `apply patch: ${msg}`);
/** A well-formed JSON-patch operation that cannot be applied to the object: 422, as the apiserver answers. */
export const unprocessable = (msg: string) => new TetherError(ErrorCode.Invalid, `apply patch: ${msg}`);

export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
export const newObj = (): Obj => Object.create(null) as Obj;
export const has = (o: Obj, k: string): boolean => Object.hasOwn(o, k);
/** An own property, never an inherited one. */
export const own = (o: Obj, k: string): Json | undefined => (Object.hasOwn(o, k) ? o[k] : undefined);

/** The forbidden name a key refers to, if any (directive keys refer to the field after the slash). */
export function forbiddenIn(key: string): string | undefined {
  if (FORBIDDEN_KEYS.has(key)) return key;
  for (const p of DIRECTIVE_PREFIXES) if (key.startsWith(p) && FORBIDDEN_KEYS.has(key.slice(p.length))) return key.slice(p.length);
  return undefined;
}

export interface CheckOptions {
  /** Named in errors: "the patch", "the cached object", "the patched object". */
  what: string;
  /** Refuse keys naming a prototype (patches only: cached data may hold such keys as plain data). */
  refuseForbiddenKeys: boolean;
}

interface Visit {
  v: unknown;
  depth: number;
  parent: Visit | undefined;
  key: string;
}

/** The JSON pointer of a visited value, built only for an error message. */
function pointerOf(at: Visit): string {
  const parts: string[] = [];
  for (let n: Visit | undefined = at; n?.parent; n = n.parent) parts.push(n.key.replace(/~/g, '~0').replace(/\//g, '~1'));
  const p = parts.reverse().join('/');
  return p === '' ? '/' : `/${p.length > 200 ? `${p.slice(0, 200)}…` : p}`;
}

/** Walks `root` once, iteratively; returns the number of values in it. */
export function checkTree(root: unknown, opts: CheckOptions): number {
  const stack: Visit[] = [{ v: root, depth: 0, parent: undefined, key: '' }];
  let count = 0;
  while (stack.length > 0) {
    const n = stack.pop()!;
    const { v, depth } = n;
    count++;
    if (v === null || typeof v === 'boolean' || typeof v === 'string') continue;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw bad(`${opts.what} holds a number that is not finite at ${pointerOf(n)}`);
      continue;
    }
    if (typeof v !== 'object') throw bad(`${opts.what} is not JSON: ${typeof v} at ${pointerOf(n)}`);
    if (depth >= MAX_PATCH_DEPTH) throw bad(`${opts.what} is nested more than ${MAX_PATCH_DEPTH} levels deep (at ${pointerOf(n)})`);
    if (Array.isArray(v)) {
      if (Object.keys(v).length !== v.length) throw bad(`${opts.what} is not JSON: a sparse array at ${pointerOf(n)}`);
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], depth: depth + 1, parent: n, key: String(i) });
      continue;
    }
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null) throw bad(`${opts.what} is not JSON: an object that is not plain at ${pointerOf(n)}`);
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    for (let i = keys.length - 1; i >= 0; i--) {
      const k = keys[i]!;
      if (opts.refuseForbiddenKeys) {
        const f = forbiddenIn(k);
        if (f !== undefined) throw bad(`${opts.what} names ${JSON.stringify(f)} at ${pointerOf(n)}; such keys are refused`);
      }
      stack.push({ v: o[k], depth: depth + 1, parent: n, key: k });
    }
  }
  return count;
}

/** Copies a checked JSON value into prototype-free objects (depth is bounded by checkTree). */
export function cloneJson(v: Json): Json {
  if (Array.isArray(v)) return v.map(cloneJson);
  if (!isObj(v)) return v;
  const out = newObj();
  for (const k of Object.keys(v)) out[k] = cloneJson(v[k]!);
  return out;
}

/** A canonical text of a JSON value (object keys sorted), for set membership and equality. */
export function canonical(v: Json): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (!isObj(v)) return JSON.stringify(v);
  return `{${Object.keys(v)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(v[k]!)}`)
    .join(',')}}`;
}
