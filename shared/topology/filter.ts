/**
 * The service topology filter as the agent's proxy uses it. Stateful only in what it has been
 * told: the topology of every Service (observeService / replaceServices) and the pool
 * membership (observeNodePool / replaceNodePools). The proxy contract is in README.md.
 */
import { SERVICE_NAME_LABEL } from './keys.ts';
import { createPoolMembership, type NodePoolLike } from './membership.ts';
import { filterEndpointSlice, filterEndpoints, topologyOf, type FilterContext, type ObjectLike, type Topology } from './topology.ts';

export interface WatchEvent {
  type: string;
  object: unknown;
}

export interface ServiceKey {
  namespace: string;
  name: string;
}

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface TopologyFilter {
  /** Responses of these resources go through `filter`: ('discovery.k8s.io', 'endpointslices') and ('', 'endpoints'). */
  handles(group: string, resource: string): boolean;
  /** An EndpointSlice, Endpoints, or a List of either, filtered; anything else unchanged. */
  filter<T>(body: T): T;
  /** A watch event with its object filtered (BOOKMARK, ERROR and other kinds unchanged). */
  filterEvent(ev: WatchEvent): WatchEvent;
  /** The MODIFIED event that re-delivers `raw` (the current unfiltered object) under the current rules. */
  reemit(raw: unknown): WatchEvent;
  /** Whether `obj` (EndpointSlice or Endpoints) belongs to one of `services`. */
  belongsTo(obj: unknown, services: readonly ServiceKey[]): boolean;
  /** A Service event; returns the Services whose filtering changed (their objects must be re-emitted). */
  observeService(type: EventType, service: ObjectLike): ServiceKey[];
  /** All Services (a LIST or the store after a restart). */
  replaceServices(services: ObjectLike[]): ServiceKey[];
  /** A NodePool event; returns the Services whose filtering changed. */
  observeNodePool(type: EventType, pool: NodePoolLike): ServiceKey[];
  /** All NodePools (a LIST or the store after a restart). */
  replaceNodePools(pools: NodePoolLike[]): ServiceKey[];
}

const keyOf = (ns: string | undefined, name: string | undefined) => `${ns ?? ''}/${name ?? ''}`;

function serviceOf(obj: ObjectLike): ServiceKey | undefined {
  const ns = obj.metadata?.namespace;
  if (!ns) return undefined;
  if (obj.kind === 'EndpointSlice') {
    const name = obj.metadata?.labels?.[SERVICE_NAME_LABEL];
    return name ? { namespace: ns, name } : undefined;
  }
  if (obj.kind === 'Endpoints' && obj.metadata?.name) return { namespace: ns, name: obj.metadata.name };
  return undefined;
}

export function createTopologyFilter(opts: { nodeName: string }): TopologyFilter {
  const topologies = new Map<string, Topology>();
  const membership = createPoolMembership();

  const contextFor = (obj: ObjectLike): FilterContext | undefined => {
    const svc = serviceOf(obj);
    const topology = svc && topologies.get(keyOf(svc.namespace, svc.name));
    if (!topology) return undefined;
    const pool = membership.poolOf(opts.nodeName);
    return { topology, nodeName: opts.nodeName, poolNodes: pool ? membership.members(pool) : undefined };
  };

  const filterOne = (obj: unknown): unknown => {
    const o = obj as ObjectLike | null;
    if (!o || typeof o !== 'object') return obj;
    if (o.kind !== 'EndpointSlice' && o.kind !== 'Endpoints') return obj;
    const ctx = contextFor(o);
    if (!ctx) return obj;
    return o.kind === 'EndpointSlice' ? filterEndpointSlice(o, ctx) : filterEndpoints(o, ctx);
  };

  const filter = <T>(body: T): T => {
    const b = body as { kind?: string; items?: unknown[] } | null;
    if (b && typeof b === 'object' && (b.kind === 'EndpointSliceList' || b.kind === 'EndpointsList') && Array.isArray(b.items)) {
      const itemKind = b.kind.slice(0, -'List'.length);
      // Items of a List carry no kind: give them one for the lookup, and take it off again.
      return {
        ...b,
        items: b.items.map((i) => {
          const withKind = { ...(i as object), kind: itemKind } as ObjectLike;
          const { kind: _k, ...out } = filterOne(withKind) as ObjectLike;
          return (i as ObjectLike).kind !== undefined ? { ...out, kind: (i as ObjectLike).kind } : out;
        }),
      } as T;
    }
    return filterOne(body) as T;
  };

  const poolView = () => {
    const pool = membership.poolOf(opts.nodeName);
    return JSON.stringify([pool, [...(pool ? (membership.members(pool) ?? []) : [])].sort()]);
  };
  const poolServices = (): ServiceKey[] =>
    [...topologies].filter(([, t]) => t === 'pool').map(([k]) => ({ namespace: k.split('/')[0]!, name: k.slice(k.indexOf('/') + 1) }));

  const observeService = (type: EventType, svc: ObjectLike): ServiceKey[] => {
    const k = keyOf(svc.metadata?.namespace, svc.metadata?.name);
    const before = topologies.get(k);
    const after = type === 'DELETED' ? undefined : topologyOf(svc);
    if (after) topologies.set(k, after);
    else topologies.delete(k);
    return before === after ? [] : [{ namespace: svc.metadata?.namespace ?? '', name: svc.metadata?.name ?? '' }];
  };

  const poolChange = (change: () => void): ServiceKey[] => {
    const before = poolView();
    change();
    return poolView() === before ? [] : poolServices();
  };

  return {
    handles: (group, resource) => (group === 'discovery.k8s.io' && resource === 'endpointslices') || (group === '' && resource === 'endpoints'),
    filter,
    filterEvent: (ev) => (ev.type === 'ADDED' || ev.type === 'MODIFIED' || ev.type === 'DELETED' ? { type: ev.type, object: filterOne(ev.object) } : ev),
    reemit: (raw) => ({ type: 'MODIFIED', object: filterOne(raw) }),
    belongsTo(obj, services) {
      const s = serviceOf(obj as ObjectLike);
      return !!s && services.some((x) => x.namespace === s.namespace && x.name === s.name);
    },
    observeService,
    replaceServices(services) {
      const seen = new Set(services.map((s) => keyOf(s.metadata?.namespace, s.metadata?.name)));
      const gone = [...topologies.keys()].filter((k) => !seen.has(k));
      const changed = gone.flatMap((k) =>
        observeService('DELETED', { metadata: { namespace: k.split('/')[0], name: k.slice(k.indexOf('/') + 1) } }),
      );
      return [...changed, ...services.flatMap((s) => observeService('ADDED', s))];
    },
    observeNodePool: (type, pool) =>
      poolChange(() => (type === 'DELETED' ? membership.remove(pool.metadata?.name ?? '') : membership.upsert(pool))),
    replaceNodePools: (pools) => poolChange(() => membership.replace(pools)),
  };
}
