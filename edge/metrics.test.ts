import { expect, test } from 'bun:test';
import { DECODE_REPORT_MS, createAgentMetrics } from './metrics.ts';
import type { UpstreamChange } from './upstream/pool.ts';
import { createTrafficMeter } from './upstream/traffic.ts';

const build = { version: '1.2.3', commit: 'abc', target: 'linux-x64' };

function parts() {
  const listeners: ((ev: UpstreamChange) => void)[] = [];
  const upstream = { url: new URL('https://10.0.0.1:6443'), healthy: true, rttMs: 12, probes: 3 };
  const pool = {
    all: () => [upstream],
    onChange: (l: (ev: UpstreamChange) => void) => (listeners.push(l), () => {}),
    emit: (healthy: boolean) => {
      upstream.healthy = healthy;
      for (const l of listeners) l({ upstream: upstream as unknown as UpstreamChange['upstream'], healthy });
    },
  };
  const traffic = createTrafficMeter();
  const store = {
    objects: { counts: () => ({ 'v1/pods': 7 }) },
    outbox: { depth: () => ({ status: 2, event: 0, other: 0 }) },
  } as never;
  return { pool, traffic, bus: { watches: 4 }, store, offlineTokens: { size: 5 } };
}

test('the gauges read the parts when scraped, and health transitions are counted by server and direction', () => {
  const m = createAgentMetrics({ build });
  const p = parts();
  expect(m.link()).toBeUndefined();
  m.observe(p);
  m.requests.inc({ verb: 'list', code: '200', source: 'upstream' });
  p.traffic.add('received', 'watch', 1000);
  p.pool.emit(false);
  p.pool.emit(true);
  const text = m.registry.render();
  for (const line of [
    'tether_build_info{version="1.2.3",commit="abc",target="linux-x64"} 1',
    'tether_proxy_requests_total{verb="list",code="200",source="upstream"} 1',
    'tether_upstream_bytes_total{direction="received",kind="watch"} 1000',
    'tether_upstream_bytes_last_hour{direction="received",kind="watch"} 1000',
    'tether_upstream_rtt_seconds{server="10.0.0.1:6443"} 0.012',
    'tether_upstream_probes_total{server="10.0.0.1:6443"} 3',
    'tether_upstream_healthy{server="10.0.0.1:6443"} 1',
    'tether_upstream_transitions_total{server="10.0.0.1:6443",healthy="false"} 1',
    'tether_upstream_transitions_total{server="10.0.0.1:6443",healthy="true"} 1',
    'tether_offline_watches 4',
    'tether_offline_tokens 5',
    'tether_store_objects{gvr="v1/pods"} 7',
    'tether_outbox_depth{kind="status"} 2',
  ]) {
    expect(text.split('\n')).toContain(line);
  }
  expect(m.link()).toMatchObject({ transitions: 2, total: { received: { watch: 1000 } } });
});

test('without a store there are no store gauges', () => {
  const m = createAgentMetrics({ build });
  m.observe({ ...parts(), store: undefined });
  expect(m.registry.render()).not.toContain('tether_store_objects');
  expect(m.registry.render()).not.toContain('tether_outbox_depth');
});

test('an undecodable answer is counted by what it was, and reported as a problem until DECODE_REPORT_MS after the last one', () => {
  let now = Date.UTC(2026, 11, 4, 5);
  const m = createAgentMetrics({ build, now: () => now });
  expect(m.upstreamDataProblem()).toBeNull();
  m.decodeError('list v1/pods');
  now += DECODE_REPORT_MS - 1;
  m.decodeError('watch v1/nodes');
  expect(m.upstreamDataProblem()).toBe(
    `2 upstream answer(s) could not be decoded, last for watch v1/nodes at ${new Date(now).toISOString()}; those were passed through but not cached`,
  );
  now += DECODE_REPORT_MS - 1;
  expect(m.upstreamDataProblem()).not.toBeNull();
  now += 1;
  expect(m.upstreamDataProblem()).toBeNull();
  m.eventsDropped(3);
  const text = m.registry.render().split('\n');
  expect(text).toContain('tether_upstream_decode_errors_total{what="list"} 1');
  expect(text).toContain('tether_upstream_decode_errors_total{what="watch"} 1');
  expect(text).toContain('tether_outbox_events_dropped_total 3');
});
