#!/usr/bin/env bun
/**
 * tether-edge benchmarks on the real control plane (issue 4). Every figure is measured side by side
 * with its baseline in this one run, and printed as a markdown section; `--write` replaces the
 * "Edge agent" section of docs/benchmarks.md.
 *
 *   bun scripts/bench/agent.ts [--write] [--outage-seconds 300] [--pods 1000]
 *
 * Needs root (an edge site in a network namespace for the partition measurements). Uses the cluster
 * named by TETHER_TEST_CLUSTER if set, else starts one (built once from source).
 */
import { readFileSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sharedCluster } from '../../test/support/cluster.ts';
import { spawnAgent, until } from '../../test/support/edge-agent.ts';
import { createEdgeSite, destroyAllSites } from '../../test/support/netns.ts';
import { getter, memoryOf, pct, sideBySide } from './agent/http.ts';
import { publishSection } from './doc.ts';
import { startAgentProcess } from './agent/process.ts';

const { values: flags } = parseArgs({
  options: { write: { type: 'boolean' }, 'outage-seconds': { type: 'string', default: '300' }, pods: { type: 'string', default: '1000' } },
});
const PODS = Number(flags.pods);
const OUTAGE_S = Number(flags['outage-seconds']);
const NS = 'tether-bench';
const NODE = 'bench-node';
const work = mkdtempSync(join(tmpdir(), 'tether-bench-'));
const rows: string[] = [];
const row = (...cells: (string | number)[]) => rows.push(`| ${cells.join(' | ')} |`);
const ms = (x: number) => `${x.toFixed(2)} ms`;
const mb = (x: number) => `${(x / 1024 / 1024).toFixed(1)} MB`;
const log = (s: string) => console.error(`bench: ${s}`);

const cluster = await sharedCluster();
const admin = cluster.admin;
const cert = await cluster.issueClientCert(`system:node:${NODE}`, ['system:nodes']);
const tls = { ca: readFileSync(cluster.caFile), cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) };

