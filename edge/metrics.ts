/**
 * The agent's Prometheus series, in one place: the counters its parts increment (handed to them
 * when they are made) and the gauges read from the parts when /metrics is scraped (`observe`, once
 * the parts exist). The tunnel agent registers its own series on the same registry.
 *
 * Upstream answers that cannot be decoded for the cache are counted here and also reported as a
 * problem (/readyz `upstream-data`, status) for DECODE_REPORT_MS after the last one: such answers
 * are passed to the client but not cached, which an operator should hear of.
 */
import { Registry, type Counter, registerProcessMetrics } from '../shared/metrics.ts';
import type { LinkStatus } from './status-report.ts';
import type { Store } from './store/index.ts';
import type { UpstreamChange } from './upstream/pool.ts';
import { TRAFFIC_DIRECTIONS, TRAFFIC_KINDS, type TrafficFigures, type TrafficMeter } from './upstream/traffic.ts';

/** How long an undecodable upstream answer stays a reported problem. */
export const DECODE_REPORT_MS = 5 * 60_000;

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** What the gauges read when scraped. */
export interface ObservedParts {
  pool: {
    all(): readonly { url: URL; healthy: boolean; rttMs?: number; probes: number }[];
    onChange(listener: (ev: UpstreamChange) => void): () => void;
  };
  traffic: TrafficMeter;
  /** The offline watches (edge/cache's event bus). */
  bus: { readonly watches: number };
  store?: Pick<Store, 'objects' | 'outbox'>;
  offlineTokens: { readonly size: number };
}

export interface AgentMetrics {
  readonly registry: Registry;
  /** Requests answered by the proxy, by verb, code and source. */
  readonly requests: Counter;
  readonly topologyFiltered: Counter;
  readonly topologyReemitted: Counter;
  /** The cache could not decode an upstream answer (`what`: "list v1/pods", …). */
  decodeError(what: string): void;
  /** The outbox dropped `n` events to stay within its bound. */
  eventsDropped(n: number): void;
  /** Undecodable answers in the last DECODE_REPORT_MS, as a problem; null when none. */
  upstreamDataProblem(): string | null;
  /** Registers the gauges read from the parts, and counts the pool's health transitions. */
  observe(parts: ObservedParts): void;
  /** What the link cost and its transitions, for status (undefined before observe). */
  link(): LinkStatus | undefined;
}

export function createAgentMetrics(opts: { build: { version: string; commit: string; target: string }; now?: () => number }): AgentMetrics {
  const now = opts.now ?? Date.now;
  const registry = new Registry();
  registerProcessMetrics(registry, opts.build);
  const requests = registry.counter('tether_proxy_requests_total', 'Requests answered by the proxy, by verb, code and source');
  const decodeErrors = registry.counter('tether_upstream_decode_errors_total', 'Upstream bodies that could not be decoded for the cache');
  const droppedEvents = registry.counter('tether_outbox_events_dropped_total', 'Events dropped from the outbox to stay within its bound');
  const transitions = registry.counter('tether_upstream_transitions_total', 'Upstream health changes');
  const topologyFiltered = registry.counter('tether_edge_topology_filtered_total', 'Answers of EndpointSlices and Endpoints run through the service-topology filter');
  const topologyReemitted = registry.counter('tether_edge_topology_reemitted_total', 'Objects re-sent to open watches after a topology change');
  let garbage: { at: number; what: string; count: number } | undefined;
  let transitionCount = 0;
  let traffic: TrafficMeter | undefined;

  return {
    registry,
    requests,
    topologyFiltered,
    topologyReemitted,
    decodeError(what) {
      decodeErrors.inc({ what: what.split(' ')[0] ?? what });
      garbage = { at: now(), what, count: (garbage?.count ?? 0) + 1 };
    },
    eventsDropped: (n) => droppedEvents.inc({}, n),
    upstreamDataProblem: () =>
      garbage && now() - garbage.at < DECODE_REPORT_MS
        ? `${garbage.count} upstream answer(s) could not be decoded, last for ${garbage.what} at ${new Date(garbage.at).toISOString()}; those were passed through but not cached`
        : null,
    observe(parts) {
      const { pool, bus, store, offlineTokens } = parts;
      traffic = parts.traffic;
      const meter = traffic;
      pool.onChange((ev) => {
        transitions.inc({ server: ev.upstream.url.host, healthy: String(ev.healthy) });
        transitionCount++;
      });
      // What the link costs: bytes by kind, in total and over the last hour and day.
      const series = (f: TrafficFigures) =>
        TRAFFIC_DIRECTIONS.flatMap((direction) => TRAFFIC_KINDS.map((kind) => ({ labels: { direction, kind }, value: f[direction][kind] })));
      registry.counterFrom('tether_upstream_bytes_total', 'Bytes the agent sent to and received from the apiservers, by kind (HTTP level: heads and bodies as on the wire, without TLS and TCP/IP overhead)', () => series(meter.total()));
      registry.gauge('tether_upstream_bytes_last_hour', 'Bytes to and from the apiservers in the last hour, by kind', () => series(meter.last(HOUR_MS)));
      registry.gauge('tether_upstream_bytes_last_day', 'Bytes to and from the apiservers in the last 24 hours, by kind', () => series(meter.last(DAY_MS)));
      registry.gauge('tether_upstream_rtt_seconds', 'Smoothed round-trip time to each apiserver, from probes and answers', () =>
        pool.all().filter((u) => u.rttMs !== undefined).map((u) => ({ labels: { server: u.url.host }, value: u.rttMs! / 1000 })),
      );
      registry.counterFrom('tether_upstream_probes_total', 'Health probes sent to each apiserver', () => pool.all().map((u) => ({ labels: { server: u.url.host }, value: u.probes })));
      registry.gauge('tether_offline_tokens', 'Bearer tokens the apiserver accepted online, kept (by hash) to check them offline', () => [{ value: offlineTokens.size }]);
      registry.gauge('tether_upstream_healthy', 'Whether each upstream apiserver is healthy', () =>
        pool.all().map((u) => ({ labels: { server: u.url.host }, value: u.healthy ? 1 : 0 })),
      );
      registry.gauge('tether_offline_watches', 'Watches currently served from the store', () => [{ value: bus.watches }]);
      if (store) {
        registry.gauge('tether_store_objects', 'Objects in the snapshot store by resource', () =>
          Object.entries(store.objects.counts()).map(([gvr, value]) => ({ labels: { gvr }, value })),
        );
        registry.gauge('tether_outbox_depth', 'Offline writes waiting for replay, by kind', () =>
          Object.entries(store.outbox.depth()).map(([kind, value]) => ({ labels: { kind }, value })),
        );
      }
    },
    link: () =>
      traffic && { total: traffic.total(), lastHour: traffic.last(HOUR_MS), lastDay: traffic.last(DAY_MS), transitions: transitionCount },
  };
}
