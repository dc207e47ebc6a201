#!/usr/bin/env bun
/**
 * tether-edge benchmarks on the real control plane (issues 4 and 15). Every figure is measured side
 * by side with its baseline in this one run, and printed as a markdown section; `--write` replaces
 * the "Edge agent" section of docs/benchmarks.md. The agent and the hub measured are the compiled
 * binaries (scripts/build.ts, x64, into a temporary folder); `--from-source` runs edge/main.ts instead.
 *
 *   bun scripts/bench/edge-agent.ts [--write] [--outage-seconds 300] [--pods 1000]
 *                              [--yurthub PATH [--yurthub-args "--flag=v …"]] [--from-source]
 *
 * With `--yurthub PATH` (OpenYurt's YurtHub binary; the project never builds or ships it) YurtHub
 * runs in an edge site of its own and every online request goes to direct, tether-edge and YurtHub
 * in turn; the YurtHub columns appear only then.
 *
 * Needs root (edge sites in network namespaces). Uses the cluster named by TETHER_TEST_CLUSTER if
 * set, else starts one (built once from source).
 */
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sharedCluster } from '../../test/support/cluster.ts';
import { until } from '../../test/support/edge-agent.ts';
import { createEdgeSite, destroyAllSites, type EdgeSite } from '../../test/support/netns.ts';
import { crdDir } from '../../test/support/pools.ts';
import { buildBinaries } from './edge-agent/build.ts';
import { cpuSecondsOf } from './edge-agent/cpu.ts';
import { getter, memoryOf, pct, type Getter } from './edge-agent/http.ts';
import { hubIdleMemory } from './edge-agent/hub.ts';
import { startAgentProcess } from './edge-agent/process.ts';
import { startYurtHub, type YurtHubProc } from './edge-agent/yurthub.ts';
import { publishSection } from './doc.ts';

const { values: flags } = parseArgs({
  options: {
    write: { type: 'boolean' },
    'outage-seconds': { type: 'string', default: '300' },
    pods: { type: 'string', default: '1000' },
    yurthub: { type: 'string' },
    'yurthub-args': { type: 'string', default: '' },
    'from-source': { type: 'boolean' },
  },
});
const PODS = Number(flags.pods);
const OUTAGE_S = Number(flags['outage-seconds']);
const NS = 'tether-bench';
const NODE = 'bench-node';
const work = mkdtempSync(join(tmpdir(), 'tether-bench-'));
const ms = (x: number) => `${x.toFixed(2)} ms`;
const mb = (x: number) => `${(x / 1024 / 1024).toFixed(1)} MB`;
const kb = (x: number) => `${(x / 1024).toFixed(2)} KB`;
const x = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
const log = (s: string) => console.error(`bench: ${s}`);
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

log('building the compiled binaries');
const bins = buildBinaries(join(work, 'dist'));
const agentBin = flags['from-source'] ? undefined : bins.edge;

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

log('hub idle memory: compiled tether-hub, then from source (controllers leading, tunnel off)');
const crds = await cluster.kubectl(['apply', '-f', crdDir]);
if (crds.code !== 0) throw new Error(`kubectl apply CRDs: ${crds.stderr}`);
const hubCompiled = await hubIdleMemory({ kubeconfig: cluster.adminKubeconfig, bin: bins.hub });
const hubSource = await hubIdleMemory({ kubeconfig: cluster.adminKubeconfig });
const bare = Bun.spawn([process.execPath, '-e', 'setInterval(() => {}, 1000)']);
await sleep(2000);
const bareMem = memoryOf(bare.pid);
bare.kill();

const agentArgs = (dir: string, server = cluster.server) => [
  '--node-name', NODE, '--servers', server, '--ca-file', cluster.caFile, '--cert-file', cert.certFile, '--key-file', cert.keyFile,
  '--data-dir', dir, '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--insecure-plain-http', 'true',
];
const online = (a: { admin: string }) => until('agent online', async () => (await (await fetch(`${a.admin}/status`)).json()) as { online: boolean }, (s) => s.online);
const listPath = `/api/v1/pods?fieldSelector=spec.nodeName%3D${NODE}`;
const getPath = `/api/v1/namespaces/${NS}/pods/p-1`;

log('start → ready: tether-edge');
const storeDir = join(work, 'store');
const startT0 = performance.now();
let agent = await startAgentProcess(agentArgs(storeDir), undefined, agentBin);
await online(agent);
const edgeStartMs = performance.now() - startT0;