log(`creating namespace ${NS}, node ${NODE} and ${PODS} pods bound to it`);
await admin.ensure('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
await admin.ensure('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } } });
for (let i = 0; i < PODS; i += 50) {
  await Promise.all(
    Array.from({ length: Math.min(50, PODS - i) }, (_, j) =>
      admin.ensure(`/api/v1/namespaces/${NS}/pods`, {
        apiVersion: 'v1', kind: 'Pod',
        metadata: { name: `p-${i + j}`, namespace: NS, labels: { app: `a${(i + j) % 10}` } },
        spec: { nodeName: NODE, containers: [{ name: 'c', image: 'registry.invalid/x:1' }] },
      }),
    ),
  );
}

const agentArgs = (dir: string, server = cluster.server) => [
  '--node-name', NODE, '--servers', server, '--ca-file', cluster.caFile, '--cert-file', cert.certFile, '--key-file', cert.keyFile,
  '--data-dir', dir, '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--insecure-plain-http', 'true',
];
const storeDir = join(work, 'store');
let agent = await startAgentProcess(agentArgs(storeDir));
await until('agent online', async () => (await (await fetch(`${agent.admin}/status`)).json()) as { online: boolean }, (s) => s.online);
const idleRss = memoryOf(agent.child.pid!);
const direct = getter(cluster.server, tls);
let via = getter(agent.proxy);
const listPath = `/api/v1/pods?fieldSelector=spec.nodeName%3D${NODE}`;
const getPath = `/api/v1/namespaces/${NS}/pods/p-1`;

log('GET and LIST latency, agent vs direct');
await sideBySide(20, async () => (await via.get(getPath)).ms, async () => (await direct.get(getPath)).ms); // warm up
const gets = await sideBySide(300, async () => (await via.get(getPath)).ms, async () => (await direct.get(getPath)).ms);
const lists = await sideBySide(20, async () => (await via.get(listPath)).ms, async () => (await direct.get(listPath)).ms);

log('watch throughput and added delivery delay');
const watchResult = await (async () => {
  const rv = JSON.parse(await (await fetch(`${agent.proxy}${listPath}&limit=1`, { headers: { 'user-agent': 'kubelet/v1.34.4' } })).text()).metadata.resourceVersion as string;
  const arrivals = { via: new Map<string, number>(), direct: new Map<string, number>() };
  const open = (base: string, into: Map<string, number>, init?: RequestInit & { tls?: unknown }) => {
    const ac = new AbortController();
    void (async () => {
      const r = await fetch(`${base}${listPath}&watch=true&resourceVersion=${rv}`, { ...init, signal: ac.signal, headers: { 'user-agent': 'kubelet/v1.34.4' } });
      const reader = r.body!.getReader();
      let buf = '';
      for (;;) {
        const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
        if (done) break;
        buf += new TextDecoder().decode(value);
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          const ev = JSON.parse(line) as { object: { metadata: { resourceVersion: string } } };
          into.set(ev.object.metadata.resourceVersion, performance.now());
        }
      }
    })();
    return ac;
  };
  const a = open(agent.proxy, arrivals.via);
  const b = open(cluster.server, arrivals.direct, { tls } as never);
  const N = Math.min(PODS, 1000);
  const t0 = performance.now();
  for (let i = 0; i < N; i += 20) {
    await Promise.all(Array.from({ length: Math.min(20, N - i) }, (_, j) =>
      admin.request('PATCH', `/api/v1/namespaces/${NS}/pods/p-${i + j}`, { metadata: { annotations: { bench: String(Date.now()) } } })));
  }
  await until('all events through both watches', async () => [arrivals.via.size, arrivals.direct.size], ([x, y]) => x! >= N && y! >= N, 120_000);
  a.abort();
  b.abort();
  const delays: number[] = [];
  for (const [rv, t] of arrivals.via) {
    const d = arrivals.direct.get(rv);
    if (d !== undefined) delays.push(t - d);
  }
  const span = (m: Map<string, number>) => Math.max(...m.values()) - t0;
  return { n: N, viaRate: N / (span(arrivals.via) / 1000), directRate: N / (span(arrivals.direct) / 1000), p50: pct(delays, 0.5), p99: pct(delays, 0.99) };
})();

log('offline LIST from the store vs LIST direct; restart to the first answer without the cloud');
await agent.stop();
via.close();
const restartT0 = performance.now();
agent = await startAgentProcess(agentArgs(storeDir, 'https://127.0.0.1:1'));
via = getter(agent.proxy);
await until('first offline answer', () => via.get(listPath), (r) => r.status === 200, 10_000);
const firstAnswerMs = performance.now() - restartT0;
const offline = await sideBySide(20, async () => {
  const r = await via.get(listPath);
  if (r.source !== 'cache' || r.status !== 200) throw new Error(`expected a cached answer, got ${r.status} from ${r.source}`);
  return r.ms;
}, async () => (await direct.get(listPath)).ms);

log('RSS with 5,000 cached objects');
const cms = Math.max(0, 5000 - PODS);
for (let i = 0; i < cms; i += 50) {
  await Promise.all(Array.from({ length: Math.min(50, cms - i) }, (_, j) =>
    admin.ensure(`/api/v1/namespaces/${NS}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm-${i + j}`, namespace: NS }, data: { k: 'v'.repeat(200) } })));
}
await agent.stop();
agent = await startAgentProcess([...agentArgs(storeDir), '--cache-components', '*']);
via = getter(agent.proxy);
const sa = `bench-${process.pid}`;
await admin.ensure(`/api/v1/namespaces/${NS}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa } });
await admin.ensure('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: sa }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' }, subjects: [{ kind: 'ServiceAccount', name: sa, namespace: NS }] });
const token = (await admin.request('POST', `/api/v1/namespaces/${NS}/serviceaccounts/${sa}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } })).body.status.token as string;
await until('agent online', async () => (await (await fetch(`${agent.admin}/status`)).json()) as { online: boolean }, (s) => s.online);
const idleRss2 = memoryOf(agent.child.pid!);
await via.get(listPath);
await via.get(`/api/v1/namespaces/${NS}/configmaps`, { authorization: `Bearer ${token}`, 'user-agent': 'bench/1' });
const cached = await until('objects cached', async () => (await (await fetch(`${agent.admin}/status`)).json()) as { store: { objects: Record<string, number> } },
  (s) => Object.values(s.store.objects).reduce((a, b) => a + b, 0) >= 5000, 60_000);
