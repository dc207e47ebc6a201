/**
 * RFC 6902 JSON patch (add, remove, replace, move, copy, test), applied in place to a
 * prototype-free copy of the object (patch.ts makes it and checks both inputs first).
 *
 * Bounds, so that a short patch cannot make a large amount of work or a deep object:
 *   - at most MAX_JSON_PATCH_OPERATIONS operations;
 *   - no pointer segment naming a prototype (`__proto__`, `constructor`, `prototype`), in `path` or
 *     `from`; objects are walked by own properties only, arrays by canonical indices only;
 *   - no value placed deeper than MAX_PATCH_DEPTH, checked at every operation, so the document
 *     stays within the limit while the patch runs and every recursion here is bounded by it;
 *   - values copied (`copy`), compared (`test`) or measured (`move` to a deeper place) and array
 *     elements shifted (`add`/`remove` in a list) count against MAX_JSON_PATCH_WORK.
 */
import {
  FORBIDDEN_KEYS,
  MAX_JSON_PATCH_OPERATIONS,
  MAX_JSON_PATCH_WORK,
  MAX_PATCH_DEPTH,
  bad,
  unprocessable,
  cloneJson,
  has,
  isObj,
  own,
  type Json,
} from './patch-guard.ts';

const INDEX = /^(0|[1-9][0-9]*)$/;

interface Run {
  work: number;
  op: string;
}

function spend(run: Run, n: number): void {
  run.work += n;
  if (run.work > MAX_JSON_PATCH_WORK) {
    throw bad(`${run.op}: the patch copies, compares or shifts more than ${MAX_JSON_PATCH_WORK} values; send a smaller patch`);
  }
}

function pointer(path: string, op: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw bad(`${op}: JSON pointer ${JSON.stringify(path.slice(0, 200))} must start with "/"`);
  return path
    .slice(1)
    .split('/')
    .map((raw) => {
      if (/~([^01]|$)/.test(raw)) throw bad(`${op}: JSON pointer segment ${JSON.stringify(raw.slice(0, 200))} has a "~" that is not "~0" or "~1"`);
      const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
      if (FORBIDDEN_KEYS.has(seg)) throw bad(`${op}: the path names ${JSON.stringify(seg)}; such keys are refused`);
      return seg;
    });
}

function child(cur: Json, seg: string): Json | undefined {
  if (Array.isArray(cur)) return INDEX.test(seg) ? cur[Number(seg)] : undefined;
  return isObj(cur) ? own(cur, seg) : undefined;
}

function getAt(doc: Json, parts: string[], op: string): Json {
  let cur: Json = doc;
  for (const p of parts) {
    const next = child(cur, p);
    if (next === undefined) throw unprocessable(`${op}: the path does not exist`);
    cur = next;
  }
  return cur;
}

function parentOf(doc: Json, parts: string[], op: string): { parent: Json[] | { [k: string]: Json }; key: string } {
  const parent = getAt(doc, parts.slice(0, -1), op);
  if (!Array.isArray(parent) && !isObj(parent)) throw unprocessable(`${op}: the parent of the path is not an object or a list`);
  return { parent, key: parts[parts.length - 1]! };
}

function arrayIndex(arr: Json[], key: string, op: string, forInsert: boolean): number {
  if (key === '-' && forInsert) return arr.length;
  if (!INDEX.test(key)) throw unprocessable(`${op}: ${JSON.stringify(key.slice(0, 200))} is not an array index`);
  const i = Number(key);
  if (i > arr.length || (!forInsert && i === arr.length)) throw unprocessable(`${op}: index ${key.slice(0, 20)} is out of range`);
  return i;
}

/** Containers nested in `v` (0 for a scalar), counting each value against the budget. */
function height(run: Run, v: Json): number {
  spend(run, 1);
  let h = 0;
  if (Array.isArray(v)) for (const x of v) h = Math.max(h, height(run, x));
  else if (isObj(v)) for (const k of Object.keys(v)) h = Math.max(h, height(run, v[k]!));
  return Array.isArray(v) || isObj(v) ? h + 1 : 0;
}

function fits(parts: string[], valueHeight: number, op: string): void {
  if (parts.length + valueHeight > MAX_PATCH_DEPTH) throw bad(`${op}: the result would be nested more than ${MAX_PATCH_DEPTH} levels deep`);
}

function copyOf(run: Run, v: Json): Json {
  spend(run, 1);
  if (Array.isArray(v)) return v.map((x) => copyOf(run, x));
  if (!isObj(v)) return v;
  const out = Object.create(null) as { [k: string]: Json };
  for (const k of Object.keys(v)) out[k] = copyOf(run, v[k]!);
  return out;
}

