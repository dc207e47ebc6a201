/**
 * Endpoint filtering by topology — pure functions over decoded objects.
 *
 * A Service annotated apps.tether.dev/topology: kubernetes.io/hostname keeps, for this node's
 * clients, only the endpoints on this node; apps.tether.dev/pool keeps those on nodes of this
 * node's pool (membership from NodePool status, membership.ts). Endpoints without a nodeName
 * cannot be placed and are dropped. A pool-topology Service seen from a node in no known pool is
 * not filtered (there is no pool to keep traffic in). Objects come back as new objects; the input
 * is never changed.
 *
 *   EndpointSlice (discovery.k8s.io/v1): endpoints[] filtered by endpoints[].nodeName; an empty
 *     result is `endpoints: []` (the slice is still delivered, so clients drop the old endpoints).
 *   Endpoints (v1): subsets[].addresses[] and notReadyAddresses[] by nodeName; subsets left with
 *     neither are removed.
 */
import { TOPOLOGY_ANNOTATION, TOPOLOGY_HOSTNAME, TOPOLOGY_POOL } from './keys.ts';

export type Topology = 'hostname' | 'pool';

export interface ObjectLike {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string };
}

export interface EndpointSlice extends ObjectLike {
  endpoints?: { nodeName?: string; [k: string]: unknown }[] | null;
}

interface EndpointAddress {
  nodeName?: string;
  [k: string]: unknown;
}
export interface Endpoints extends ObjectLike {
  subsets?: { addresses?: EndpointAddress[]; notReadyAddresses?: EndpointAddress[]; [k: string]: unknown }[] | null;
}

/** The Service's topology, or undefined when it asks for none (or something unknown). */
export function topologyOf(service: ObjectLike | undefined): Topology | undefined {
  const v = service?.metadata?.annotations?.[TOPOLOGY_ANNOTATION]?.trim();
  return v === TOPOLOGY_HOSTNAME ? 'hostname' : v === TOPOLOGY_POOL ? 'pool' : undefined;
}

export interface FilterContext {
  topology: Topology;
  /** The node the agent runs on. */
  nodeName: string;
  /** Members of this node's pool (this node included); undefined when the node is in no known pool. */
  poolNodes: ReadonlySet<string> | undefined;
}

/** Which endpoints to keep, or undefined when this context filters nothing. */
export function keeper(ctx: FilterContext): ((nodeName: string | undefined) => boolean) | undefined {
  if (ctx.topology === 'hostname') return (n) => n === ctx.nodeName;
  const pool = ctx.poolNodes;
  if (!pool) return undefined;
  return (n) => n !== undefined && pool.has(n);
}

export function filterEndpointSlice<T extends EndpointSlice>(slice: T, ctx: FilterContext): T {
  const keep = keeper(ctx);
  if (!keep) return slice;
  return { ...slice, endpoints: (slice.endpoints ?? []).filter((e) => keep(e.nodeName)) };
}

export function filterEndpoints<T extends Endpoints>(ep: T, ctx: FilterContext): T {
  const keep = keeper(ctx);
  if (!keep) return ep;
  const subsets = (ep.subsets ?? [])
    .map((s) => {
      const out = { ...s };
      if (s.addresses) out.addresses = s.addresses.filter((a) => keep(a.nodeName));
      if (s.notReadyAddresses) out.notReadyAddresses = s.notReadyAddresses.filter((a) => keep(a.nodeName));
      if (out.addresses?.length === 0) delete out.addresses;
      if (out.notReadyAddresses?.length === 0) delete out.notReadyAddresses;
      return out;
    })
    .filter((s) => s.addresses || s.notReadyAddresses);
  return { ...ep, subsets };
}
