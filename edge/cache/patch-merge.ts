/**
 * RFC 7386 JSON merge patch, applied in place to a prototype-free copy of the object (patch.ts makes
 * it and checks both inputs first). Each value of the patch is visited once and nothing of the object
 * is copied again, so the work is linear in the sizes of the two.
 */
import { cloneJson, isObj, newObj, own, type Json } from './patch-guard.ts';

export function mergeInto(target: Json, patch: Json): Json {
  if (!isObj(patch)) return cloneJson(patch);
  const out = isObj(target) ? target : newObj();
  for (const k of Object.keys(patch)) {
    const v = patch[k]!;
    if (v === null) delete out[k];
    else out[k] = mergeInto(own(out, k) ?? null, v);
  }
  return out;
}
