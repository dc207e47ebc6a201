/**
 * Discovery prefetch: while online, the agent keeps the documents kubectl asks for first (/version,
 * /api and /apis in aggregated and plain form), so that kubectl works through the agent offline even
 * with an empty kubectl cache and even when no kubectl ever ran on this node before the link broke.
 *
 * Fetched once per return of the link (and at start), never on a timer; each GET is conditional
 * (`If-None-Match` with the ETag the apiserver gave last time, for the documents it tags: aggregated
 * discovery does), so an unchanged document costs a 304 and no body. The plain documents carry no
 * ETag; they are built from the same API registrations as the aggregated ones, so when both
 * aggregated documents are unchanged and the plain ones are stored, the plain ones are not fetched.
 * The ETags live in memory (`etags`, kept by the caller across calls): after a restart the first
 * refresh fetches in full.
 */
import type { Logger } from '../shared/log.ts';
import { documentKey } from './cache/documents.ts';
import type { UpstreamCall } from './upstream/calls.ts';
import type { Store } from './store/index.ts';

const AGGREGATED =
  'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json';

/** In this order: the aggregated documents first, so the plain ones can be skipped when they did not change. */
const DOCUMENTS: { path: string; accept: string; plain?: true }[] = [
  { path: '/version', accept: 'application/json, */*' },
  { path: '/api', accept: AGGREGATED },
  { path: '/apis', accept: AGGREGATED },
  { path: '/api', accept: 'application/json', plain: true },
  { path: '/apis', accept: 'application/json', plain: true },
  { path: '/api/v1', accept: 'application/json', plain: true },
];

export interface DiscoveryResult {
  /** Documents fetched and stored anew. */
  stored: number;
  /** Documents the apiserver said were unchanged (304). */
  unchanged: number;
  /** Plain documents not fetched because the aggregated ones did not change. */
  skipped: number;
}

export async function prefetchDiscovery(store: Store, call: UpstreamCall, log: Logger, etags: Map<string, string> = new Map()): Promise<DiscoveryResult> {
  const out: DiscoveryResult = { stored: 0, unchanged: 0, skipped: 0 };
  let aggregatedUnchanged = 0;
  for (const d of DOCUMENTS) {
    const key = documentKey(d.path, d.accept);
    if (d.plain && aggregatedUnchanged === 2 && store.documents.get(key)) {
      out.skipped++;
      continue;
    }
    const known = etags.get(key);
    const ifNoneMatch = known && store.documents.get(key) ? known : undefined;
    const r = await call('GET', d.path, { accept: d.accept, ...(ifNoneMatch ? { ifNoneMatch } : {}) });
    if (r.status === 304 && ifNoneMatch) {
      out.unchanged++;
      if (d.accept === AGGREGATED) aggregatedUnchanged++;
      continue;
    }
    if (r.status !== 200) {
      log.debug('discovery document not available', { path: d.path, status: r.status });
      continue;
    }
    store.documents.put(key, d.path, { contentType: r.contentType, body: r.body });
    if (r.etag) etags.set(key, r.etag);
    else etags.delete(key);
    out.stored++;
  }
  return out;
}
