/**
 * Fuzz suite for offline patch application (issue 10): a few thousand generated JSON, merge and
 * strategic merge patches — random and hostile keys, random and broken pointers, deep nesting,
 * wrong types — against sample Nodes and Pods. Each run uses a fixed seed and one random seed,
 * printed in the output; `TETHER_FUZZ_SEED=<n>` replays a random seed.
 *
 * For every case: applyPatch returns a plain JSON object, or throws a TetherError whose Status is a
 * 4xx; the input is unchanged. After the runs: no built-in prototype changed, and the heap has not
 * grown beyond a generous bound.
 */
import { describe, expect, test } from 'bun:test';
import { isTetherError } from '../../shared/errors.ts';
import { statusOf } from '../proxy/error-status.ts';
import { MAX_PATCH_DEPTH, applyPatch, type PatchType } from './patch.ts';

const FIXED_SEED = 0x7e7e0010;
const CASES = 2500;

function seedFromEnv(): number | undefined {
  const raw = process.env.TETHER_FUZZ_SEED;
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`TETHER_FUZZ_SEED must be an integer from 0 to 4294967295, not ${JSON.stringify(raw)}`);
  return n;
}
const RANDOM_SEED = seedFromEnv() ?? crypto.getRandomValues(new Uint32Array(1))[0]!;

/** mulberry32: a small, fast 32-bit generator; the same seed gives the same cases. */
function generator(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const chance = (p: number) => next() < p;
  /** Set per case: hostile cases use prototype names as keys and pointer segments; the others do not. */
  const mode = { hostile: false };
  return { int, pick, chance, mode };
}
type Gen = ReturnType<typeof generator>;

const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__', 'isPrototypeOf', 'length'];
const DIRECTIVE_KEYS = ['$patch', '$retainKeys', '$setElementOrder/conditions', '$setElementOrder/__proto__', '$deleteFromPrimitiveList/finalizers', '$deleteFromPrimitiveList/constructor'];
const FIELD_KEYS = ['status', 'metadata', 'labels', 'conditions', 'addresses', 'images', 'podIPs', 'containerStatuses', 'finalizers', 'type', 'name', 'ip', 'a', '', '~', '/', '-', '0', 'ü'];
const STRINGS = ['', 'Ready', 'True', 'replace', 'delete', 'merge', '__proto__', '-', '~1', '\u0000', 'x'.repeat(300)];

/** Sets an own property even for "__proto__" (as JSON.parse does). */
const put = (o: Record<string, unknown>, k: string, v: unknown) => Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });

function key(g: Gen): string {
  const r = g.int(10);
  if (r < 2 && g.mode.hostile) return g.pick(HOSTILE_KEYS);
  if (r < 4) return g.pick(g.mode.hostile ? DIRECTIVE_KEYS : DIRECTIVE_KEYS.filter((k) => !HOSTILE_KEYS.some((h) => k.endsWith(`/${h}`))));
  return g.pick(FIELD_KEYS);
}

