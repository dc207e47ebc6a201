/**
 * Service topology in the agent: feeds edge/filter's pure filter from the store (Services recorded
 * from the kubelet's traffic, NodePools fetched by the agent itself), and gives the proxy the hook
 * it applies to EndpointSlices and Endpoints — filtering answers on the way to the client (the
 * store keeps them unfiltered) and re-emitting the objects of Services whose view changed to the
 * watches that are open. The contract is shared/topology/README.md.
 *
 * NodePools are followed with one LIST and then a WATCH from its resourceVersion (bookmarks on,
 * re-watched from the last one when the apiserver ends it, relisted only on 410 Gone), so a pool
 * change arrives at once and an unchanged cluster costs a bookmark a minute, not a LIST every 10 s.
 * Without the CRDs (404) the LIST is tried again every 10 minutes. Where the node may not read
 * NodePools (403, from the LIST or the watch) nothing is asked for 10 minutes, logged once; a
 * reconnect within those 10 minutes waits out the rest of them too. The agent starts following on
 * every return of the link; a watch the link broke simply ends.
 */
import type { Logger } from '../shared/log.ts';
import type { Counter } from '../shared/metrics.ts';
import type { RequestInfo } from '../shared/kube/index.ts';
import { createTopologyFilter, type ServiceKey, type WatchEvent } from '../shared/topology/filter.ts';
import { SERVICE_NAME_LABEL } from '../shared/topology/keys.ts';
import type { UpstreamCall, WatchLines } from './upstream/calls.ts';
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
  /** Follows the NodePools upstream (as the node) into the store, refreshing on each change. */
  followPools(source: PoolSource): { stop(): void; done: Promise<void> };
}

/** How topology reaches the apiserver: a plain call, and a watch read line by line. */
export interface PoolSource {
  call: UpstreamCall;
  watch(path: string, onLine: (line: string) => void): WatchLines;
  online(): boolean;
  /** Waits (timers are the caller's, so tests can pass their own); resolves false when stopped. */
  wait?(ms: number, signal: AbortSignal): Promise<boolean>;
}

const NO_CRD_RECHECK_MS = 10 * 60_000;
/** After a 403: the node's RBAC changes rarely, so a long wait (a reconnect does not cut it short). */
export const FORBIDDEN_RECHECK_MS = 10 * 60_000;
const REWATCH_AFTER_ERROR_MS = 5_000;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<boolean>((resolve) => {
    if (signal.aborted) return resolve(false);
    const t = setTimeout(() => resolve(true), ms);
    t.unref?.();
    signal.addEventListener('abort', () => (clearTimeout(t), resolve(false)), { once: true });
  });

interface OpenWatch {
  namespace: string;
  gvr: string;
  write(line: string): void;
}

export function createTopology(opts: {
  nodeName: string;
  store: Store;
  log: Logger;
  filtered: Counter;
  reemitted: Counter;
  /** Clock for the 403 back-off (default Date.now). */
  now?: () => number;
}): Topology {
  const { store, log } = opts;
  const now = opts.now ?? Date.now;
  /** When the apiserver last said the node may not read NodePools; undefined while it may. */
  let forbiddenAt: number | undefined;
  let forbiddenLogged = false;
  const forbidden = (step: string) => {
    forbiddenAt = now();
    if (!forbiddenLogged) log.info(`topology: the node may not ${step} NodePools (403); asking again every ${FORBIDDEN_RECHECK_MS / 60_000} minutes, without the topology filter's pools meanwhile`);
    forbiddenLogged = true;
  };
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
    followPools(source) {
      const stopped = new AbortController();
      const wait = source.wait ?? sleep;
      let current: WatchLines | undefined;
      const save = (items: Map<string, KubeObject>, rv: string) => {
        store.streams.replaceList(NODEPOOLS_SCOPE, 'tether', [...items.values()], rv, () => true);
        refresh();
      };
      const run = async () => {
        while (!stopped.signal.aborted && source.online()) {
          if (forbiddenAt !== undefined) {
            const left = forbiddenAt + FORBIDDEN_RECHECK_MS - now();
            if (left > 0 && !(await wait(left, stopped.signal))) return;
            if (!source.online()) return;
          }
          const r = await source.call('GET', `${NODEPOOLS_PATH}?resourceVersion=0`, { accept: 'application/json' });
          if (r.status === 403) {
            forbidden('list');
            continue;
          }
          forbiddenAt = undefined;
          if (r.status === 200) forbiddenLogged = false;
          if (r.status === 404) {
            save(new Map(), ''); // the CRDs are not installed: no pools
            if (!(await wait(NO_CRD_RECHECK_MS, stopped.signal))) return;
            continue;
          }
          if (r.status !== 200) {
            log.debug('topology: NodePools not readable', { status: r.status });
            return;
          }
          const list = JSON.parse(r.body) as { metadata?: { resourceVersion?: string }; items?: KubeObject[] };
          const items = new Map((list.items ?? []).map((o) => [o.metadata.name, o] as const));
          let rv = list.metadata?.resourceVersion ?? '';
          save(items, rv);
          // Watch from rv until the apiserver says it is too old (relist) or the link goes.
          for (;;) {
            if (stopped.signal.aborted || !source.online()) return;
            let gone = false;
            const timeout = 300 + Math.floor(Math.random() * 300);
            current = source.watch(`${NODEPOOLS_PATH}?watch=1&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(rv)}&timeoutSeconds=${timeout}`, (line) => {
              let ev: { type?: string; object?: KubeObject & { code?: number } };
              try {
                ev = JSON.parse(line);
              } catch {
                return;
              }
              const o = ev.object;
              if (ev.type === 'ERROR') {
                gone = o?.code === 410;
                current?.stop();
                return;
              }
              if (!o?.metadata) return;
              if (o.metadata.resourceVersion) rv = o.metadata.resourceVersion;
              if (ev.type === 'BOOKMARK') return;
              if (ev.type === 'DELETED') items.delete(o.metadata.name);
              else items.set(o.metadata.name, o);
              save(items, rv);
            });
            const end = await current.done;
            current = undefined;
            if (gone || end.status === 410) break; // relist
            if (end.status === 200) continue; // the apiserver's timeoutSeconds: watch again from rv
            if (end.status === 0) {
              // The link broke (or a reset): the agent starts again on reconnect; a reset on a live link is retried.
              if (!(await wait(REWATCH_AFTER_ERROR_MS, stopped.signal))) return;
              continue;
            }
            if (end.status === 403) {
              forbidden('watch');
              break;
            }
            log.debug('topology: NodePool watch refused', { status: end.status });
            return;
          }
        }
      };
      const done = run().catch((e) => log.debug('topology: NodePools not followed', { error: e }));
      return {
        done,
        stop() {
          stopped.abort();
          current?.stop();
        },
      };
    },
  };
}
