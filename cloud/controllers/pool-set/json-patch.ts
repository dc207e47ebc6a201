/**
 * The JSON patch operations a PoolSet tweak may use (RFC 6902 add, replace, remove) on a plain
 * JSON document, in place. Each returns the concrete pointer it wrote (`-` resolved to the index
 * of the appended element), which the tweak renderer uses to detect overlapping tweaks.
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

export function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new Error(`${pointer}: a JSON pointer starts with "/"`);
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

export function formatPointer(segments: readonly string[]): string {
  return segments.map((s) => '/' + s.replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

function parentOf(doc: JsonValue, segs: string[], pointer: string): JsonValue[] | { [k: string]: JsonValue } {
  let cur: JsonValue = doc;
  for (let i = 0; i < segs.length - 1; i++) {
    const s = segs[i]!;
    const next: JsonValue | undefined = Array.isArray(cur) ? cur[index(s, cur.length - 1, pointer)] : cur && typeof cur === 'object' ? cur[s] : undefined;
    if (next === undefined || next === null || typeof next !== 'object') {
      throw new Error(`${pointer}: ${formatPointer(segs.slice(0, i + 1))} does not exist`);
    }
    cur = next;
  }
  if (cur === null || typeof cur !== 'object') throw new Error(`${pointer}: parent is not an object or array`);
  return cur;
}

function index(s: string, max: number, pointer: string): number {
  if (!/^(0|[1-9][0-9]*)$/.test(s) || Number(s) > max) throw new Error(`${pointer}: ${s} is not an index of the array (0..${max})`);
  return Number(s);
}

export type PatchOp = { op: 'add' | 'replace'; path: string; value: JsonValue } | { op: 'remove'; path: string };

/** Applies one operation to `doc` in place; returns the concrete path written. Throws with a readable message. */
export function applyOp(doc: JsonValue, op: PatchOp): string {
  const segs = parsePointer(op.path);
  if (segs.length === 0) throw new Error(`${op.path}: the whole document cannot be patched`);
  const parent = parentOf(doc, segs, op.path);
  const last = segs[segs.length - 1]!;
  if (Array.isArray(parent)) {
    if (op.op === 'add') {
      const i = last === '-' ? parent.length : index(last, parent.length, op.path);
      parent.splice(i, 0, op.value);
      return formatPointer([...segs.slice(0, -1), String(i)]);
    }
    const i = index(last, parent.length - 1, op.path);
    if (op.op === 'replace') parent[i] = op.value;
    else parent.splice(i, 1);
    return op.path;
  }
  if (op.op !== 'add' && !(last in parent)) throw new Error(`${op.path}: nothing to ${op.op} there`);
  if (op.op === 'remove') delete parent[last];
  else parent[last] = op.value;
  return op.path;
}

/** Replaces `{{pool}}` in every string of `value` (keys included). */
export function substitutePool(value: unknown, pool: string): JsonValue {
  if (typeof value === 'string') return value.replaceAll('{{pool}}', pool);
  if (Array.isArray(value)) return value.map((v) => substitutePool(v, pool));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.replaceAll('{{pool}}', pool), substitutePool(v, pool)]));
  }
  return value as JsonValue;
}
