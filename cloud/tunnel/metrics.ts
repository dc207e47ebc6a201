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
 *   tether_hub_api_requests_total{code}                 requests on api streams, by the status the
 *                                                       edge got (0: the edge went away first)
 *   tether_hub_api_bytes_total{node,direction,stage}    api stream bytes per node: in (agent → hub)
 *                                                       or out, raw (uncompressed) or wire (ZDATA);
 *                                                       per node on purpose (one series set per
 *                                                       node this replica has held)
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
  apiRawIn?: number;
  apiRawOut?: number;
  apiWireIn?: number;
  apiWireOut?: number;
}

type ApiBytes = { rawIn: number; rawOut: number; wireIn: number; wireOut: number };
const apiBytesOf = (s: SessionStats): ApiBytes => ({ rawIn: s.apiRawIn ?? 0, rawOut: s.apiRawOut ?? 0, wireIn: s.apiWireIn ?? 0, wireOut: s.apiWireOut ?? 0 });

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
  /** A request on an api stream was answered with `code` (0: the edge went away first). */
  apiAnswered(code: number): void;
  /** A session ended: its api byte counts move into the node's totals. */
  sessionEnded(node: string, stats: SessionStats): void;
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
  const apiRequests = registry.counter('tether_hub_api_requests_total', 'Requests on api streams (agents upstream via the hub), by the status the edge got (0: the edge went away first)');
  // Totals of ended sessions per node; live sessions are added when scraped.
  const apiEnded = new Map<string, ApiBytes>();
  registry.counterFrom(
    'tether_hub_api_bytes_total',
    'Api stream bytes per node (one series set per node this replica held): direction in (agent to hub) or out, stage raw (uncompressed) or wire (compressed, as sent)',
    () => {
      const sum = new Map<string, ApiBytes>();
      for (const [node, b] of apiEnded) sum.set(node, { ...b });
      for (const s of source.sessions()) {
        const b = apiBytesOf(s.stats());
        const cur = sum.get(s.node);
        sum.set(s.node, cur ? { rawIn: cur.rawIn + b.rawIn, rawOut: cur.rawOut + b.rawOut, wireIn: cur.wireIn + b.wireIn, wireOut: cur.wireOut + b.wireOut } : b);
      }
      return [...sum].flatMap(([node, b]) => [
        { labels: { node, direction: 'in', stage: 'raw' }, value: b.rawIn },
        { labels: { node, direction: 'in', stage: 'wire' }, value: b.wireIn },
        { labels: { node, direction: 'out', stage: 'raw' }, value: b.rawOut },
        { labels: { node, direction: 'out', stage: 'wire' }, value: b.wireOut },
      ]);
    },
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
    apiAnswered: (code) => apiRequests.inc({ code: String(code) }),
    sessionEnded(node, stats) {
      const b = apiBytesOf(stats);
      if (!b.rawIn && !b.rawOut && !b.wireIn && !b.wireOut) return;
      const cur = apiEnded.get(node) ?? { rawIn: 0, rawOut: 0, wireIn: 0, wireOut: 0 };
      apiEnded.set(node, { rawIn: cur.rawIn + b.rawIn, rawOut: cur.rawOut + b.rawOut, wireIn: cur.wireIn + b.wireIn, wireOut: cur.wireOut + b.wireOut });
    },
    close() {
      clearInterval(timer);
      flush();
    },
  };
}