// YurtHub, when given, in an edge site of its own (tether-edge's site comes later, for the cut).
let yurt: YurtHubProc | undefined;
let yurtSite: EdgeSite | undefined;
let yurtStartMs = NaN;
if (flags.yurthub) {
  log('start → ready: YurtHub');
  yurtSite = await createEdgeSite(`bench-yh-${process.pid}`);
  const t0 = performance.now();
  yurt = startYurtHub({
    bin: flags.yurthub, site: yurtSite, server: cluster.edgeServer, nodeName: NODE, caFile: cluster.caFile, certFile: cert.certFile, keyFile: cert.keyFile,
    dir: join(work, 'yurthub'), extraArgs: flags['yurthub-args'] ? flags['yurthub-args'].split(/\s+/) : [],
  });
  const probe = getter(yurt.proxy);
  await until('YurtHub answering', async () => (await probe.get(getPath).catch(() => ({ status: 0 }))).status, (s) => s === 200, 120_000).catch((e) => {
    throw new Error(`${(e as Error).message}\n--- YurtHub ---\n${yurt!.log().slice(-3000)}`);
  });
  yurtStartMs = performance.now() - t0;
  probe.close();
}

await sleep(5000);
const idle = { edge: memoryOf(agent.child.pid!), yurt: yurt ? memoryOf(yurt.child.pid!) : undefined };
const direct = getter(cluster.server, tls);
let via = getter(agent.proxy);
const viaYurt: Getter | undefined = yurt ? getter(yurt.proxy) : undefined;

/** n rounds, each asking direct, tether-edge and YurtHub (when running) in turn: all see the same machine. */
async function rotate(n: number, path: string): Promise<{ direct: number[]; edge: number[]; yurt: number[] }> {
  const out = { direct: [] as number[], edge: [] as number[], yurt: [] as number[] };
  for (let i = 0; i < n; i++) {
    out.direct.push((await direct.get(path)).ms);
    out.edge.push((await via.get(path)).ms);
    if (viaYurt) out.yurt.push((await viaYurt.get(path)).ms);
  }
  return out;
}

log('online phase: GET and LIST latency, then watch delivery, all three alternating');
const cpu0 = { edge: cpuSecondsOf(agent.child.pid!), yurt: yurt ? cpuSecondsOf(yurt.child.pid!) : NaN };
await rotate(20, getPath); // warm up
const gets = await rotate(300, getPath);
const lists = await rotate(20, listPath);

