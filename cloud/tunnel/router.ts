/**
 * Where a CONNECT goes. The decision, for `host:port` from a caller:
 *
 *   1. the node that owns `host` (node directory: from Node objects only, never from what an
 *      agent announced); an address several Node objects list is owned by none and refused with
 *      403 `address_conflict` here, before any tunnel or direct dial is tried;
 *   2. tunnel held here                 → open a stream through it;
 *   3. tunnel held by another replica   → forward to it once (a peer's CONNECT is never forwarded);
 *   4. an edge node with no tunnel now  → 503 "no tunnel connected", at once;
 *   5. no edge node                     → dial directly, if the caller may (kube-apiserver only)
 *                                         and the direct-dial policy allows the address.
 *
 * Callers: `apiserver` (may reach anything the policy allows), `scrape` (Prometheus: edge nodes
 * only), `peer` (another replica: tunnels held here only).
 *
 * Every failure is a status and a reason for the CONNECT answer plus a `failure` label for the
 * dial-error metric; nothing here throws.
 *
 * The router declares what it needs of its dialers (StreamOpener, PeerDialer); peer-dial.ts
 * implements PeerDialer with the RouteResult declared here, so the import runs one way.
 */
import type { Duplex } from 'node:stream';
import { ErrorCode, isTetherError, messageOf } from '../../shared/errors.ts';
import type { DirectDialer } from './direct-dial.ts';
import type { LeaseView } from './leases.ts';
import type { NodeDirectory } from './node-directory.ts';

export type Route = 'tunnel' | 'forward' | 'direct';
export type DialFailure =
  | 'not_allowed'
  | 'no_tunnel'
  | 'agent_refused'
  | 'agent_dial'
  | 'tunnel_closed'
  | 'timeout'
  | 'direct_failed'
  | 'forward_failed'
  | 'forward_refused'
  | 'address_conflict';

export type RouteResult =
  | { ok: true; stream: Duplex; route: Route; node?: string }
  | { ok: false; status: number; reason: string; failure: DialFailure; route?: Route; node?: string };

export interface Caller {
  kind: 'apiserver' | 'scrape' | 'peer';
  user: string;
}

/** What the router needs of a tunnel session. */
export interface StreamOpener {
  open(host: string, port: number, opts?: { signal?: AbortSignal; timeoutMs?: number }): Promise<Duplex>;
}

export interface RouterOptions {
  directory: NodeDirectory;
  tunnelOf(node: string): StreamOpener | undefined;
  /** Absent: a single replica without Leases. */
  leases?: LeaseView;
  replica: string;
  direct: DirectDialer;
  forward: PeerDialer;
  dialTimeoutMs: number;
}

/** Forwards host:port to the replica at `address` (peer-dial.ts); its answer is the route's. */
export type PeerDialer = (address: string, host: string, port: number, signal?: AbortSignal) => Promise<RouteResult>;

export type RouteFn = (host: string, port: number, caller: Caller, signal?: AbortSignal) => Promise<RouteResult>;

export function createRouter(opts: RouterOptions): RouteFn {
  const { directory, leases } = opts;

  const viaTunnel = async (node: string, t: StreamOpener, host: string, port: number, signal?: AbortSignal): Promise<RouteResult> => {
    try {
      const stream = await t.open(host, port, { signal, timeoutMs: opts.dialTimeoutMs });
      return { ok: true, stream, route: 'tunnel', node };
    } catch (e) {
      const why = messageOf(e);
      const fail = (status: number, failure: DialFailure): RouteResult => ({ ok: false, status, failure, reason: why, route: 'tunnel', node });
      const peerCode = isTetherError(e, ErrorCode.TunnelDial) && isTetherError(e.cause) ? e.cause.code : undefined;
      if (peerCode === ErrorCode.TunnelDenied || isTetherError(e, ErrorCode.TunnelDenied)) return fail(403, 'agent_refused');
      if (isTetherError(e, ErrorCode.TunnelTimeout)) return fail(504, 'timeout');
      if (isTetherError(e, ErrorCode.TunnelClosed)) return fail(503, 'tunnel_closed');
      return fail(502, 'agent_dial');
    }
  };

  return async (host, port, caller, signal) => {
    const owner = directory.ownerOf(host);
    if (owner && 'contested' in owner) {
      return { ok: false, status: 403, failure: 'address_conflict', reason: `${host} is listed by several Node objects (${owner.contested.join(', ')}); refused rather than guessing which node it is` };
    }
    const nodes = owner ? [owner.node] : [];
    const local = nodes.find((n) => opts.tunnelOf(n));
    if (local) return viaTunnel(local, opts.tunnelOf(local)!, host, port, signal);

    const remote = nodes.map((n) => ({ node: n, owner: leases?.owner(n) })).find((x) => x.owner && x.owner.replica !== opts.replica);
    const edge = remote?.node ?? nodes.find((n) => leases?.known(n));
    const refuse = (status: number, failure: DialFailure, reason: string, node?: string): RouteResult => ({ ok: false, status, failure, reason, node });

    if (caller.kind === 'peer') {
      return refuse(503, 'no_tunnel', `replica ${opts.replica} holds no tunnel for ${host} (forwarded by ${caller.user}; not forwarded again)`, edge);
    }
    if (remote?.owner) {
      const r = await opts.forward(remote.owner.address, host, port, signal);
      return { ...r, node: remote.node };
    }
    if (edge) return refuse(503, 'no_tunnel', `node ${edge} has no tunnel connected`, edge);
    if (caller.kind !== 'apiserver') {
      return refuse(403, 'not_allowed', `${host} is not an address of an edge node with a tunnel (${caller.user} may reach edge nodes only)`);
    }
    try {
      return { ok: true, stream: await opts.direct.dial(host, port, signal), route: 'direct' };
    } catch (e) {
      if (isTetherError(e, ErrorCode.TunnelDenied)) return { ok: false, status: 403, failure: 'not_allowed', reason: messageOf(e), route: 'direct' };
      return { ok: false, status: 502, failure: 'direct_failed', reason: messageOf(e), route: 'direct' };
    }
  };
}
