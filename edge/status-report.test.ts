import { expect, test } from 'bun:test';
import { createEventBus } from './cache/index.ts';
import { collectStatus, formatStatus } from './status-report.ts';
import { createTrafficMeter } from './upstream/traffic.ts';

test('status shows what the link cost in the last hour, day and since start, by kind, with each upstream\'s round trip and probes', () => {
  let clock = Date.UTC(2026, 0, 1, 12);
  const traffic = createTrafficMeter({ now: () => clock });
  traffic.add('received', 'watch', 40 * 1024 * 1024);
  clock += 2 * 3600_000; // two hours later: the watch bytes are out of the hour, not the day
  traffic.add('received', 'probe', 600);
  traffic.add('sent', 'probe', 200);
  const st = collectStatus({
    nodeName: 'edge-1',
    proxy: '127.0.0.1:10261',
    pool: { online: true, all: () => [{ url: new URL('https://10.0.0.10:6443'), healthy: true, rttMs: 612.34, probes: 3 }] },
    storeProblem: null,
    bus: createEventBus(),
    problems: [],
    link: { total: traffic.total(), lastHour: traffic.last(3600_000), lastDay: traffic.last(86_400_000), transitions: 1 },
  });
  expect(st.upstreams[0]).toEqual({ server: 'https://10.0.0.10:6443/', healthy: true, rttMs: 612.3, probes: 3 });
  expect(st.link?.lastHour.received.watch).toBe(0);
  expect(st.link?.lastDay.received.watch).toBe(40 * 1024 * 1024);
  const text = formatStatus(st);
  expect(text).toContain('healthy   https://10.0.0.10:6443/  rtt 612.3 ms, 3 probes');
  expect(text).toContain('link (HTTP bytes in / out, by kind in/out; 1 health transitions):');
  expect(text).toContain('  last hour: 600 B in / 200 B out (probe 600 B/200 B)');
  expect(text).toContain('  last day:  40.0 MiB in / 200 B out (probe 600 B/200 B, watch 40.0 MiB/0 B)');
});

test('status shows the via-hub mode and the api streams\' bytes before and after compression', () => {
  const st = collectStatus({
    nodeName: 'edge-1',
    proxy: '127.0.0.1:10261',
    pool: { online: true, all: () => [{ url: new URL('http://kube-apiserver.tether/'), healthy: true, probes: 2 }] },
    storeProblem: null,
    bus: createEventBus(),
    problems: [],
    upstreamMode: 'via-hub',
    tunnel: {
      connected: true,
      hub: 'wss://hub-0:8443/tunnel',
      since: '2026-12-03T10:00:00.000Z',
      reconnects: 1,
      streams: 3,
      compression: 'deflate',
      api: { rawIn: 2 * 1024 * 1024, wireIn: 256 * 1024, rawOut: 40 * 1024, wireOut: 10 * 1024 },
    },
  });
  expect(st.upstreamMode).toBe('via-hub');
  expect(st.tunnel?.api).toEqual({ rawIn: 2 * 1024 * 1024, wireIn: 256 * 1024, rawOut: 40 * 1024, wireOut: 10 * 1024 });
  const text = formatStatus(st);
  expect(text).toContain('upstreams (via-hub: through tether-hub, as api streams of the tunnel):');
  expect(text).toContain('  api streams (before → after compression): in 2048 KiB → 256 KiB (0.13×), out 40 KiB → 10 KiB (0.25×)');
});

test('a direct agent says so, and shows no api stream line while none carried anything', () => {
  const st = collectStatus({
    nodeName: 'edge-1',
    proxy: '127.0.0.1:10261',
    pool: { online: true, all: () => [{ url: new URL('https://10.0.0.10:6443'), healthy: true }] },
    storeProblem: null,
    bus: createEventBus(),
    problems: [],
    tunnel: { connected: true, reconnects: 0, streams: 0, api: { rawIn: 0, wireIn: 0, rawOut: 0, wireOut: 0 } },
  });
  expect(st.upstreamMode).toBe('direct');
  const text = formatStatus(st);
  expect(text).toContain('\nupstreams:\n');
  expect(text).not.toContain('api streams');
});

test('status shows the running and previous version and the last upgrade, with its reason', () => {
  const st = collectStatus({
    nodeName: 'edge-1',
    proxy: '127.0.0.1:10261',
    pool: { online: false, all: () => [] },
    storeProblem: null,
    bus: createEventBus(),
    problems: [],
    upgrade: {
      running: '0.1.0',
      previous: '0.0.9',
      last: { upgrade: 'fleet', uid: 'u1', version: '0.2.0', phase: 'RolledBack', reason: 'tether-edge 0.2.0 did not become healthy within 120s of the swap', previous: '0.1.0', time: '2026-12-04T01:00:00.000Z' },
      waiting: 'offline: an upgrade never starts without the link',
    },
  });
  expect(st.upgrade?.previous).toBe('0.0.9');
  const lines = formatStatus(st).split('\n');
  expect(lines).toContain('version 0.1.0 (previous 0.0.9)');
  expect(lines).toContain('  last upgrade: fleet to 0.2.0: RolledBack (tether-edge 0.2.0 did not become healthy within 120s of the swap) at 2026-12-04T01:00:00.000Z');
  expect(lines).toContain('  upgrade waiting: offline: an upgrade never starts without the link');
  expect(formatStatus({ ...st, upgrade: { running: '0.1.0' } }).split('\n')).toContain('version 0.1.0');
});