function chain(depth: number, leaf: unknown): unknown {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

function value(g: Gen, depth: number): unknown {
  const r = g.int(depth > 4 ? 6 : 12);
  switch (r) {
    case 0:
      return null;
    case 1:
      return g.chance(0.5);
    case 2:
      return g.pick([0, -1, 1.5, 2 ** 53, -0, 1e308, 10250]);
    case 3:
    case 4:
    case 5:
      return g.pick(STRINGS);
    case 6:
    case 7:
      return Array.from({ length: g.int(4) }, () => value(g, depth + 1));
    case 8: // a list item as the kubelet sends them, sometimes without its key or with a directive
      return Array.from({ length: g.int(4) }, () => {
        const o: Record<string, unknown> = {};
        if (g.chance(0.8)) put(o, g.pick(['type', 'name', 'ip']), g.pick(['Ready', 'MemoryPressure', 'c1', '198.18.0.7', 7]));
        if (g.chance(0.3)) put(o, '$patch', g.pick(['delete', 'replace', 'merge', 5]));
        if (g.chance(0.5)) put(o, key(g), value(g, depth + 2));
        return o;
      });
    case 9: // deep: around the limit, sometimes far past it
      return chain(g.chance(0.9) ? MAX_PATCH_DEPTH - 10 + g.int(20) : 1000 + g.int(4000), value(g, 99));
    default: {
      const o: Record<string, unknown> = {};
      for (let n = g.int(5); n > 0; n--) put(o, key(g), value(g, depth + 1));
      return o;
    }
  }
}

const escape = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** A pointer into the sample (a real path, often), then perhaps broken. */
function pointer(g: Gen, doc: unknown): string {
  const parts: string[] = [];
  let cur = doc;
  while (g.chance(0.75)) {
    if (Array.isArray(cur) && cur.length > 0) {
      const i = g.int(cur.length);
      parts.push(String(i));
      cur = cur[i];
    } else if (cur && typeof cur === 'object' && Object.keys(cur).length > 0) {
      const k = g.pick(Object.keys(cur));
      parts.push(escape(k));
      cur = (cur as Record<string, unknown>)[k];
    } else break;
  }
  const r = g.int(g.mode.hostile ? 12 : 30);
  if (r === 0 && g.mode.hostile) parts.push(g.pick(HOSTILE_KEYS));
  else if (r === 1) parts.push(g.pick(['-', '01', '999999', '-1', '1e3', '~2', '~']));
  else if (r === 2) parts.push(escape(key(g)));
  else if (r === 3 && g.mode.hostile) parts.splice(g.int(parts.length + 1), 0, g.pick(HOSTILE_KEYS));
  const p = parts.map((s) => `/${s}`).join('');
  return r === 4 ? p.slice(1) : p;
}

function jsonPatch(g: Gen, doc: unknown): unknown {
  if (g.chance(0.05)) return value(g, 0);
  return Array.from({ length: 1 + g.int(g.mode.hostile ? 8 : 4) }, () => {
    if (g.chance(0.05)) return value(g, 1);
    const op: Record<string, unknown> = {};
    const name = g.chance(0.95) ? g.pick(['add', 'remove', 'replace', 'move', 'copy', 'test']) : g.pick(['jump', '', 7]);
    put(op, 'op', name);
    put(op, 'path', g.chance(0.97) ? pointer(g, doc) : g.pick([null, 3, ['x']]));
    const wantsValue = name === 'add' || name === 'replace' || name === 'test';
    if (g.chance(wantsValue ? 0.95 : 0.2)) put(op, 'value', g.chance(0.3) ? structuredClone(pickPath(g, doc)) : value(g, 2));
    const wantsFrom = name === 'move' || name === 'copy';
    if (g.chance(wantsFrom ? 0.95 : 0.2)) put(op, 'from', g.chance(0.95) ? pointer(g, doc) : 5);
    if (g.chance(0.05)) put(op, key(g), value(g, 2));
    return op;
  });
}

/** A value found in the sample (so `test` operations sometimes pass). */
function pickPath(g: Gen, doc: unknown): unknown {
  let cur = doc;
  while (cur && typeof cur === 'object' && g.chance(0.6)) {
    const ks = Object.keys(cur);
    if (ks.length === 0) break;
    cur = (cur as Record<string, unknown>)[g.pick(ks)];
  }
  return cur ?? null;
}

function mergeBody(g: Gen, doc: unknown): unknown {
  if (g.chance(0.05)) return value(g, 0);
  const o: Record<string, unknown> = {};
  if (g.chance(0.7)) {
    // Shaped like the sample, so the patch meets real fields and lists.
    const status: Record<string, unknown> = {};
    for (let n = 1 + g.int(4); n > 0; n--) put(status, g.chance(0.7) ? g.pick(['conditions', 'addresses', 'images', 'podIPs', 'containerStatuses', 'phase']) : key(g), value(g, 2));
    if (g.chance(0.3)) put(status, g.pick(DIRECTIVE_KEYS), g.chance(0.7) ? [{ type: 'Ready' }, { name: 'c1' }, 'x'] : value(g, 2));
    put(o, 'status', status);
  }
  if (g.chance(0.3)) put(o, 'metadata', { labels: { [g.pick(FIELD_KEYS)]: g.pick([null, 'v']) } });
  for (let n = g.int(3); n > 0; n--) put(o, key(g), value(g, 1));
  void doc;
  return o;
}

const samples: (() => unknown)[] = [
  () => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'edge-1', uid: 'u-n', labels: { a: '1' }, finalizers: ['f'] },
    status: {
      conditions: [
        { type: 'MemoryPressure', status: 'False' },
        { type: 'Ready', status: 'True' },
      ],
      addresses: [{ type: 'InternalIP', address: '198.18.1.2' }],
      images: [{ names: ['a'], sizeBytes: 1 }],
    },
  }),
  () => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'default', uid: 'u-p' },
    spec: { containers: [{ name: 'c1', image: 'i' }] },
    status: { phase: 'Running', podIPs: [{ ip: '198.18.0.7' }], containerStatuses: [{ name: 'c1', ready: true }] },
  }),
  // Data that names a prototype is legitimate in a cached object (a ConfigMap key may be "__proto__").
  () => JSON.parse('{"metadata":{"name":"cm"},"data":{"__proto__":"v","constructor":"w"},"status":{}}') as unknown,
  () => ({ metadata: { name: 'deep' }, status: chain(MAX_PATCH_DEPTH - 5, 1) }),
  () => ({ metadata: { name: 'empty' } }),
];

const BUILTINS = [Object.prototype, Array.prototype, Function.prototype, String.prototype, Number.prototype];
const builtinShape = () =>
  BUILTINS.map((p) =>
    Object.getOwnPropertyNames(p)
      .sort()
      .map((k) => {
        const d = Object.getOwnPropertyDescriptor(p, k)!;
        return [k, d.value ?? d.get] as const;
      }),
  );

