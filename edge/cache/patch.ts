/**
 * Applying PATCH bodies to cached objects while offline, as the apiserver would:
 *   - application/merge-patch+json: RFC 7386 JSON merge patch;
 *   - application/json-patch+json: RFC 6902 JSON patch (add, remove, replace, move, copy, test);
 *   - application/strategic-merge-patch+json: Kubernetes strategic merge for the fields kubelets patch
 *     (lists merged by their patchMergeKey: conditions and addresses by `type`, podIPs/hostIPs by `ip`,
 *     containerStatuses and friends by `name`, images replaced), with the `$patch`, `$setElementOrder`,
 *     `$retainKeys` and `$deleteFromPrimitiveList` directives.
 * Errors are TetherError(E_BAD_REQUEST) naming the operation that failed.
 */
import { ErrorCode, TetherError } from '../../shared/errors.ts';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

export type PatchType = 'merge' | 'json' | 'strategic';

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const clone = <T>(v: T): T => structuredClone(v);
const bad = (msg: string) => new TetherError(ErrorCode.BadRequest, `apply patch: ${msg}`);

export function patchTypeOf(contentType: string | undefined): PatchType | undefined {
  const ct = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (ct === 'application/merge-patch+json') return 'merge';
  if (ct === 'application/json-patch+json') return 'json';
  if (ct === 'application/strategic-merge-patch+json') return 'strategic';
  return undefined;
}

export function applyPatch<T>(target: T, type: PatchType, patch: unknown): T {
  if (type === 'merge') return mergePatch(target as Json, patch as Json) as T;
  if (type === 'json') return jsonPatch(target as Json, patch) as T;
  return strategicMerge(target as Json, patch as Json, []) as T;
}

export function mergePatch(target: Json, patch: Json): Json {
  if (!isObj(patch)) return clone(patch);
  const out: Obj = isObj(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k] ?? null, v);
  }
  return out;
}

// ---- RFC 6902 ----

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw bad(`JSON pointer ${JSON.stringify(path)} must start with "/"`);
  return path
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: Json, parts: string[], op: string): { parent: Obj | Json[]; key: string } {
  let cur: Json = doc;
  for (const p of parts.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(p)] ?? null;
    else if (isObj(cur)) cur = cur[p] ?? null;
    else cur = null;
    if (cur === null) throw bad(`${op}: path /${parts.join('/')} does not exist`);
  }
  if (!Array.isArray(cur) && !isObj(cur)) throw bad(`${op}: path /${parts.join('/')} does not exist`);
  return { parent: cur, key: parts[parts.length - 1]! };
}

function getAt(doc: Json, parts: string[], op: string): Json {
  let cur: Json = doc;
  for (const p of parts) {
    const next: Json | undefined = Array.isArray(cur) ? cur[Number(p)] : isObj(cur) ? cur[p] : undefined;
    if (next === undefined) throw bad(`${op}: path /${parts.join('/')} does not exist`);
    cur = next;
  }
  return cur;
}

function arrayIndex(arr: Json[], key: string, op: string, forInsert: boolean): number {
  if (key === '-' && forInsert) return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(key)) throw bad(`${op}: ${JSON.stringify(key)} is not an array index`);
  const i = Number(key);
  if (i > arr.length || (!forInsert && i === arr.length)) throw bad(`${op}: index ${i} is out of range`);
  return i;
}

function addAt(doc: Json, parts: string[], value: Json, op: string): Json {
  if (parts.length === 0) return clone(value);
  const { parent, key } = parentOf(doc, parts, op);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, op, true), 0, clone(value));
  else parent[key] = clone(value);
  return doc;
}

function removeAt(doc: Json, parts: string[], op: string): Json {
  if (parts.length === 0) throw bad(`${op}: cannot remove the whole document`);
  const { parent, key } = parentOf(doc, parts, op);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, op, false), 1);
  else {
    if (!(key in parent)) throw bad(`${op}: path /${parts.join('/')} does not exist`);
    delete parent[key];
  }
  return doc;
}

