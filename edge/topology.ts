/**
 * Service topology in the agent: feeds edge/filter's pure filter from the store (Services recorded
 * from the kubelet's traffic, NodePools fetched by the agent itself), and gives the proxy the hook
 * it applies to EndpointSlices and Endpoints — filtering answers on the way to the client (the
 * store keeps them unfiltered) and re-emitting the objects of Services whose view changed to the
 * watches that are open. The contract is edge/filter/README.md.
 */
import type { Logger } from '../shared/log.ts';
import type { Counter } from '../shared/metrics.ts';
import type { RequestInfo } from '../shared/kube/index.ts';
import { createTopologyFilter, type ServiceKey, type WatchEvent } from './filter/filter.ts';
import { SERVICE_NAME_LABEL } from './filter/keys.ts';
import type { UpstreamCall } from './proxy/client.ts';
import type { ResponseFilter } from './proxy/server.ts';
import type { KubeObject, Store } from './store/index.ts';

export const NODEPOOLS_GVR = 'apps.tether.dev/v1alpha1/nodepools';
const NODEPOOLS_PATH = '/apis/apps.tether.dev/v1alpha1/nodepools';
const NODEPOOLS_SCOPE = { gvr: NODEPOOLS_GVR, namespace: '', labelSelector: '', fieldSelector: '' };

export interface Topology extends ResponseFilter {
  /** The recorder stored objects of `gvr`: Services and NodePools change what is filtered. */
  recorded(gvr: string): void;
  /** Re-reads Services and NodePools from the store and re-emits what changed. */
  refresh(): void;
  /** Fetches the NodePools upstream (as the node) into the store, then refreshes. */
  syncPools(call: UpstreamCall): Promise<void>;
}

interface OpenWatch {
  namespace: string;
  gvr: string;
  write(line: string): void;
}

export function createTopology(opts: { nodeName: string; store: Store; log: Logger; filtered: Counter; reemitted: Counter }): Topology {
  const { store, log } = opts;
  const filter = createTopologyFilter({ nodeName: opts.nodeName });
  const watches = new Set<OpenWatch>();

  const reemit = (services: ServiceKey[]) => {
    if (!services.length || !watches.size) return;
    for (const w of watches) {
      const mine = services.filter((s) => w.namespace === '' || s.namespace === w.namespace);
      for (const s of mine) {
        const objs =
          w.gvr === 'v1/endpoints'
            ? [store.objects.get('v1/endpoints', s.namespace, s.name)].filter((o): o is KubeObject => o !== undefined)
            : store.objects.list(w.gvr, s.namespace).filter((o) => (o.metadata.labels as Record<string, string> | undefined)?.[SERVICE_NAME_LABEL] === s.name);
        for (const o of objs) {
          w.write(`${JSON.stringify(filter.reemit(o))}\n`);
          opts.reemitted.inc();
        }
      }
    }
  };

  const refresh = () => {
    try {
      const changed = [
        ...filter.replaceServices(store.objects.list('v1/services')),
        ...filter.replaceNodePools(store.objects.list(NODEPOOLS_GVR) as never[]),
      ];
      reemit(changed);
    } catch (e) {
      log.warn('topology: refresh from the store failed', { error: e });
    }
  };

  return {
    applies: (info: RequestInfo) => info.isResourceRequest && filter.handles(info.apiGroup, info.resource),
    body(text) {
      try {
        opts.filtered.inc();
        return JSON.stringify(filter.filter(JSON.parse(text) as unknown));
      } catch {
        return text; // not JSON: passed as it came
      }
    },
    line(line) {
      if (!line.trim()) return line;
      try {
        return JSON.stringify(filter.filterEvent(JSON.parse(line) as WatchEvent));
      } catch {
        return line;
      }
    },
    openWatch(info, write) {
      const w: OpenWatch = { namespace: info.namespace, gvr: info.gvr, write };
      watches.add(w);
      return () => watches.delete(w);
    },
    recorded(gvr) {
      if (gvr === 'v1/services' || gvr === NODEPOOLS_GVR) refresh();
    },
    refresh,
    async syncPools(call) {
      const r = await call('GET', `${NODEPOOLS_PATH}?resourceVersion=0`, { accept: 'application/json' });
      if (r.status === 404) {
        // The CRDs are not installed: no pools.
        store.streams.replaceList(NODEPOOLS_SCOPE, 'tether', [], '', () => true);
      } else if (r.status === 200) {
        const list = JSON.parse(r.body) as { metadata?: { resourceVersion?: string }; items?: KubeObject[] };
        store.streams.replaceList(NODEPOOLS_SCOPE, 'tether', list.items ?? [], list.metadata?.resourceVersion ?? '', () => true);
      } else {
        log.debug('topology: NodePools not readable', { status: r.status });
        return;
      }
      refresh();
    },
  };
}
