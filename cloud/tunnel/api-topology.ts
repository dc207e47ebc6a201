/**
 * The service-topology filter on the hub, before the link: EndpointSlices and Endpoints answers of
 * a node's api stream are filtered for that node (shared/topology's rules), so endpoints the node
 * would drop anyway never cross the WAN. One state for all nodes: the Services' topologies and the
 * NodePools' membership (informers in kube-backend.ts feed it); a node's view is computed per answer.
 *
 * Contract:
 * - `classify(method, url)` says whether a request is a GET/LIST/WATCH of endpointslices
 *   (discovery.k8s.io/v1) or endpoints (v1), and its namespace ('' = all).
 * - `filterBody(node, body)` filters an object or a List; `filterEvent(node, ev)` a watch event
 *   (BOOKMARK, ERROR unchanged). Protobuf and Table answers are not touched by the forwarder.
 * - Open watches register with `watch(node, namespace, end)`. A change that alters what a watch of
 *   that node should see calls `end(reason)` once: a Service's topology changed in the watch's
 *   namespace, or the node's pool view (its pool, its members) changed while a pool-topology
 *   Service is in that namespace. The forwarder then ends the watch with a 410 Expired ERROR event,
 *   so the client relists through the filter: the edge cannot re-emit objects it never received.
 * - Until `synced` (first Service and NodePool lists), answers pass unfiltered (the edge's own
 *   filter still applies; only WAN bytes are lost).
 */
import { createPoolMembership, type NodePoolLike } from '../../shared/topology/membership.ts';
import { filterEndpointSlice, filterEndpoints, topologyOf, type FilterContext, type ObjectLike, type Topology } from '../../shared/topology/topology.ts';
import { SERVICE_NAME_LABEL } from '../../shared/topology/keys.ts';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface EndpointsRequest {
  resource: 'endpointslices' | 'endpoints';
  /** '' for all namespaces. */
  namespace: string;
  watch: boolean;
}

export interface HubTopology {
  classify(method: string | undefined, url: string | undefined): EndpointsRequest | undefined;
  filterBody<T>(node: string, body: T): T;
  filterEvent(node: string, ev: { type: string; object: unknown }): { type: string; object: unknown };
  watch(node: string, namespace: string, end: (reason: string) => void): () => void;
  observeService(type: EventType, service: ObjectLike): void;
  replaceServices(services: ObjectLike[]): void;
  observeNodePool(type: EventType, pool: NodePoolLike): void;
  replaceNodePools(pools: NodePoolLike[]): void;
  /** Both lists arrived at least once. */
  readonly synced: boolean;
  markSynced(what: 'services' | 'nodepools'): void;
}

const PATH = /^\/(?:api\/v1|apis\/discovery\.k8s\.io\/v1)(?:\/namespaces\/([^/]+))?\/(endpoints|endpointslices)(?:\/[^/]+)?$/;

export function classify(method: string | undefined, url: string | undefined): EndpointsRequest | undefined {
  if (method !== 'GET' || !url) return undefined;
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const m = PATH.exec(path);
  if (!m) return undefined;
  const resource = m[2] as EndpointsRequest['resource'];
  // endpoints live in the core group, endpointslices in discovery.k8s.io: anything else is not ours.
  if ((resource === 'endpoints') !== path.startsWith('/api/v1')) return undefined;
  const watch = q >= 0 && /^(true|1)$/.test(new URLSearchParams(url.slice(q + 1)).get('watch') ?? '');
  return { resource, namespace: m[1] ? decodeURIComponent(m[1]) : '', watch };
}

interface OpenWatch {
  node: string;
  namespace: string;
  poolView: string;
  end(reason: string): void;
}

