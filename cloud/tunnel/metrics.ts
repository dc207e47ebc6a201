/**
 * The hub's tunnel metrics (Prometheus text on the admin listener's /metrics):
 *
 *   tether_hub_agents_connected                         agents with a session on this replica
 *   tether_hub_tunnel_streams_open                      streams open across those sessions
 *   tether_hub_tunnel_stream_queued_bytes{node,stream}  bytes queued towards the agent, per stream
 *                                                       with a queue (a stuck reader shows here)
 *   tether_hub_tunnel_bytes{node,direction}             bytes through each live session
 *   tether_hub_connections_open{route}                  CONNECTs being piped: tunnel, forward, direct
 *   tether_hub_connect_requests_total{route,result}     CONNECTs answered (result ok or a failure)
 *   tether_hub_dial_errors_total{reason}                failed CONNECTs by reason (router.ts)
 *   tether_hub_connect_bytes_total{route,direction}     bytes through CONNECTs (up: client → target)
 *   tether_hub_agent_sessions_total                     sessions accepted
 *   tether_hub_agent_refusals_total{reason}             agents refused: auth, not_a_node, hello
 *   tether_hub_agent_replacements_total{result}         a second session for a node with a live one:
 *                                                       accepted (same credential) or refused
 *   tether_hub_address_claims_refused_total{reason}     addresses an agent announced that its Node
 *                                                       object does not give it: service, other_node,
 *                                                       contested, not_in_node
 *   tether_hub_addresses_contested                      addresses several Node objects list (routed
 *                                                       to none)
 *   tether_hub_listener_connections{listener}           open connections: agent, connect
 *   tether_hub_listener_refusals_total{listener,reason} connections closed before a request:
 *                                                       handshake_timeout, header_timeout,
 *                                                       per_source_limit, total_limit
 *
 * Byte counters are added up in plain numbers on the data path and moved into the registry once a
 * second, so counting costs no allocation per chunk.
 */
import type { Registry } from '../../shared/metrics.ts';
import type { ClaimRefusal } from './node-directory.ts';
import type { DialFailure, Route } from './router.ts';

export type ListenerName = 'agent' | 'connect';
export type ListenerRefusal = 'handshake_timeout' | 'header_timeout' | 'per_source_limit' | 'total_limit';

export interface SessionStats {
  streams: number;
  bytesIn: number;
  bytesOut: number;
  queuedBytes: Record<number, number>;
}

export interface HubMetricsSource {
  sessions(): Iterable<{ node: string; stats(): SessionStats }>;
  contested?(): number;
  listeners?(): { listener: ListenerName; open: number }[];
}

export interface HubMetrics {
  connected(route: Route): void;
  disconnected(route: Route): void;
  answered(route: Route | 'none', result: 'ok' | DialFailure): void;
  dialError(reason: DialFailure): void;
  bytes(route: Route, direction: 'up' | 'down', n: number): void;
  sessionAccepted(): void;
  agentRefused(reason: 'auth' | 'not_a_node' | 'hello'): void;
  replacement(result: 'accepted' | 'refused'): void;
  claimRefused(reason: ClaimRefusal): void;
  listenerRefused(listener: ListenerName, reason: ListenerRefusal): void;
  close(): void;
}

export function createHubMetrics(registry: Registry, source: HubMetricsSource): HubMetrics {
  const requests = registry.counter('tether_hub_connect_requests_total', 'CONNECT requests answered, by route and result');
  const dialErrors = registry.counter('tether_hub_dial_errors_total', 'CONNECT requests that failed, by reason');
  const bytesTotal = registry.counter('tether_hub_connect_bytes_total', 'Bytes piped through CONNECT requests, by route and direction');
  const sessions = registry.counter('tether_hub_agent_sessions_total', 'Agent sessions accepted');
  const refusals = registry.counter('tether_hub_agent_refusals_total', 'Agents refused, by reason');
  const replacements = registry.counter('tether_hub_agent_replacements_total', 'Second sessions for a node with a live one: accepted (same credential) or refused');
  const claims = registry.counter('tether_hub_address_claims_refused_total', "Addresses agents announced that their Node objects do not give them, by reason");
  const listenerRefusals = registry.counter('tether_hub_listener_refusals_total', 'Connections closed before a request was read, by listener and reason');
  registry.gauge('tether_hub_addresses_contested', 'Addresses listed by several Node objects (routed to none)', () => [{ value: source.contested?.() ?? 0 }]);
  registry.gauge('tether_hub_listener_connections', 'Open connections per listener', () =>
    (source.listeners?.() ?? []).map((l) => ({ labels: { listener: l.listener }, value: l.open })),
  );
  const open: Record<Route, number> = { tunnel: 0, forward: 0, direct: 0 };
  const pending = new Map<string, number>();

  registry.gauge('tether_hub_agents_connected', 'Agents with a tunnel session on this replica', () => [{ value: [...source.sessions()].length }]);
  registry.gauge('tether_hub_tunnel_streams_open', 'Streams open across the tunnel sessions', () => [
    { value: [...source.sessions()].reduce((n, s) => n + s.stats().streams, 0) },
  ]);
  registry.gauge('tether_hub_tunnel_stream_queued_bytes', 'Bytes queued towards the agent per stream (streams with a queue only)', () =>
    [...source.sessions()].flatMap((s) =>
      Object.entries(s.stats().queuedBytes)
        .filter(([, v]) => v > 0)
        .map(([stream, value]) => ({ labels: { node: s.node, stream }, value })),
    ),
  );
  registry.gauge('tether_hub_tunnel_bytes', 'Bytes through each live tunnel session', () =>
    [...source.sessions()].flatMap((s) => {
      const st = s.stats();
      return [
        { labels: { node: s.node, direction: 'in' }, value: st.bytesIn },
        { labels: { node: s.node, direction: 'out' }, value: st.bytesOut },
      ];
    }),
  );
  registry.gauge('tether_hub_connections_open', 'CONNECT requests being piped, by route', () =>
    Object.entries(open).map(([route, value]) => ({ labels: { route }, value })),
  );

  const flush = () => {
    for (const [key, n] of pending) {
      const [route, direction] = key.split('/') as [string, string];
      bytesTotal.inc({ route, direction }, n);
    }
    pending.clear();
  };
  const timer = setInterval(flush, 1000);
  timer.unref?.();

  return {
    connected: (route) => void open[route]++,
    disconnected: (route) => void open[route]--,
    answered: (route, result) => requests.inc({ route, result }),
    dialError: (reason) => dialErrors.inc({ reason }),
    bytes: (route, direction, n) => {
      const key = `${route}/${direction}`;
      pending.set(key, (pending.get(key) ?? 0) + n);
    },
    sessionAccepted: () => sessions.inc(),
    agentRefused: (reason) => refusals.inc({ reason }),
    replacement: (result) => replacements.inc({ result }),
    claimRefused: (reason) => claims.inc({ reason }),
    listenerRefused: (listener, reason) => listenerRefusals.inc({ listener, reason }),
    close() {
      clearInterval(timer);
      flush();
    },
  };
}