const watchResult = await (async () => {
  const rv = JSON.parse(await (await fetch(`${agent.proxy}${listPath}&limit=1`, { headers: { 'user-agent': 'kubelet/v1.34.4' } })).text()).metadata.resourceVersion as string;
  const arrivals = { edge: new Map<string, number>(), direct: new Map<string, number>(), yurt: new Map<string, number>() };
  const open = (base: string, into: Map<string, number>, init?: RequestInit & { tls?: unknown }) => {
    const ac = new AbortController();
    void (async () => {
      const r = await fetch(`${base}${listPath}&watch=true&resourceVersion=${rv}`, { ...init, signal: ac.signal, headers: { 'user-agent': 'kubelet/v1.34.4' } });
      const reader = r.body!.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
        if (done) break;
        buf += decoder.decode(value, { stream: true });
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
  const watches = [open(agent.proxy, arrivals.edge), open(cluster.server, arrivals.direct, { tls } as never)];
  if (yurt) watches.push(open(yurt.proxy, arrivals.yurt));
  await sleep(500);
  const N = Math.min(PODS, 1000);
  for (let i = 0; i < N; i += 20) {
    await Promise.all(Array.from({ length: Math.min(20, N - i) }, (_, j) =>
      admin.request('PATCH', `/api/v1/namespaces/${NS}/pods/p-${i + j}`, { metadata: { annotations: { bench: String(Date.now()) } } })));
  }
  await until('all events through every watch', async () => [arrivals.edge.size, arrivals.direct.size, yurt ? arrivals.yurt.size : N],
    (s) => s.every((n) => n! >= N), 120_000);
  for (const w of watches) w.abort();
  const delays = (m: Map<string, number>) => {
    const out: number[] = [];
    for (const [rv, t] of m) {
      const d = arrivals.direct.get(rv);
      if (d !== undefined) out.push(t - d);
    }
    return { p50: pct(out, 0.5), p99: pct(out, 0.99) };
  };
  return { n: N, edge: delays(arrivals.edge), yurt: yurt ? delays(arrivals.yurt) : undefined };
})();
const cpu = { edge: cpuSecondsOf(agent.child.pid!) - cpu0.edge, yurt: yurt ? cpuSecondsOf(yurt.child.pid!) - cpu0.yurt : NaN };

log('a burst of LISTs (100, 10 at a time), then back to idle');
const burst = async (g: Getter) => {
  for (let i = 0; i < 100; i += 10) await Promise.all(Array.from({ length: 10 }, () => g.get(listPath)));
};
await burst(via);
if (viaYurt) await burst(viaYurt);
await sleep(15_000);
const afterBurst = { edge: memoryOf(agent.child.pid!), yurt: yurt ? memoryOf(yurt.child.pid!) : undefined };

log('offline LIST from the store vs LIST direct; restart to the first answer without the cloud');
await agent.stop();
via.close();
const restartT0 = performance.now();
agent = await startAgentProcess(agentArgs(storeDir, 'https://127.0.0.1:1'), undefined, agentBin);
via = getter(agent.proxy);
await until('first offline answer', () => via.get(listPath), (r) => r.status === 200, 10_000);
const firstAnswerMs = performance.now() - restartT0;
const offline = { edge: [] as number[], direct: [] as number[] };
for (let i = 0; i < 20; i++) {
  const r = await via.get(listPath);
  if (r.source !== 'cache' || r.status !== 200) throw new Error(`expected a cached answer, got ${r.status} from ${r.source}`);
  offline.edge.push(r.ms);
  offline.direct.push((await direct.get(listPath)).ms);
}

log('RSS with 5,000 cached objects');
const cms = Math.max(0, 5000 - PODS);
for (let i = 0; i < cms; i += 50) {
  await Promise.all(Array.from({ length: Math.min(50, cms - i) }, (_, j) =>
    admin.ensure(`/api/v1/namespaces/${NS}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm-${i + j}`, namespace: NS }, data: { k: 'v'.repeat(200) } })));
}
await agent.stop();
agent = await startAgentProcess([...agentArgs(storeDir), '--cache-components', '*'], undefined, agentBin);
via = getter(agent.proxy);
const sa = `bench-${process.pid}`;
await admin.ensure(`/api/v1/namespaces/${NS}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa } });
await admin.ensure('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: sa }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' }, subjects: [{ kind: 'ServiceAccount', name: sa, namespace: NS }] });
const token = (await admin.request('POST', `/api/v1/namespaces/${NS}/serviceaccounts/${sa}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } })).body.status.token as string;
await online(agent);
await sleep(5000);
const idle2 = memoryOf(agent.child.pid!);
await via.get(listPath);
await via.get(`/api/v1/namespaces/${NS}/configmaps`, { authorization: `Bearer ${token}`, 'user-agent': 'bench/1' });
const cached = await until('objects cached', async () => (await (await fetch(`${agent.admin}/status`)).json()) as { store: { objects: Record<string, number> } },
  (s) => Object.values(s.store.objects).reduce((a, b) => a + b, 0) >= 5000, 60_000);
const objectsCached = Object.values(cached.store.objects).reduce((a, b) => a + b, 0);
await sleep(5000);
const full = memoryOf(agent.child.pid!);
await agent.stop();
via.close();

/**
 * Inside a site: LISTs through the proxy on 127.0.0.1 or `base` every 5 ms; on "cut" on stdin,
 * the time to the first 200 to a request sent after the cut (from the store: tether-edge marks
 * it, YurtHub has no mark), then 20 LISTs offline, one after the other.
 */
const prober = (base: string, mark: boolean) => `
  const url = ${JSON.stringify(base)} + ${JSON.stringify(listPath)};
  const h = { 'user-agent': 'kubelet/v1.34.4', accept: 'application/json' };
  await (await fetch(url, { headers: h })).text();
  console.log('ready');
  let cutAt = 0;
  process.stdin.on('data', () => { cutAt = performance.now(); });
  for (;;) {
    const sent = performance.now();
    try {
      const r = await fetch(url, { headers: h, signal: AbortSignal.timeout(5000) });
      await r.text();
      if (cutAt && sent > cutAt && r.status === 200 && (${mark} ? r.headers.get('x-tether-source') === 'cache' : true)) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 5));
  }
  const first = performance.now() - cutAt;
  const lists = [];
  for (let i = 0; i < 20; i++) { const t = performance.now(); await (await fetch(url, { headers: h })).text(); lists.push(performance.now() - t); }
  lists.sort((a, b) => a - b);
  console.log(JSON.stringify({ ms: first, listP50: lists[10] }));
  process.exit(0);`;