/** Why `v` is not a plain JSON object within the depth limit, or undefined if it is. */
function notPlainJson(v: unknown): string | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'the result is not an object';
  const seen = new Set<object>();
  const stack: [unknown, number][] = [[v, 1]];
  while (stack.length > 0) {
    const [x, depth] = stack.pop()!;
    if (x === null || typeof x === 'string' || typeof x === 'boolean') continue;
    if (typeof x === 'number') {
      if (!Number.isFinite(x)) return 'a number that is not finite';
      continue;
    }
    if (typeof x !== 'object') return `a ${typeof x}`;
    if (depth > MAX_PATCH_DEPTH) return 'nested deeper than the limit';
    if (seen.has(x)) return 'a value shared twice';
    seen.add(x);
    if (Array.isArray(x)) {
      if (Object.getPrototypeOf(x) !== Array.prototype) return 'an array with another prototype';
      for (const y of x) stack.push([y, depth + 1]);
      continue;
    }
    const proto = Object.getPrototypeOf(x) as unknown;
    if (proto !== null && proto !== Object.prototype) return 'an object that is not plain';
    if (Object.getOwnPropertySymbols(x).length > 0) return 'symbol keys';
    for (const k of Object.getOwnPropertyNames(x)) {
      const d = Object.getOwnPropertyDescriptor(x, k)!;
      if (d.get || d.set || !d.enumerable) return `an accessor or hidden property ${JSON.stringify(k)}`;
      stack.push([d.value, depth + 1]);
    }
  }
  return undefined;
}

interface RunResult {
  applied: number;
  refused: number;
  failures: string[];
}

function run(seed: number, cases: number): RunResult {
  const g = generator(seed);
  const result: RunResult = { applied: 0, refused: 0, failures: [] };
  const protoBefore = Object.getOwnPropertyNames(Object.prototype).length;
  for (let i = 0; i < cases && result.failures.length < 5; i++) {
    const sample = g.pick(samples)();
    const type = g.pick<PatchType>(['json', 'merge', 'strategic']);
    g.mode.hostile = g.chance(0.5);
    const generated = type === 'json' ? jsonPatch(g, sample) : mergeBody(g, sample);
    // As a body arrives: JSON text, parsed (so "__proto__" is an own key, as JSON.parse makes it).
    const patch = JSON.parse(JSON.stringify(generated)) as unknown;
    const before = JSON.stringify(sample);
    const where = () => `seed ${seed} case ${i} (${type} patch ${JSON.stringify(patch).slice(0, 300)})`;
    try {
      const out = applyPatch(sample, type, patch);
      const why = notPlainJson(out);
      if (why) result.failures.push(`${where()}: ${why}`);
      result.applied++;
    } catch (e) {
      if (!isTetherError(e)) result.failures.push(`${where()}: threw ${String(e)}`);
      else if (statusOf(e).code < 400 || statusOf(e).code > 499) result.failures.push(`${where()}: ${e.code} maps to ${statusOf(e).code}`);
      result.refused++;
    }
    if (JSON.stringify(sample) !== before) result.failures.push(`${where()}: changed its input`);
    if (Object.getOwnPropertyNames(Object.prototype).length !== protoBefore) result.failures.push(`${where()}: added a property to Object.prototype`);
  }
  return result;
}

describe('patch application fuzz', () => {
  console.log(`patch fuzz: seeds ${FIXED_SEED} (fixed) and ${RANDOM_SEED} (random; replay with TETHER_FUZZ_SEED=${RANDOM_SEED})`);
  const shapeBefore = builtinShape();

  for (const [name, seed] of [
    ['fixed', FIXED_SEED],
    ['random', RANDOM_SEED],
  ] as const) {
    test(`${CASES} generated patches (${name} seed ${seed}): a plain JSON object or a 4xx TetherError, input unchanged`, () => {
      const r = run(seed, CASES);
      expect(r.failures).toEqual([]);
      // Both outcomes are exercised, so the checks above are not vacuous.
      expect(r.applied).toBeGreaterThan(CASES / 10);
      expect(r.refused).toBeGreaterThan(CASES / 10);
    });
  }

  test('no built-in prototype changed during the runs', () => {
    expect(builtinShape()).toEqual(shapeBefore);
    const probe: Record<string, unknown> = {};
    expect(Object.keys(Object.getPrototypeOf(probe) as object)).toEqual([]);
    for (const k of ['warning', 'authorization', 'a', 'status', 'x']) expect(k in probe).toBe(false);
  });

  test('the heap does not grow across repeated runs', () => {
    run(FIXED_SEED, CASES); // warm up
    Bun.gc(true);
    const before = process.memoryUsage().heapUsed;
    for (let k = 0; k < 2; k++) run(FIXED_SEED, CASES);
    Bun.gc(true);
    const grown = process.memoryUsage().heapUsed - before;
    expect(grown).toBeLessThan(64 * 1024 * 1024);
  });
});
