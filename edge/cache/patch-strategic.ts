/**
 * Kubernetes strategic merge for the fields kubelets and kube-proxy patch, applied in place to a
 * prototype-free copy of the object (patch.ts makes it and checks both inputs first): lists merged
 * by their patchMergeKey (conditions and addresses by `type`, podIPs/hostIPs by `ip`,
 * containerStatuses and friends by `name`, images replaced), with the `$patch`, `$setElementOrder`,
 * `$retainKeys` and `$deleteFromPrimitiveList` directives.
 *
 * Linear: nothing of the object is copied again, list items are found through a Map of their merge
 * keys (not by scanning the list for each patch item), and directive lists become Sets.
 */
import { bad, canonical, cloneJson, isObj, newObj, own, type Json, type Obj } from './patch-guard.ts';

/** patchMergeKey of the list fields kubelets and kube-proxy patch, by field name (as in the core/v1 types). */
const MERGE_KEYS: ReadonlyMap<string, string> = new Map([
  ['conditions', 'type'],
  ['addresses', 'type'],
  ['podIPs', 'ip'],
  ['hostIPs', 'ip'],
  ['containers', 'name'],
  ['initContainers', 'name'],
  ['ephemeralContainers', 'name'],
  ['containerStatuses', 'name'],
  ['initContainerStatuses', 'name'],
  ['ephemeralContainerStatuses', 'name'],
  ['volumes', 'name'],
  ['volumeMounts', 'mountPath'],
  ['env', 'name'],
  ['ports', 'containerPort'],
  ['tolerations', 'key'],
  ['taints', 'key'],
  ['ownerReferences', 'uid'],
  ['volumesAttached', 'name'],
  ['resourceClaimStatuses', 'name'],
]);
/** Lists replaced as a whole even though their items are objects. */
const REPLACE_LISTS: ReadonlySet<string> = new Set(['images', 'volumesInUse', 'finalizers']);
const SET_ORDER = '$setElementOrder/';
const DELETE_FROM = '$deleteFromPrimitiveList/';

export function strategicInto(target: Json, patch: Json): Json {
  if (!isObj(patch)) return cloneJson(patch);
  const directive = own(patch, '$patch');
  if (directive === 'replace') return stripDirectives(patch);
  if (directive === 'delete') return null;
  const out = isObj(target) ? target : newObj();
  for (const k of Object.keys(patch)) {
    const v = patch[k]!;
    if (k === '$patch' || k === '$retainKeys' || k.startsWith(SET_ORDER)) continue;
    if (k.startsWith(DELETE_FROM)) {
      const field = k.slice(DELETE_FROM.length);
      const cur = own(out, field);
      if (Array.isArray(cur) && Array.isArray(v)) {
        const drop = new Set(v.map(canonical));
        out[field] = cur.filter((x) => !drop.has(canonical(x)));
      }
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    const cur = own(out, k);
    if (Array.isArray(v)) {
      const key = MERGE_KEYS.get(k);
      const mergeable = key !== undefined && !REPLACE_LISTS.has(k) && v.every(isObj);
      const list = mergeable ? mergeList(Array.isArray(cur) ? cur : [], v as Obj[], key, k) : (cloneJson(v) as Json[]);
      const order = own(patch, `${SET_ORDER}${k}`);
      out[k] = Array.isArray(order) && key !== undefined ? reorder(list, order, key) : list;
    } else if (isObj(v)) {
      const merged = strategicInto(cur ?? null, v);
      if (merged === null) delete out[k];
      else out[k] = merged;
    } else {
      out[k] = v;
    }
  }
  const retain = own(patch, '$retainKeys');
  if (Array.isArray(retain)) {
    const keep = new Set(retain.filter((x): x is string => typeof x === 'string'));
    for (const k of Object.keys(out)) if (!keep.has(k)) delete out[k];
  }
  return out;
}

/** The identity of a list item: its merge key's value (items and order entries may be bare values). */
const idOf = (x: Json, key: string): string => {
  const id = isObj(x) ? own(x, key) : x;
  return id === undefined ? '' : canonical(id); // canonical text is never empty
};

/**
 * Merges patch items into `cur` (part of the copy, changed in place) by merge key: an item deletes
 * (`$patch: delete`), merges into, or is appended after the first live item with its key.
 */
function mergeList(cur: Json[], patch: Obj[], key: string, field: string): Json[] {
  const items: Json[] = cur;
  const alive: boolean[] = cur.map(() => true);
  // Positions of the live items with each key, oldest first; `head` skips the deleted ones.
  const byId = new Map<string, { at: number[]; head: number }>();
  const slotsOf = (id: string) => {
    let s = byId.get(id);
    if (!s) byId.set(id, (s = { at: [], head: 0 }));
    return s;
  };
  items.forEach((x, i) => {
    if (isObj(x) && own(x, key) !== undefined) slotsOf(idOf(x, key)).at.push(i);
  });
  for (const item of patch) {
    if (own(item, key) === undefined) throw bad(`/${field}: an item has no merge key "${key}"`);
    const s = slotsOf(idOf(item, key));
    const i = s.head < s.at.length ? s.at[s.head]! : -1;
    if (own(item, '$patch') === 'delete') {
      if (i >= 0) {
        alive[i] = false;
        s.head++;
      }
      continue;
    }
    if (i >= 0) items[i] = strategicInto(items[i]!, item);
    else {
      s.at.push(items.length);
      items.push(stripDirectives(item));
      alive.push(true);
    }
  }
  return items.filter((_, i) => alive[i]);
}

/** Sorts items as `order` lists their keys; items it does not name keep their relative order, last. */
function reorder(items: Json[], order: Json[], key: string): Json[] {
  const rank = new Map<string, number>();
  order.forEach((o, i) => rank.set(idOf(o, key), i));
  return items
    .map((item, i) => ({ item, i, r: rank.get(idOf(item, key)) ?? Infinity }))
    .sort((a, b) => a.r - b.r || a.i - b.i)
    .map((x) => x.item);
}

/** A prototype-free copy of a patch value without its `$` directives. */
function stripDirectives(v: Json): Json {
  if (Array.isArray(v)) return v.map(stripDirectives);
  if (!isObj(v)) return v;
  const out = newObj();
  for (const k of Object.keys(v)) if (!k.startsWith('$')) out[k] = stripDirectives(v[k]!);
  return out;
}