export function createHubTopology(): HubTopology {
  const topologies = new Map<string, Topology>(); // "ns/name" → topology
  const membership = createPoolMembership();
  const watches = new Set<OpenWatch>();
  const seen = { services: false, nodepools: false };

  const serviceOf = (o: ObjectLike): string | undefined => {
    const ns = o.metadata?.namespace;
    if (!ns) return undefined;
    if (o.kind === 'EndpointSlice') {
      const name = o.metadata?.labels?.[SERVICE_NAME_LABEL];
      return name ? `${ns}/${name}` : undefined;
    }
    return o.kind === 'Endpoints' && o.metadata?.name ? `${ns}/${o.metadata.name}` : undefined;
  };
  const contextFor = (node: string, o: ObjectLike): FilterContext | undefined => {
    const k = serviceOf(o);
    const topology = k ? topologies.get(k) : undefined;
    if (!topology) return undefined;
    const pool = membership.poolOf(node);
    return { topology, nodeName: node, poolNodes: pool ? membership.members(pool) : undefined };
  };
  const filterOne = (node: string, obj: unknown): unknown => {
    const o = obj as ObjectLike | null;
    if (!o || typeof o !== 'object' || (o.kind !== 'EndpointSlice' && o.kind !== 'Endpoints')) return obj;
    const ctx = contextFor(node, o);
    if (!ctx) return obj;
    return o.kind === 'EndpointSlice' ? filterEndpointSlice(o, ctx) : filterEndpoints(o, ctx);
  };
  const poolView = (node: string) => {
    const pool = membership.poolOf(node);
    return JSON.stringify([pool ?? null, [...(pool ? (membership.members(pool) ?? []) : [])].sort()]);
  };
  const hasPoolService = (namespace: string) => [...topologies].some(([k, t]) => t === 'pool' && (namespace === '' || k.startsWith(`${namespace}/`)));
  const end = (w: OpenWatch, reason: string) => {
    watches.delete(w);
    w.end(reason);
  };
  const servicesChanged = (keys: string[]) => {
    if (!keys.length) return;
    for (const w of [...watches]) {
      const hit = keys.find((k) => w.namespace === '' || k.startsWith(`${w.namespace}/`));
      if (hit) end(w, `the topology of Service ${hit} changed`);
    }
  };
  const poolsChanged = () => {
    for (const w of [...watches]) {
      const now = poolView(w.node);
      if (now === w.poolView) continue;
      w.poolView = now;
      if (hasPoolService(w.namespace)) end(w, `the pool membership of node ${w.node} changed`);
    }
  };
  const observeService = (type: EventType, s: ObjectLike): string[] => {
    const k = `${s.metadata?.namespace ?? ''}/${s.metadata?.name ?? ''}`;
    const before = topologies.get(k);
    const after = type === 'DELETED' ? undefined : topologyOf(s);
    if (after) topologies.set(k, after);
    else topologies.delete(k);
    return before === after ? [] : [k];
  };

  return {
    classify,
    filterBody<T>(node: string, body: T): T {
      const b = body as { kind?: string; items?: unknown[] } | null;
      if (b && typeof b === 'object' && (b.kind === 'EndpointSliceList' || b.kind === 'EndpointsList') && Array.isArray(b.items)) {
        const kind = b.kind.slice(0, -'List'.length);
        return {
          ...b,
          items: b.items.map((i) => {
            const own = (i as ObjectLike).kind;
            const { kind: _k, ...out } = filterOne(node, { ...(i as object), kind }) as ObjectLike;
            return own !== undefined ? { ...out, kind: own } : out;
          }),
        } as T;
      }
      return filterOne(node, body) as T;
    },
    filterEvent: (node, ev) => (ev.type === 'ADDED' || ev.type === 'MODIFIED' || ev.type === 'DELETED' ? { type: ev.type, object: filterOne(node, ev.object) } : ev),
    watch(node, namespace, onEnd) {
      const w: OpenWatch = { node, namespace, poolView: poolView(node), end: onEnd };
      watches.add(w);
      return () => void watches.delete(w);
    },
    observeService: (type, s) => servicesChanged(observeService(type, s)),
    replaceServices(services) {
      const keep = new Set(services.map((s) => `${s.metadata?.namespace ?? ''}/${s.metadata?.name ?? ''}`));
      const changed = [...topologies.keys()].filter((k) => !keep.has(k));
      for (const k of changed) topologies.delete(k);
      servicesChanged([...changed, ...services.flatMap((s) => observeService('ADDED', s))]);
    },
    observeNodePool(type, pool) {
      const changed = type === 'DELETED' ? membership.remove(pool.metadata?.name ?? '') : membership.upsert(pool);
      if (changed.length) poolsChanged();
    },
    replaceNodePools(pools) {
      if (membership.replace(pools).length) poolsChanged();
    },
    get synced() {
      return seen.services && seen.nodepools;
    },
    markSynced(what) {
      seen[what] = true;
    },
  };
}
