/**
 * Applying PATCH bodies to cached objects while offline, as the apiserver would:
 *   - application/merge-patch+json: RFC 7386 JSON merge patch (patch-merge.ts);
 *   - application/json-patch+json: RFC 6902 JSON patch (patch-json.ts);
 *   - application/strategic-merge-patch+json: Kubernetes strategic merge for the fields kubelets
 *     patch (patch-strategic.ts).
 *
 * Patches come from local clients, who may be hostile, so before any algorithm runs (patch-guard.ts):
 *   - the cached object and the patch are walked once, without recursion, and refused if they are
 *     not plain JSON or are nested more than MAX_PATCH_DEPTH levels deep;
 *   - the patch is refused if any key in it, at any depth, or any JSON-pointer segment names a
 *     prototype (`__proto__`, `constructor`, `prototype`);
 *   - the object is copied once into prototype-free objects (`Object.create(null)`) and patched in
 *     place, so every key lands as an own property and the work is linear in the inputs' sizes
 *     (JSON patches: also bounded by an operation count and a work budget);
 *   - the result must be a JSON object within the same depth limit.
 * Every refusal and every malformed patch is a TetherError(E_BAD_REQUEST) whose message starts with
 * "apply patch: " and names what was wrong; the proxy answers it with a 400 Status. The inputs are
 * never modified.
 */
import { jsonPatchInto } from './patch-json.ts';
import { bad, checkTree, cloneJson, isObj, type Json } from './patch-guard.ts';
import { mergeInto } from './patch-merge.ts';
import { strategicInto } from './patch-strategic.ts';

export { FORBIDDEN_KEYS, MAX_JSON_PATCH_OPERATIONS, MAX_JSON_PATCH_WORK, MAX_PATCH_DEPTH } from './patch-guard.ts';

export type PatchType = 'merge' | 'json' | 'strategic';

export function patchTypeOf(contentType: string | undefined): PatchType | undefined {
  const ct = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (ct === 'application/merge-patch+json') return 'merge';
  if (ct === 'application/json-patch+json') return 'json';
  if (ct === 'application/strategic-merge-patch+json') return 'strategic';
  return undefined;
}

/** The patched copy of `target`; its objects have no prototype. Throws TetherError(E_BAD_REQUEST). */
export function applyPatch<T>(target: T, type: PatchType, patch: unknown): T {
  checkTree(target, { what: 'the cached object', refuseForbiddenKeys: false });
  if (!isObj(target)) throw bad('the object to patch is not a JSON object');
  checkTree(patch, { what: 'the patch', refuseForbiddenKeys: true });
  const doc = cloneJson(target);
  const p = patch as Json;
  let out: Json;
  switch (type) {
    case 'merge':
      if (!isObj(p)) throw bad('a merge patch must be a JSON object');
      out = mergeInto(doc, p);
      break;
    case 'strategic':
      if (!isObj(p)) throw bad('a strategic merge patch must be a JSON object');
      out = strategicInto(doc, p);
      break;
    case 'json':
      out = jsonPatchInto(doc, p);
      break;
    default:
      throw bad(`unknown patch type ${JSON.stringify(String(type))}`);
  }
  if (!isObj(out)) throw bad('the patched object is not a JSON object');
  checkTree(out, { what: 'the patched object', refuseForbiddenKeys: false });
  return out as T;
}