/** RFC 6902 equality: numbers by value, objects regardless of key order, lists in order. */
function equal(run: Run, a: Json, b: Json): boolean {
  spend(run, 1);
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => equal(run, x, b[i]!));
  }
  if (isObj(a) || isObj(b)) {
    if (!isObj(a) || !isObj(b)) return false;
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    return ka.every((k) => has(b, k) && equal(run, a[k]!, b[k]!));
  }
  return a === b;
}

/** Places `value` (already owned by the document) at the path; returns the new document. */
function addAt(run: Run, doc: Json, parts: string[], value: Json, op: string): Json {
  if (parts.length === 0) return value;
  const { parent, key } = parentOf(doc, parts, op);
  if (Array.isArray(parent)) {
    const i = arrayIndex(parent, key, op, true);
    spend(run, parent.length - i);
    parent.splice(i, 0, value);
  } else parent[key] = value;
  return doc;
}

/** Takes the value at the path out of the document and returns it. */
function removeAt(run: Run, doc: Json, parts: string[], op: string): Json {
  if (parts.length === 0) throw unprocessable(`${op}: cannot remove the whole document`);
  const { parent, key } = parentOf(doc, parts, op);
  if (Array.isArray(parent)) {
    const i = arrayIndex(parent, key, op, false);
    spend(run, parent.length - i);
    return parent.splice(i, 1)[0]!;
  }
  if (!has(parent, key)) throw unprocessable(`${op}: the path does not exist`);
  const v = parent[key]!;
  delete parent[key];
  return v;
}

function replaceAt(doc: Json, parts: string[], value: Json, op: string): Json {
  if (parts.length === 0) return value;
  const { parent, key } = parentOf(doc, parts, op);
  if (Array.isArray(parent)) parent[arrayIndex(parent, key, op, false)] = value;
  else if (has(parent, key)) parent[key] = value;
  else throw unprocessable(`${op}: the path does not exist`);
  return doc;
}

const isPrefix = (a: string[], b: string[]) => a.length < b.length && a.every((s, i) => s === b[i]);

export function jsonPatchInto(doc: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw bad('a JSON patch must be a list of operations');
  if (ops.length > MAX_JSON_PATCH_OPERATIONS) throw bad(`a JSON patch may have at most ${MAX_JSON_PATCH_OPERATIONS} operations, this one has ${ops.length}`);
  const run: Run = { work: 0, op: '' };
  ops.forEach((raw, i) => {
    const name = isObj(raw) ? own(raw, 'op') : undefined;
    const path = isObj(raw) ? own(raw, 'path') : undefined;
    if (!isObj(raw) || typeof name !== 'string' || typeof path !== 'string') throw bad(`operation ${i} needs "op" and "path" strings`);
    const op = (run.op = `operation ${i} (${name.slice(0, 20)} ${path.slice(0, 200)})`);
    const parts = pointer(path, op);
    const value = own(raw, 'value');
    const needValue = () => {
      if (value === undefined) throw bad(`${op}: needs "value"`);
      return value;
    };
    const needFrom = () => {
      const from = own(raw, 'from');
      if (typeof from !== 'string') throw bad(`${op}: needs "from"`);
      return pointer(from, op);
    };
    switch (name) {
      case 'add': {
        const v = needValue();
        fits(parts, height(run, v), op);
        doc = addAt(run, doc, parts, cloneJson(v), op);
        break;
      }
      case 'remove':
        removeAt(run, doc, parts, op);
        break;
      case 'replace': {
        const v = needValue();
        fits(parts, height(run, v), op);
        doc = replaceAt(doc, parts, cloneJson(v), op);
        break;
      }
      case 'move': {
        const from = needFrom();
        if (isPrefix(from, parts)) throw unprocessable(`${op}: cannot move a value into itself`);
        if (from.length === parts.length && from.every((s, j) => s === parts[j])) {
          getAt(doc, from, op);
          break;
        }
        const v = getAt(doc, from, op);
        if (parts.length > from.length) fits(parts, height(run, v), op);
        doc = addAt(run, doc, parts, removeAt(run, doc, from, op), op);
        break;
      }
      case 'copy': {
        const v = copyOf(run, getAt(doc, needFrom(), op));
        fits(parts, height(run, v), op);
        doc = addAt(run, doc, parts, v, op);
        break;
      }
      case 'test':
        if (!equal(run, getAt(doc, parts, op), needValue())) throw unprocessable(`${op}: test failed`);
        break;
      default:
        throw bad(`operation ${i}: unknown op ${JSON.stringify(name.slice(0, 50))}`);
    }
  });
  return doc;
}