async function cutAndProbe(site: EdgeSite, base: string, mark: boolean): Promise<{ ms: number; listP50: number }> {
  const p = site.spawn([process.execPath, '-e', prober(base, mark)]);
  let out = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await until('prober ready', async () => out, (o) => o.includes('ready'), 60_000);
  await site.cut();
  p.stdin!.write('cut\n');
  await until('first answer from the cache', async () => out, (o) => o.includes('"ms"'), 60_000);
  await site.heal();
  return JSON.parse(out.split('\n').find((l) => l.includes('"ms"'))!);
}

log('partition: time from the cut to the first answer from the cache');
const site = await createEdgeSite(`bench-${process.pid}`);
const siteArgs = ['--node-name', NODE, '--servers', cluster.edgeServer, '--ca-file', cluster.caFile, '--cert-file', cert.certFile,
  '--key-file', cert.keyFile, '--data-dir', join(work, 'site-store'), '--insecure-plain-http', 'true'];
const siteAgent = await startAgentProcess(siteArgs, (cmd) => site.spawn(cmd), agentBin);
const edgeCut = await cutAndProbe(site, 'http://127.0.0.1:10261', true);
const yurtCut = yurt && yurtSite ? await cutAndProbe(yurtSite, yurt.proxy, false) : undefined;
const directOnline: number[] = [];
for (let i = 0; i < 20; i++) directOnline.push((await direct.get(listPath)).ms);
await siteAgent.stop();
viaYurt?.close();
await yurt?.stop();

log(`outage of ${OUTAGE_S} s with a kubelet simulator behind the agent, then requests upstream in the first minute`);
const simNode = 'bench-edge';
const simCert = await cluster.issueClientCert(`system:node:${simNode}`, ['system:nodes']);
const outAgent = await startAgentProcess(['--node-name', simNode, '--servers', cluster.edgeServer, '--ca-file', cluster.caFile, '--cert-file', simCert.certFile,
  '--key-file', simCert.keyFile, '--data-dir', join(work, 'outage-store'), '--insecure-plain-http', 'true'], (cmd) => site.spawn(cmd), agentBin);
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
await sleep(OUTAGE_S * 1000);
const beforeHeal = upstreamBy(await metrics());
await site.heal();
await sleep(60_000);
const afterHeal = upstreamBy(await metrics());
const firstMinute: Record<string, number> = {};
for (const [verb, n] of Object.entries(afterHeal)) if (n - (beforeHeal[verb] ?? 0) > 0) firstMinute[verb] = n - (beforeHeal[verb] ?? 0);
sim.kill('SIGTERM');
await outAgent.stop();
await destroyAllSites();
direct.close();

// ---- the table: tether-edge, YurtHub (when given) and direct side by side ----
const withYurt = !!yurt;
const rows: string[] = [];
const row = (measure: string, edge: string, yurtCell: string, base: string, edgeRatio: string, yurtRatio: string, goal: string) =>
  rows.push(`| ${[measure, edge, ...(withYurt ? [yurtCell] : []), base, edgeRatio, ...(withYurt ? [yurtRatio] : []), goal].join(' | ')} |`);
const lat = (name: string, r: { direct: number[]; edge: number[]; yurt: number[] }, p: number, goal: string) =>
  row(name, ms(pct(r.edge, p)), ms(pct(r.yurt, p)), ms(pct(r.direct, p)), x(pct(r.edge, p), pct(r.direct, p)), x(pct(r.yurt, p), pct(r.direct, p)), goal);
const mem = (m?: { rss: number; anon: number }) => (m ? `${mb(m.rss)} (${mb(m.anon)})` : '–');

lat('GET one pod, p50', gets, 0.5, '≤ 1.10×');
lat('GET one pod, p99', gets, 0.99, '≤ 1.25×');
lat(`LIST ${PODS} pods (node field selector), p50`, lists, 0.5, '≤ 1.05×');
lat(`LIST ${PODS} pods, p99`, lists, 0.99, '');
row('agent CPU over the same online phase (GET, LIST, watch)', `${cpu.edge.toFixed(2)} s`, `${cpu.yurt.toFixed(2)} s`, '', '', withYurt ? x(cpu.edge, cpu.yurt) + ' of YurtHub' : '', '');
row(`watch added delivery delay p50 / p99 (${watchResult.n} events)`, `${ms(watchResult.edge.p50)} / ${ms(watchResult.edge.p99)}`,
  watchResult.yurt ? `${ms(watchResult.yurt.p50)} / ${ms(watchResult.yurt.p99)}` : '', '0 (same events, direct watch)', '', '', '≤ 1 ms / 5 ms');
