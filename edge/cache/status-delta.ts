/**
 * Status deltas: what a run of offline writes changed in a Node's or Pod's `status`, as the
 * `status` of one strategic-merge patch. The outbox keeps one per object, so the replay sends the
 * newest status once instead of every intermediate one, and touches only the fields the node
 * changed (a condition another controller set upstream meanwhile is left alone).
 *
 *   statusDelta(before, after)  the two-way diff: changed keys (recursively for maps), `null` for a
 *                               removed key; lists the apiserver merges by key (`conditions` by
 *                               type, …) element by element, `{"$patch":"delete"}` for a removed
 *                               element; any other list whole.
 *   composeDelta(older, newer)  one delta with the effect of applying both in order.
 *   liveCover(...)              which parts of status a live write sets: every field its body
 *                               names (for a keyed list, the elements it names); all of status
 *                               for a PUT, or a body that cannot be read.
 *   trimDelta(delta, cover)     the delta without what a live write covers: the rest is still the
 *                               newest the node wrote, and sending it cannot undo the live write.
 *
 * Keys come from the request bodies of a hostile local client: objects are built without
 * prototypes and `__proto__`, `constructor` and `prototype` are never copied.
 */

export type StatusDelta = Record<string, unknown>;

/** Lists in status that strategic merge patches merge by a key (from the Kubernetes API types). */
const MERGE_KEYS: Record<string, Record<string, string>> = {
  'v1/pods': { conditions: 'type', podIPs: 'ip', hostIPs: 'ip', resourceClaimStatuses: 'name' },
  'v1/nodes': { conditions: 'type', addresses: 'type' },
};

const UNSAFE = new Set(['__proto__', 'constructor', 'prototype']);
const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const blank = (): Record<string, unknown> => Object.create(null) as Record<string, unknown>;
const keysOf = (o: Record<string, unknown>) => Object.keys(o).filter((k) => !UNSAFE.has(k));

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i]));
  if (isMap(a) && isMap(b)) {
    const ka = keysOf(a);
    return ka.length === keysOf(b).length && ka.every((k) => Object.hasOwn(b, k) && equal(a[k], b[k]));
  }
  return false;
}

function diffMap(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = blank();
  for (const k of keysOf(b)) {
    if (Object.hasOwn(a, k) && equal(a[k], b[k])) continue;
    out[k] = isMap(a[k]) && isMap(b[k]) ? diffMap(a[k] as Record<string, unknown>, b[k] as Record<string, unknown>) : b[k];
  }
  for (const k of keysOf(a)) if (!Object.hasOwn(b, k)) out[k] = null;
  return out;
}

function byKey(list: unknown[], key: string): Map<string, Record<string, unknown>> | undefined {
  const m = new Map<string, Record<string, unknown>>();
  for (const e of list) {
    if (!isMap(e) || typeof e[key] !== 'string' || m.has(e[key] as string)) return undefined;
    m.set(e[key] as string, e);
  }
  return m;
}

function diffKeyed(a: unknown, b: unknown, key: string): unknown[] | undefined | 'whole' {
  const am = Array.isArray(a) ? byKey(a, key) : a === undefined ? new Map() : undefined;
  const bm = Array.isArray(b) ? byKey(b, key) : undefined;
  if (!am || !bm) return 'whole';
  const out: unknown[] = [];
  for (const [k, e] of bm) {
    const old = am.get(k);
    if (!old) out.push(e);
    else if (!equal(old, e)) out.push({ ...diffMap(old, e), [key]: k });
  }
  for (const k of am.keys()) if (!bm.has(k)) out.push({ [key]: k, $patch: 'delete' });
  return out.length ? out : undefined;
}

export function statusDelta(gvr: string, before: unknown, after: unknown): StatusDelta {
  const a = isMap(before) ? before : {};
  const b = isMap(after) ? after : {};
  const keyed = MERGE_KEYS[gvr] ?? {};
  const out = blank();
  for (const k of keysOf(b)) {
    if (Object.hasOwn(a, k) && equal(a[k], b[k])) continue;
    const key = keyed[k];
    if (key) {
      const d = diffKeyed(a[k], b[k], key);
      if (d === 'whole') out[k] = b[k];
      else if (d) out[k] = d;
      continue;
    }
    out[k] = isMap(a[k]) && isMap(b[k]) ? diffMap(a[k] as Record<string, unknown>, b[k] as Record<string, unknown>) : b[k];
  }
  for (const k of keysOf(a)) if (!Object.hasOwn(b, k)) out[k] = null;
  return out;
}

