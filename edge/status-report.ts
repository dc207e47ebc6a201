/** What `tether-edge status` shows: upstreams, store contents, views per client, outbox depth. */
import { statSync } from 'node:fs';
import type { EventBus } from './cache/bus.ts';
import type { CertRotationStatus } from './certs/rotation.ts';
import type { TunnelAgentStatus } from './tunnel/tunnel-agent.ts';
import type { Store } from './store/index.ts';
import { TRAFFIC_KINDS, type TrafficFigures } from './upstream/traffic.ts';
import type { UpgradeSummary } from './upgrade/upgrader.ts';

/** What the link to the apiservers costs (HTTP-level bytes, see upstream/traffic.ts). */
export interface LinkStatus {
  total: TrafficFigures;
  lastHour: TrafficFigures;
  lastDay: TrafficFigures;
  /** Upstream health transitions since start (first verdicts included). */
  transitions: number;
}

/** How upstream requests travel: to the apiservers directly, or as api streams of the tunnel through tether-hub. */
export type UpstreamMode = 'direct' | 'via-hub';

export interface AgentStatus {
  node: string;
  proxy: string;
  online: boolean;
  upstreamMode: UpstreamMode;
  upstreams: { server: string; healthy: boolean; lastError?: string; rttMs?: number; probes?: number }[];
  store: {
    path?: string;
    ok: boolean;
    problem?: string;
    sizeBytes?: number;
    objects: Record<string, number>;
    views: Record<string, number>;
    outbox: Record<string, number>;
  };
  offlineWatches: number;
  /** The client certificate and its rotation, when the agent rotates it. */
  certificate?: CertRotationStatus;
  /** The tunnel to tether-hub, when one is configured. */
  tunnel?: TunnelAgentStatus;
  /** Other problems worth an operator's attention (undecodable upstream answers…). */
  problems: string[];
  link?: LinkStatus;
  /** Over-the-air upgrades: the running and previous version, the last upgrade's status. */
  upgrade?: UpgradeSummary;
}

interface StatusSources {
  nodeName: string;
  proxy: string;
  pool: { online: boolean; all(): readonly { url: URL; healthy: boolean; lastError?: string; rttMs?: number; probes?: number }[] };
  store?: Store;
  storeProblem: string | null;
  bus: EventBus;
  certificate?: CertRotationStatus;
  tunnel?: TunnelAgentStatus;
  /** Default 'direct'. */
  upstreamMode?: UpstreamMode;
  problems: string[];
  link?: LinkStatus;
  upgrade?: UpgradeSummary;
}

function sizeOf(path: string): number {
  let n = 0;
  for (const f of [path, `${path}-wal`]) {
    try {
      n += statSync(f).size;
    } catch {
      // absent
    }
  }
  return n;
}

export function collectStatus(s: StatusSources): AgentStatus {
  const views: Record<string, number> = {};
  let objects: Record<string, number> = {};
  let outbox: Record<string, number> = {};
  let problem = s.storeProblem ?? undefined;
  if (s.store) {
    try {
      objects = s.store.objects.counts();
      outbox = s.store.outbox.depth();
      for (const v of s.store.streams.views()) views[v.component] = (views[v.component] ?? 0) + 1;
    } catch (e) {
      problem = String(e);
    }
  }
  return {
    node: s.nodeName,
    proxy: s.proxy,
    online: s.pool.online,
    upstreamMode: s.upstreamMode ?? 'direct',
    upstreams: s.pool.all().map((u) => ({
      server: u.url.href,
      healthy: u.healthy,
      ...(u.lastError ? { lastError: u.lastError } : {}),
      ...(u.rttMs !== undefined ? { rttMs: Math.round(u.rttMs * 10) / 10 } : {}),
      ...(u.probes !== undefined ? { probes: u.probes } : {}),
    })),
    store: {
      path: s.store?.db.path,
      ok: !problem,
      ...(problem ? { problem } : {}),
      ...(s.store ? { sizeBytes: sizeOf(s.store.db.path) } : {}),
      objects,
      views,
      outbox,
    },
    offlineWatches: s.bus.watches,
    ...(s.certificate ? { certificate: s.certificate } : {}),
    ...(s.tunnel ? { tunnel: s.tunnel } : {}),
    problems: s.problems,
    ...(s.link ? { link: s.link } : {}),
    ...(s.upgrade ? { upgrade: s.upgrade } : {}),
  };
}

const kib = (n: number) => (n < 10 * 1024 ? `${n} B` : n < 10 * 1024 * 1024 ? `${(n / 1024).toFixed(0)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`);

