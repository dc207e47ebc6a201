/**
 * Discovery documents: how a request's Accept header selects the stored variant. kubectl asks for
 * aggregated discovery (`as=APIGroupDiscoveryList`) and accepts plain JSON; OpenAPI v3 may be asked
 * for as protobuf. The variant is the Accept header's first media type with its parameters.
 */
export function documentKey(path: string, accept: string | undefined): string {
  return `${path}|${variantOf(accept)}`;
}

export function variantOf(accept: string | undefined): string {
  const first = (accept ?? '').split(',')[0]?.trim() ?? '';
  return first === '' || first === '*/*' ? 'application/json' : first.replace(/\s+/g, '');
}

/** Keys to try for an offline answer, best first: the exact variant, then plain JSON when accepted. */
export function documentKeys(path: string, accept: string | undefined): string[] {
  const keys = [documentKey(path, accept)];
  const acceptsJson = accept === undefined || accept === '' || /(^|,)\s*(application\/json|\*\/\*)\s*(;q=[0-9.]+)?\s*(,|$)/.test(accept);
  if (acceptsJson) keys.push(`${path}|application/json`);
  return [...new Set(keys)];
}

/**
 * The documents key of a resource's list kind (`PodList`): written when a LIST (or a WatchList's
 * BOOKMARK) names it, read for offline lists and the watch log's BOOKMARKs.
 */
export function listKindKey(gvr: string): string {
  return `listkind|${gvr}`;
}