const objectsCached = Object.values(cached.store.objects).reduce((a, b) => a + b, 0);
const fullRss = memoryOf(agent.child.pid!);
await agent.stop();
via.close();

log('partition: time from the cut to the first answer from the store');
const site = await createEdgeSite(`bench-${process.pid}`);
const siteAgent = spawnAgent(site, ['--node-name', NODE, '--servers', cluster.edgeServer, '--ca-file', cluster.caFile, '--cert-file', cert.certFile,
  '--key-file', cert.keyFile, '--data-dir', join(work, 'site-store'), '--log-level', 'warn', '--insecure-plain-http', 'true']);
await until('site agent', async () => siteAgent.log.join('\n'), (l) => l.includes('proxy on'));
const probe = `
  const path = ${JSON.stringify(listPath)};
  const h = { 'user-agent': 'kubelet/v1.34.4' };
  await fetch('http://127.0.0.1:10261' + path, { headers: h });
  console.log('ready');
  let cutAt = 0;
  process.stdin.on('data', () => { cutAt = performance.now(); });
  for (;;) {
    try {
      const r = await fetch('http://127.0.0.1:10261' + path, { headers: h, signal: AbortSignal.timeout(5000) });
      await r.text();
      if (cutAt && r.status === 200 && r.headers.get('x-tether-source') === 'cache') { console.log(JSON.stringify({ ms: performance.now() - cutAt })); process.exit(0); }
    } catch {}
    await new Promise((r) => setTimeout(r, 5));
  }`;
const prober = site.spawn([process.execPath, '-e', probe]);
let probeOut = '';
prober.stdout!.on('data', (d: Buffer) => (probeOut += d.toString()));
await until('prober ready', async () => probeOut, (o) => o.includes('ready'), 30_000);
await site.cut();
prober.stdin!.write('cut\n');
await until('first answer from the store', async () => probeOut, (o) => o.includes('"ms"'), 30_000);
const cutToAnswer = JSON.parse(probeOut.split('\n').find((l) => l.includes('"ms"'))!).ms as number;
await site.heal();

log(`outage of ${OUTAGE_S} s with a kubelet simulator behind the agent, then requests upstream in the first minute`);
const simNode = 'bench-edge';
const simCert = await cluster.issueClientCert(`system:node:${simNode}`, ['system:nodes']);
await siteAgent.stop();
const outAgent = spawnAgent(site, ['--node-name', simNode, '--servers', cluster.edgeServer, '--ca-file', cluster.caFile, '--cert-file', simCert.certFile,
  '--key-file', simCert.keyFile, '--data-dir', join(work, 'outage-store'), '--log-level', 'warn', '--insecure-plain-http', 'true']);