/** "12 KiB in / 3 KiB out (watch 10 KiB/1 KiB, request …)": the kinds that moved anything. */
function linkLine(f: TrafficFigures): string {
  const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
  const kinds = TRAFFIC_KINDS.filter((k) => f.received[k] + f.sent[k] > 0).map((k) => `${k} ${kib(f.received[k])}/${kib(f.sent[k])}`);
  return `${kib(sum(f.received))} in / ${kib(sum(f.sent))} out${kinds.length ? ` (${kinds.join(', ')})` : ''}`;
}

/** "1.2 MiB → 180 KiB (0.15×)": a direction's api bytes before and after compression. */
function apiLine(raw: number, wire: number): string {
  return `${kib(raw)} → ${kib(wire)}${raw > 0 ? ` (${(wire / raw).toFixed(2)}×)` : ''}`;
}

/** "version 0.2.0 (previous 0.1.0)" and the last upgrade: "last upgrade: fleet-0-2 to 0.2.0: Healthy at …". */
function upgradeLines(u: UpgradeSummary): string[] {
  const lines = [`version ${u.running}${u.previous ? ` (previous ${u.previous})` : ''}`];
  const l = u.last;
  if (l) lines.push(`  last upgrade: ${l.upgrade} to ${l.version}: ${l.phase}${l.reason ? ` (${l.reason})` : ''} at ${l.time}`);
  if (u.waiting) lines.push(`  upgrade waiting: ${u.waiting}`);
  return lines;
}

/** The human-readable form of `tether-edge status`. */
export function formatStatus(st: AgentStatus): string {
  const mode = st.upstreamMode === 'via-hub' ? ' (via-hub: through tether-hub, as api streams of the tunnel)' : '';
  const lines = [`node ${st.node}: ${st.online ? 'online' : 'OFFLINE (answering from the store)'}; proxy on ${st.proxy}`, `upstreams${mode}:`];
  for (const u of st.upstreams) {
    const rtt = u.rttMs !== undefined ? `  rtt ${u.rttMs} ms` : '';
    lines.push(`  ${u.healthy ? 'healthy  ' : 'unhealthy'} ${u.server}${rtt}${u.probes !== undefined ? `, ${u.probes} probes` : ''}${u.lastError ? `  (${u.lastError})` : ''}`);
  }
  if (st.link) {
    lines.push(`link (HTTP bytes in / out, by kind in/out; ${st.link.transitions} health transitions):`);
    lines.push(`  last hour: ${linkLine(st.link.lastHour)}`);
    lines.push(`  last day:  ${linkLine(st.link.lastDay)}`);
    lines.push(`  since start: ${linkLine(st.link.total)}`);
  }
  lines.push(`store: ${st.store.ok ? 'ok' : `PROBLEM: ${st.store.problem}`}${st.store.path ? `  ${st.store.path}` : ''}${st.store.sizeBytes !== undefined ? `  ${(st.store.sizeBytes / 1024).toFixed(0)} KiB` : ''}`);
  const objs = Object.entries(st.store.objects);
  lines.push(`  objects: ${objs.length ? objs.map(([g, n]) => `${g}=${n}`).join(' ') : 'none'}`);
  const views = Object.entries(st.store.views);
  lines.push(`  views per client: ${views.length ? views.map(([c, n]) => `${c}=${n}`).join(' ') : 'none'}`);
  lines.push(`  outbox: ${Object.entries(st.store.outbox).map(([k, n]) => `${k}=${n}`).join(' ') || 'empty'}`);
  lines.push(`offline watches: ${st.offlineWatches}`);
  if (st.certificate) {
    const c = st.certificate;
    lines.push(`certificate: ${c.subject}, ${c.state}, valid until ${c.notAfter}, renews at ${c.renewAt} (${c.rotations} rotations)`);
  }
  if (st.tunnel) {
    const t = st.tunnel;
    lines.push(`tunnel: ${t.connected ? `connected to ${t.hub} since ${t.since}` : `not connected${t.lastError ? ` (${t.lastError})` : ''}`}; ${t.streams} streams, ${t.reconnects} reconnects`);
    const a = t.api;
    if (a && a.rawIn + a.rawOut > 0) lines.push(`  api streams (before → after compression): in ${apiLine(a.rawIn, a.wireIn)}, out ${apiLine(a.rawOut, a.wireOut)}`);
  }
  if (st.upgrade) lines.push(...upgradeLines(st.upgrade));
  for (const p of st.problems) lines.push(`PROBLEM: ${p}`);
  return lines.join('\n');
}