row('idle RSS (anonymous)', mem(idle.edge), mem(idle.yurt), `${mb(bareMem.rss)} (${mb(bareMem.anon)}) idle \`bun -e\``, idle.yurt ? `${x(idle.edge.rss, idle.yurt.rss)} (${x(idle.edge.anon, idle.yurt.anon)}) of YurtHub` : '', '', '≤ 0.9× YurtHub');
row('RSS (anonymous) after a burst of 100 LISTs, 15 s later', mem(afterBurst.edge), mem(afterBurst.yurt), '', `+${mb(afterBurst.edge.rss - idle.edge.rss)} (+${mb(afterBurst.edge.anon - idle.edge.anon)}) over idle`,
  afterBurst.yurt && idle.yurt ? `+${mb(afterBurst.yurt.rss - idle.yurt.rss)} (+${mb(afterBurst.yurt.anon - idle.yurt.anon)}) over idle` : '', 'back to idle');
row(`RSS (anonymous) with ${objectsCached} cached objects`, mem(full), '', `${mem(idle2)} idle, same run`, `${kb((full.rss - idle2.rss) / objectsCached)} (${kb((full.anon - idle2.anon) / objectsCached)}) per object`, '', '');
row('start → ready (online)', ms(edgeStartMs), ms(yurtStartMs), '', '', '', '');
row('cut → first answer from the cache', ms(edgeCut.ms), yurtCut ? ms(yurtCut.ms) : '', '', '', '', '≤ 1 s');
row(`offline LIST ${PODS} pods from the cache vs the apiserver online, p50`, ms(edgeCut.listP50), yurtCut ? ms(yurtCut.listP50) : '', ms(pct(directOnline, 0.5)),
  `${x(pct(directOnline, 0.5), edgeCut.listP50)} faster`, yurtCut ? `${x(pct(directOnline, 0.5), yurtCut.listP50)} faster` : '', '≥ 4× faster');
row(`offline LIST from the store, loopback, p50 (host; direct alternating)`, ms(pct(offline.edge, 0.5)), '', ms(pct(offline.direct, 0.5)), `${x(pct(offline.direct, 0.5), pct(offline.edge, 0.5))} faster`, '', '≥ 4× faster');
row('restart offline (kill -9 case) → first answer from the store', ms(firstAnswerMs), '', '', '', '', '≤ 1 s');
row(`upstream requests in the first minute after a ${OUTAGE_S} s outage`, Object.entries(firstMinute).map(([v, n]) => `${v}=${n}`).join(', ') || 'none', '', '', '', '', 'no full LIST');
row('hub idle RSS (anonymous), compiled `tether-hub run`, controllers leading', mem(hubCompiled), '', `${mem(hubSource)} from source`, '', '', '≤ 50 MB');

const header = withYurt
  ? ['| measure | tether-edge | YurtHub | direct / baseline | tether-edge ÷ direct | YurtHub ÷ direct | goal |', '|---|---:|---:|---:|---:|---:|---|']
  : ['| measure | tether-edge | direct / baseline | tether-edge ÷ direct | goal |', '|---|---:|---:|---:|---|'];
const section = [
  '## Edge agent',
  '',
  `Measured ${new Date().toISOString().slice(0, 10)} on this machine (2 cores, shared with other work while it ran) against the real control plane, with \`bun scripts/bench/edge-agent.ts --outage-seconds ${OUTAGE_S}${withYurt ? ' --yurthub …' : ''}\`. ` +
    `The agent and the hub are the ${agentBin ? 'compiled binaries (`scripts/build.ts`, bun-linux-x64)' : 'sources under this Bun (`--from-source`)'}; requests alternate direct (kube-apiserver with the node's certificate), tether-edge${withYurt ? ' and YurtHub' : ''}, one by one. ` +
    'Memory is RSS with the anonymous (private) part in brackets; the rest of RSS is the runtime\'s code mapped from the executable. ' +
    (withYurt
      ? 'YurtHub runs in an edge site of its own (requests cross its veth); the cut rows are measured inside each agent\'s site.'
      : 'No YurtHub binary was given (`--yurthub PATH`; the project never builds or ships it), so its columns are left out. The cut rows are measured inside the agent\'s edge site.'),
  '',
  ...header,
  ...rows,
  '',
].join('\n');
publishSection('Edge agent', section);
process.exit(0);
