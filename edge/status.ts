/** What `tether-edge status` shows: upstreams, store contents, views per client, outbox depth. */
import { statSync } from 'node:fs';
import type { EventBus } from './cache/bus.ts';
import type { CertRotationStatus } from './certs/rotation.ts';
import type { TunnelAgentStatus } from './tunnel/agent.ts';
import type { Store } from './store/index.ts';

export interface AgentStatus {
  node: string;
  proxy: string;
  online: boolean;
  upstreams: { server: string; healthy: boolean; lastError?: string }[];
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
}

interface StatusSources {
  nodeName: string;
  proxy: string;
  pool: { online: boolean; all(): readonly { url: URL; healthy: boolean; lastError?: string }[] };
  store?: Store;
  storeProblem: string | null;
  bus: EventBus;
  certificate?: CertRotationStatus;
  tunnel?: TunnelAgentStatus;
  problems: string[];
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
    upstreams: s.pool.all().map((u) => ({ server: u.url.href, healthy: u.healthy, ...(u.lastError ? { lastError: u.lastError } : {}) })),
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
  };
}

/** The human-readable form of `tether-edge status`. */
export function formatStatus(st: AgentStatus): string {
  const lines = [`node ${st.node}: ${st.online ? 'online' : 'OFFLINE (answering from the store)'}; proxy on ${st.proxy}`, 'upstreams:'];
  for (const u of st.upstreams) lines.push(`  ${u.healthy ? 'healthy  ' : 'unhealthy'} ${u.server}${u.lastError ? `  (${u.lastError})` : ''}`);
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
  }
  for (const p of st.problems) lines.push(`PROBLEM: ${p}`);
  return lines.join('\n');
}
