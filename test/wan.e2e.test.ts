/**
 * tether-edge over an emulated satellite-like link (issue 11), on the real control plane: the agent
 * and a kubelet simulator in an edge site whose link has 600 ms of round trip (300 ms each way),
 * jitter and 1 % loss per direction (`site.wan()`), from before the agent starts, as on a satellite
 * node. The agent's health checking backs its probe timeout off until the first answer, learns the
 * round trip from the traffic and adapts its timeouts to it, so during a steady workload it must
 * not once go offline; a cut of the same link must still be noticed, and a client's request then
 * answered from the store. Transitions are counted, never timed.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Cluster, sharedCluster } from './support/cluster.ts';
import { type EdgeAgentProcess, spawnAgent, until } from './support/edge-agent.ts';
import { type EdgeSite, createEdgeSite } from './support/netns.ts';

const isRoot = process.getuid?.() === 0;
const simMain = fileURLToPath(new URL('./support/kubelet-sim/main.ts', import.meta.url));
const node = `wan-e2e-${process.pid}`;
const PROXY = 'http://127.0.0.1:10261';
const STEADY_MS = 180_000;

interface Status {
  online: boolean;
  upstreams: { healthy: boolean; rttMs?: number; probes?: number; lastError?: string }[];
  link?: { transitions: number; total: { received: Record<string, number>; sent: Record<string, number> } };
}

describe.skipIf(!isRoot)('tether-edge over a 600 ms, 1 % loss, jittery link', () => {
  let cluster: Cluster;
  let site: EdgeSite;
  let agent: EdgeAgentProcess;
  let sim: ChildProcess;
  const work = mkdtempSync(join(tmpdir(), 'tether-wan-e2e-'));

  const status = async (): Promise<Status> => {
    const r = await site.exec([process.execPath, '-e', "console.log(await (await fetch('http://127.0.0.1:10267/status')).text())"], { timeoutMs: 20_000 });
    return JSON.parse(r.stdout) as Status;
  };
  const metric = async (name: string, match: (labels: string) => boolean = () => true) => {
    const r = await site.exec([process.execPath, '-e', "console.log(await (await fetch('http://127.0.0.1:10267/metrics')).text())"], { timeoutMs: 20_000 });
    let sum = 0;
    for (const line of r.stdout.split('\n')) {
      const m = line.match(new RegExp(`^${name}(\\{[^}]*\\})? ([0-9.e+]+)$`));
      if (m && match(m[1] ?? '')) sum += Number(m[2]);
    }
    return sum;
  };
  const explain = (e: unknown): never => {
    throw new Error(`${(e as Error).message}\n--- agent log ---\n${agent?.log.slice(-40).join('\n')}`);
  };

  beforeAll(async () => {
    cluster = await sharedCluster();
    site = await createEdgeSite(`wan-${process.pid}`);
    const cert = await cluster.issueClientCert(`system:node:${node}`, ['system:nodes']);
    await site.wan({ delayMs: 300, jitterMs: 40, lossPct: 1 });
    agent = spawnAgent(site, [
      '--node-name', node, '--servers', cluster.edgeServer, '--ca-file', cluster.caFile, '--cert-file', cert.certFile,
      '--key-file', cert.keyFile, '--data-dir', join(work, 'store'), '--log-format', 'text', '--insecure-plain-http', 'true',
    ]);
    await until('agent listening', async () => agent.log.join('\n'), (l) => l.includes(`proxy on ${PROXY}`)).catch(explain);
    await until('agent online over the slow link', status, (s) => s.online, 180_000).catch(explain);
    sim = site.spawn([process.execPath, simMain, '--node-name', node, '--server', PROXY, '--address', site.address, '--log-level', 'warn']);
    const ready = async () =>
      ((await cluster.admin.request('GET', `/api/v1/nodes/${node}`)).body?.status?.conditions ?? []).find((c: { type: string }) => c.type === 'Ready')?.status;
    await until('node Ready', ready, (s) => s === 'True', 300_000).catch(explain);
  }, 600_000);

  afterAll(async () => {
    sim?.kill('SIGTERM');
    await agent?.stop();
    await site?.wan({}).catch(() => {});
    await site?.destroy();
    await cluster?.admin.request('DELETE', `/api/v1/nodes/${node}`).catch(() => {});
  });

  test('a steady workload over the link causes no offline transition, and the timeouts follow the measured round trip', async () => {
    const transitionsBefore = await metric('tether_upstream_transitions_total');
    const cachedBefore = await metric('tether_proxy_requests_total', (l) => l.includes('source="cache"'));
    const upstreamBefore = await metric('tether_proxy_requests_total', (l) => l.includes('source="upstream"'));
    // The workload: the kubelet simulator's leases, status updates and watches, and a client on the node
    // reading its pods one request after another, each answered before the next is asked.
    const reader = site.spawn([process.execPath, '-e', `
      const end = Date.now() + ${STEADY_MS};
      let ok = 0, other = 0;
      while (Date.now() < end) {
        try {
          const r = await fetch('${PROXY}/api/v1/pods?fieldSelector=spec.nodeName%3D${node}', { headers: { 'user-agent': 'kubelet/v1.34.4' }, signal: AbortSignal.timeout(60000) });
          await r.text();
          if (r.status === 200 && r.headers.get('x-tether-source') !== 'cache') ok++; else other++;
        } catch { other++; }
      }
      console.log(JSON.stringify({ ok, other }));`]);
    let out = '';
    reader.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const result = await until('the workload finished', async () => out, (o) => o.includes('"ok"'), STEADY_MS + 120_000).catch(explain);
    const { ok, other } = JSON.parse(result) as { ok: number; other: number };
    const st = await status();
    const transitions = (await metric('tether_upstream_transitions_total')) - transitionsBefore;
    const cached = (await metric('tether_proxy_requests_total', (l) => l.includes('source="cache"'))) - cachedBefore;
    const upstream = (await metric('tether_proxy_requests_total', (l) => l.includes('source="upstream"'))) - upstreamBefore;
    const summary = `transitions ${transitions}, answered from the cache ${cached}, upstream ${upstream}, reader ok ${ok} other ${other}, rtt ${st.upstreams[0]?.rttMs} ms, probes ${st.upstreams[0]?.probes}`;
    console.error(`wan e2e: ${summary}`);
    if (transitions !== 0 || cached !== 0 || other !== 0) explain(new Error(`flapped: ${summary}`));
    expect(transitions).toBe(0);
    expect(cached).toBe(0);
    expect(other).toBe(0);
    expect(ok).toBeGreaterThan(10); // the workload did run through the link
    expect(st.online).toBe(true);
    // The link was slow indeed, and the agent measured it (its timeouts are derived from this).
    expect(st.upstreams[0]!.rttMs!).toBeGreaterThan(300);
  }, STEADY_MS + 300_000);

  test('a cut of the same slow link is still detected, and a request is answered from the store', async () => {
    const transitionsBefore = await metric('tether_upstream_transitions_total', (l) => l.includes('healthy="false"'));
    await site.cut();
    const answer = await site.exec([process.execPath, '-e', `
      const r = await fetch('${PROXY}/api/v1/pods?fieldSelector=spec.nodeName%3D${node}', { headers: { 'user-agent': 'kubelet/v1.34.4' }, signal: AbortSignal.timeout(60000) });
      console.log(JSON.stringify({ status: r.status, source: r.headers.get('x-tether-source'), items: (await r.json()).items?.length }));`], { timeoutMs: 90_000 });
    const a = JSON.parse(answer.stdout) as { status: number; source: string; items: number };
    expect(a.status).toBe(200);
    expect(a.source).toBe('cache');
    await until('agent offline', status, (s) => !s.online, 120_000).catch(explain);
    const wentDown = (await metric('tether_upstream_transitions_total', (l) => l.includes('healthy="false"'))) - transitionsBefore;
    expect(wentDown).toBe(1);
    await site.heal();
    await until('agent online again', status, (s) => s.online, 120_000).catch(explain);
  }, 400_000);
});