export function jsonPatch(target: Json, ops: unknown): Json {
  if (!Array.isArray(ops)) throw bad('a JSON patch must be an array of operations');
  let doc = clone(target);
  ops.forEach((raw, i) => {
    if (!isObj(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') {
      throw bad(`operation ${i} needs "op" and "path"`);
    }
    const op = `${raw.op} ${raw.path}`;
    const parts = pointer(raw.path);
    switch (raw.op) {
      case 'add':
        doc = addAt(doc, parts, (raw.value ?? null) as Json, op);
        break;
      case 'remove':
        doc = removeAt(doc, parts, op);
        break;
      case 'replace':
        getAt(doc, parts, op);
        doc = parts.length === 0 ? clone((raw.value ?? null) as Json) : addAt(removeAt(doc, parts, op), parts, (raw.value ?? null) as Json, op);
        break;
      case 'move':
      case 'copy': {
        if (typeof raw.from !== 'string') throw bad(`${op}: needs "from"`);
        const from = pointer(raw.from);
        const value = clone(getAt(doc, from, op));
        if (raw.op === 'move') doc = removeAt(doc, from, op);
        doc = addAt(doc, parts, value, op);
        break;
      }
      case 'test':
        if (JSON.stringify(getAt(doc, parts, op)) !== JSON.stringify(raw.value ?? null)) throw bad(`${op}: test failed`);
        break;
      default:
        throw bad(`operation ${i}: unknown op ${JSON.stringify(raw.op)}`);
    }
  });
  return doc;
}

// ---- strategic merge ----

/** patchMergeKey of the list fields kubelets and kube-proxy patch, by field name (as in the core/v1 types). */
const MERGE_KEYS: Record<string, string> = {
  conditions: 'type',
  addresses: 'type',
  podIPs: 'ip',
  hostIPs: 'ip',
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  containerStatuses: 'name',
  initContainerStatuses: 'name',
  ephemeralContainerStatuses: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  env: 'name',
  ports: 'containerPort',
  tolerations: 'key',
  taints: 'key',
  ownerReferences: 'uid',
  volumesAttached: 'name',
  resourceClaimStatuses: 'name',
};
/** Lists replaced as a whole even though their items are objects. */
const REPLACE_LISTS = new Set(['images', 'volumesInUse', 'finalizers']);

function strategicMerge(target: Json, patch: Json, path: string[]): Json {
  if (!isObj(patch)) return clone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _, ...rest } = patch;
    return stripDirectives(rest);
  }
  if (patch.$patch === 'delete') return null;
  const out: Obj = isObj(target) ? clone(target) : {};
  const retain = patch.$retainKeys;
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys') continue;
    if (k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const cur = out[field];
      if (Array.isArray(cur) && Array.isArray(v)) out[field] = cur.filter((x) => !v.some((d) => JSON.stringify(d) === JSON.stringify(x)));
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    const cur = out[k];
    if (Array.isArray(v)) {
      const key = MERGE_KEYS[k];
      out[k] = key && !REPLACE_LISTS.has(k) && v.every((x) => isObj(x)) ? mergeList(Array.isArray(cur) ? cur : [], v as Obj[], key, [...path, k]) : clone(v);
      const order = patch[`$setElementOrder/${k}`];
      if (Array.isArray(order) && key) out[k] = reorder(out[k] as Obj[], order, key);
    } else if (isObj(v)) {
      const merged = strategicMerge(cur ?? null, v, [...path, k]);
      if (merged === null) delete out[k];
      else out[k] = merged;
    } else {
      out[k] = v;
    }
  }
  if (Array.isArray(retain)) {
    for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  }
  return out;
}

function mergeList(cur: Json[], patch: Obj[], key: string, path: string[]): Json[] {
  const out = clone(cur);
  for (const item of patch) {
    const id = item[key];
    if (id === undefined) throw bad(`/${path.join('/')}: an item has no merge key "${key}"`);
    const i = out.findIndex((x) => isObj(x) && JSON.stringify(x[key]) === JSON.stringify(id));
    if (item.$patch === 'delete') {
      if (i >= 0) out.splice(i, 1);
      continue;
    }
    if (i >= 0) out[i] = strategicMerge(out[i]!, item, path);
    else out.push(stripDirectives(item));
  }
  return out;
}

function reorder(items: Obj[], order: Json[], key: string): Obj[] {
  const rank = new Map(order.map((o, i) => [JSON.stringify(isObj(o) ? o[key] : o), i]));
  return [...items].sort((a, b) => (rank.get(JSON.stringify(a[key])) ?? Infinity) - (rank.get(JSON.stringify(b[key])) ?? Infinity));
}

function stripDirectives(v: Json): Json {
  if (Array.isArray(v)) return v.map(stripDirectives);
  if (!isObj(v)) return v;
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('$')) out[k] = stripDirectives(x);
  return out;
}