await until('outage agent', async () => outAgent.log.join('\n'), (l) => l.includes('proxy on'));
const sim = site.spawn([process.execPath, join(import.meta.dir, '../../test/support/kubelet-sim/main.ts'), '--node-name', simNode, '--server', 'http://127.0.0.1:10261', '--address', site.address, '--log-level', 'warn']);
for (let i = 0; i < 20; i++) {
  await admin.ensure(`/api/v1/namespaces/${NS}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: `edge-${i}`, namespace: NS }, spec: { nodeName: simNode, containers: [{ name: 'c', image: 'registry.invalid/x:1' }] } });
}
const metrics = async () => (await site.exec([process.execPath, '-e', "console.log(await (await fetch('http://127.0.0.1:10267/metrics')).text())"])).stdout;
const upstreamBy = (text: string) => {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^tether_proxy_requests_total\{([^}]*)\} (\d+)/gm)) {
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (labels.source === 'upstream' && labels.verb) out[labels.verb] = (out[labels.verb] ?? 0) + Number(m[2]);
  }
  return out;
};
await until('pods running', async () => (await admin.request('GET', `/api/v1/namespaces/${NS}/pods?fieldSelector=spec.nodeName%3D${simNode}`)).body.items as { status: { phase: string } }[],
  (ps) => ps.length === 20 && ps.every((p) => p.status.phase === 'Running'), 120_000);
await site.cut();
await new Promise((r) => setTimeout(r, OUTAGE_S * 1000));
const beforeHeal = upstreamBy(await metrics());
await site.heal();
await new Promise((r) => setTimeout(r, 60_000));
const afterHeal = upstreamBy(await metrics());
const firstMinute: Record<string, number> = {};
for (const [verb, n] of Object.entries(afterHeal)) if (n - (beforeHeal[verb] ?? 0) > 0) firstMinute[verb] = n - (beforeHeal[verb] ?? 0);
sim.kill('SIGTERM');
await outAgent.stop();
await destroyAllSites();
direct.close();

row('GET one pod, p50', ms(pct(gets.a, 0.5)), ms(pct(gets.b, 0.5)), `${(pct(gets.a, 0.5) / pct(gets.b, 0.5)).toFixed(2)}×`, '≤ 1.10×');
row('GET one pod, p99', ms(pct(gets.a, 0.99)), ms(pct(gets.b, 0.99)), `${(pct(gets.a, 0.99) / pct(gets.b, 0.99)).toFixed(2)}×`, '≤ 1.10×');
row(`LIST ${PODS} pods (node field selector), p50`, ms(pct(lists.a, 0.5)), ms(pct(lists.b, 0.5)), `${(pct(lists.a, 0.5) / pct(lists.b, 0.5)).toFixed(2)}×`, '≤ 1.10×');
row(`LIST ${PODS} pods, p99`, ms(pct(lists.a, 0.99)), ms(pct(lists.b, 0.99)), `${(pct(lists.a, 0.99) / pct(lists.b, 0.99)).toFixed(2)}×`, '≤ 1.10×');
row(`offline LIST ${PODS} pods from the store vs direct, p50`, ms(pct(offline.a, 0.5)), ms(pct(offline.b, 0.5)), `${(pct(offline.b, 0.5) / pct(offline.a, 0.5)).toFixed(2)}× faster`, 'store ≥ 4× faster');
row(`watch throughput (${watchResult.n} events, persisted)`, `${watchResult.viaRate.toFixed(0)} ev/s`, `${watchResult.directRate.toFixed(0)} ev/s`, `${(watchResult.viaRate / watchResult.directRate).toFixed(2)}×`, '');
row('watch added delivery delay p50 / p99', `${ms(watchResult.p50)} / ${ms(watchResult.p99)}`, '0 (same events, direct watch)', '', '');
row('cut → first answer from the store', ms(cutToAnswer), '', '', '≤ 1 s');
row('restart offline (kill -9 case) → first answer from the store', ms(firstAnswerMs), '', '', '≤ 1 s');
row(`upstream requests in the first minute after a ${OUTAGE_S} s outage`, Object.entries(firstMinute).map(([v, n]) => `${v}=${n}`).join(', ') || 'none', '', '', 'no full LIST');
row('RSS idle (store open, online): total / private', `${mb(idleRss.rss)} / ${mb(idleRss.anon)}`, '', '', '≤ 50 MB');
row(`RSS with ${objectsCached} cached objects: total / private`, `${mb(fullRss.rss)} / ${mb(fullRss.anon)}`, `${mb(idleRss2.rss)} / ${mb(idleRss2.anon)} idle, same run`, `${(fullRss.rss / idleRss2.rss).toFixed(2)}×`, '');

const section = [
  '## Edge agent',
  '',
  `Measured ${new Date().toISOString().slice(0, 10)} on this machine (2 cores) against the real control plane, with \`bun scripts/bench/agent.ts --outage-seconds ${OUTAGE_S}\`. Through the agent vs direct to kube-apiserver with the node's certificate, alternating request by request. The agent runs from source here; "private" memory is the process's own (anonymous) pages, the rest of its RSS is the Bun runtime's code mapped from the executable.`,
  '',
  '| measure | tether-edge | baseline (direct) | ratio | goal |',
  '|---|---:|---:|---:|---|',
  ...rows,
  '',
].join('\n');
publishSection('Edge agent', section);
process.exit(0);
