/**
 * Discovery prefetch: while online, the agent keeps the documents kubectl asks for first (/version,
 * /api and /apis in aggregated and plain form), so that kubectl works through the agent offline even
 * with an empty kubectl cache and even when no kubectl ever ran on this node before the link broke.
 */
import type { Logger } from '../shared/log.ts';
import { documentKey } from './cache/documents.ts';
import type { UpstreamCall } from './proxy/client.ts';
import type { Store } from './store/index.ts';

const AGGREGATED =
  'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json';

const DOCUMENTS: { path: string; accept: string }[] = [
  { path: '/version', accept: 'application/json, */*' },
  { path: '/api', accept: AGGREGATED },
  { path: '/apis', accept: AGGREGATED },
  { path: '/api', accept: 'application/json' },
  { path: '/apis', accept: 'application/json' },
  { path: '/api/v1', accept: 'application/json' },
];

export async function prefetchDiscovery(store: Store, call: UpstreamCall, log: Logger): Promise<number> {
  let stored = 0;
  for (const d of DOCUMENTS) {
    const r = await call('GET', d.path, { accept: d.accept });
    if (r.status !== 200) {
      log.debug('discovery document not available', { path: d.path, status: r.status });
      continue;
    }
    store.documents.put(documentKey(d.path, d.accept), d.path, { contentType: r.contentType, body: r.body });
    stored++;
  }
  return stored;
}