function composeMap(older: Record<string, unknown>, newer: Record<string, unknown>): Record<string, unknown> {
  const out = blank();
  for (const k of keysOf(older)) out[k] = older[k];
  for (const k of keysOf(newer)) {
    const o = out[k];
    const n = newer[k];
    out[k] = isMap(o) && isMap(n) ? composeMap(o, n) : n;
  }
  return out;
}

function composeKeyed(older: unknown, newer: unknown, key: string): unknown {
  const om = Array.isArray(older) ? byKey(older, key) : undefined;
  const nm = Array.isArray(newer) ? byKey(newer, key) : undefined;
  if (!om || !nm) return newer; // a whole list (or null) replaces whatever came before
  const out = new Map(om);
  for (const [k, n] of nm) {
    const o = out.get(k);
    out.set(k, o && o.$patch !== 'delete' && n.$patch !== 'delete' ? { ...composeMap(o, n) } : n);
  }
  return [...out.values()];
}

export function composeDelta(gvr: string, older: StatusDelta, newer: StatusDelta): StatusDelta {
  const keyed = MERGE_KEYS[gvr] ?? {};
  const out = blank();
  for (const k of keysOf(older)) out[k] = older[k];
  for (const k of keysOf(newer)) {
    const o = out[k];
    const n = newer[k];
    const key = keyed[k];
    if (key && Array.isArray(o) && Array.isArray(n)) out[k] = composeKeyed(o, n, key);
    else out[k] = isMap(o) && isMap(n) ? composeMap(o, n) : n;
  }
  return out;
}

export const isEmptyDelta = (d: StatusDelta): boolean => keysOf(d).length === 0;

/** What a live status write sets: all of status, or per field all of it or the keyed elements named. */
export type Cover = 'all' | Map<string, 'all' | Set<string>>;

/** `patchType` as the request parser names it: 'strategic-merge-patch', 'merge-patch', 'json-patch', … */
export function liveCover(gvr: string, method: string, patchType: string | undefined, body: string | undefined): Cover {
  if (method !== 'PATCH' || body === undefined) return 'all';
  const type = patchType === 'strategic-merge-patch' || patchType === 'merge-patch' || patchType === 'json-patch' ? patchType : undefined;
  if (!type) return 'all';
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return 'all';
  }
  const out = new Map<string, 'all' | Set<string>>();
  if (type === 'json-patch') {
    if (!Array.isArray(parsed)) return 'all';
    for (const op of parsed) {
      const path = isMap(op) && typeof op.path === 'string' ? op.path : undefined;
      const from = isMap(op) && typeof op.from === 'string' ? op.from : undefined;
      for (const p of [path, from]) {
        if (p === undefined) continue;
        if (p === '/status' || p === '' || p === '/') return 'all';
        const m = /^\/status\/([^/]+)/.exec(p);
        if (m) out.set(m[1]!.replace(/~1/g, '/').replace(/~0/g, '~'), 'all');
      }
    }
    return out;
  }
  if (!isMap(parsed)) return 'all';
  const status = parsed.status;
  if (status === null) return 'all';
  if (status === undefined) return out;
  if (!isMap(status)) return 'all';
  const keyed = type === 'strategic-merge-patch' ? (MERGE_KEYS[gvr] ?? {}) : {};
  for (const k of keysOf(status)) {
    if (k.startsWith('$')) continue; // $setElementOrder/…, $retainKeys: directives, not data
    const key = keyed[k];
    const v = status[k];
    const elems = key && Array.isArray(v) ? v.map((e) => (isMap(e) && typeof e[key] === 'string' ? (e[key] as string) : undefined)) : undefined;
    out.set(k, elems && elems.every((e) => e !== undefined) ? new Set(elems as string[]) : 'all');
  }
  return out;
}

export function trimDelta(gvr: string, delta: StatusDelta, cover: Cover): StatusDelta {
  if (cover === 'all') return blank();
  const keyed = MERGE_KEYS[gvr] ?? {};
  const out = blank();
  for (const k of keysOf(delta)) {
    const c = cover.get(k);
    if (c === undefined) {
      out[k] = delta[k];
      continue;
    }
    const key = keyed[k];
    const v = delta[k];
    if (c === 'all' || !key || !Array.isArray(v)) continue;
    const rest = v.filter((e) => !(isMap(e) && typeof e[key] === 'string' && c.has(e[key] as string)));
    if (rest.length) out[k] = rest;
  }
  return out;
}
