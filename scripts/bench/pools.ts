#!/usr/bin/env bun
/**
 * Pools benchmark for docs/benchmarks.md: 100 NodePools × 10 Node objects and 20 PoolSets (each
 * selecting 10 pools by label: 200 Deployments), reconciled by the hub's controllers running as
 * their own process (scripts/bench/pools-hub.ts) against a real control plane started for the run.
 * Measures, side by side with a baseline in the same run:
 *   - time from creating the objects until every status has converged, against the time the
 *     apiserver took to accept them;
 *   - the API requests the hub made per reconciled object, against one write per object;
 *   - the hub's RSS, against an idle bare Bun process;
 * for three phases: creation, a change of every pool and every template, and a hub restart with
 * nothing to do. Needs root (the cluster's edge address). Prints a markdown section;
 * `--write` replaces the "Pools" section of docs/benchmarks.md.
 */
import { publishSection } from './doc.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster } from '../../test/support/cluster.ts';

const root = join(import.meta.dir, '../..');
const POOLS = 100;
const NODES_PER_POOL = 10;
const POOLSETS = 20;
const BANDS = 10; // PoolSet j selects the pools of band j % 10: 10 pools each
const ns = 'bench';
const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

const cluster = await startCluster({ nodeMonitorGracePeriod: '20s' });
const api = cluster.admin;
const must = async (method: string, path: string, body?: unknown) => {
  const r = await api.request(method, path, body, 60_000);
  if (r.status >= 300) throw new Error(`${method} ${path}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  return r.body;
};
async function parallel<T>(items: T[], n: number, fn: (t: T) => Promise<unknown>) {
  let i = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (i < items.length) await fn(items[i++]!);
  }));
}
function rssOf(pid: number): number {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) * 1024 : NaN;
}

interface Hub {
  child: ChildProcess;
  metrics(): Promise<Map<string, number>>;
  stop(): Promise<void>;
}

async function startHub(): Promise<Hub> {
  const child = spawn(process.execPath, [join(root, 'scripts/bench/pools-hub.ts'), '--kubeconfig', cluster.adminKubeconfig, '--lease-namespace', 'kube-system', '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const address = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      const m = out.match(/admin on (http:\/\/\S+)/);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (c) => reject(new Error(`pools-hub exited with ${c}`)));
  });
  return {
    child,
    async metrics() {
      const text = await (await fetch(`${address}/metrics`)).text();
      const out = new Map<string, number>();
      for (const line of text.split('\n')) {
        const m = line.match(/^(\w+)(\{[^}]*\})? (\S+)$/);
        if (m) out.set(m[1]! + (m[2] ?? ''), Number(m[3]));
      }
      return out;
    },
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

const sum = (m: Map<string, number>, prefix: string, filter = '') =>
  [...m].filter(([k]) => k.startsWith(prefix) && k.includes(filter)).reduce((n, [, v]) => n + v, 0);

/** Polls `ok` (every 250 ms) while sampling the hub's RSS; returns elapsed ms and the peak RSS. */
async function converge(what: string, hub: Hub, ok: () => Promise<boolean>, t0: number) {
  let peak = 0;
  for (;;) {
    peak = Math.max(peak, rssOf(hub.child.pid!));
    if (await ok()) return { ms: performance.now() - t0, peak };
    if (performance.now() - t0 > 900_000) throw new Error(`bench: ${what} did not converge in 15 minutes`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const poolName = (i: number) => `pool-${String(i).padStart(3, '0')}`;
const isTrue = (o: any, type: string) => (o.status?.conditions ?? []).some((c: any) => c.type === type && c.status === 'True');
const observed = (o: any) => o.status?.observedGeneration === o.metadata.generation;

async function poolsConverged(wave: number): Promise<boolean> {
  const pools = (await must('GET', '/apis/apps.tether.dev/v1alpha1/nodepools')).items as any[];
  return pools.length === POOLS && pools.every((p) => observed(p) && p.status.nodes?.length === NODES_PER_POOL && isTrue(p, 'Applied') && p.spec.labels.wave === String(wave));
}
async function setsConverged(wave: number): Promise<boolean> {
  const sets = (await must('GET', `/apis/apps.tether.dev/v1alpha1/namespaces/${ns}/poolsets`)).items as any[];
  return (
    sets.length === POOLSETS &&
    sets.every((p) => observed(p) && p.spec.workload.spec.template.metadata.annotations.wave === String(wave) && p.status.poolCount === POOLS / BANDS && isTrue(p, 'Synced') && p.status.pools.every((x: any) => x.updated === x.desired))
  );
}
async function nodesCarryWave(wave: number): Promise<number> {
  const nodes = (await must('GET', '/api/v1/nodes?labelSelector=bench%3Dpools')).items as any[];
  return nodes.filter((n) => n.metadata.labels.wave === String(wave) && n.metadata.labels.site === n.metadata.labels['apps.tether.dev/pool']).length;
}

const nodePool = (i: number, wave: number) => ({
  apiVersion: 'apps.tether.dev/v1alpha1',
  kind: 'NodePool',
  metadata: { name: poolName(i), labels: { band: `b${i % BANDS}` } },
  spec: { labels: { site: poolName(i), wave: String(wave) }, annotations: { 'example.com/site': poolName(i) }, taints: [{ key: 'example.com/site', value: poolName(i), effect: 'PreferNoSchedule' }] },
});
const poolSet = (j: number, wave: number) => ({
  apiVersion: 'apps.tether.dev/v1alpha1',
  kind: 'PoolSet',
  metadata: { name: `set-${j}`, namespace: ns },
  spec: {
    poolSelector: { matchLabels: { band: `b${j % BANDS}` } },
    workload: {
      kind: 'Deployment',
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: `set-${j}` } },
        template: { metadata: { labels: { app: `set-${j}` }, annotations: { wave: String(wave) } }, spec: { containers: [{ name: 'app', image: 'registry.invalid/app:1' }] } },
      },
    },
    tweaks: [{ poolSelector: { matchLabels: { band: `b${j % BANDS}` } }, patches: [{ op: 'add', path: '/spec/template/spec/containers/0/env', value: [{ name: 'SITE', value: '{{pool}}' }] }] }],
  },
});

// Baseline process: an idle bare Bun.
const bare = spawn(process.execPath, ['-e', 'console.log("ready"); setInterval(() => {}, 1000)'], { stdio: ['ignore', 'pipe', 'ignore'] });
await new Promise<void>((r) => bare.stdout!.once('data', () => r()));

let hub = await startHub();
try {
  for (const f of ['apps.tether.dev_nodepools.yaml', 'apps.tether.dev_poolsets.yaml']) {
    const r = await cluster.kubectl(['apply', '-f', join(root, 'deploy/crds', f)]);
    if (r.code !== 0) throw new Error(r.stderr);
  }
  await cluster.kubectl(['wait', '--for', 'condition=established', 'crd/nodepools.apps.tether.dev', 'crd/poolsets.apps.tether.dev']);
  await must('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  await new Promise((r) => setTimeout(r, 3000)); // let the hub's informers sync the new CRDs
  const idleRss = rssOf(hub.child.pid!);
  const m0 = await hub.metrics();

  // Phase 1: creation.
  const t0 = performance.now();
  const nodes = Array.from({ length: POOLS * NODES_PER_POOL }, (_, k) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: `node-${String(k).padStart(4, '0')}`, labels: { bench: 'pools', 'apps.tether.dev/pool': poolName(Math.floor(k / NODES_PER_POOL)) } },
  }));
  await parallel(nodes, 16, (n) => must('POST', '/api/v1/nodes', n));
  await parallel(Array.from({ length: POOLS }, (_, i) => i), 16, (i) => must('POST', '/apis/apps.tether.dev/v1alpha1/nodepools', nodePool(i, 1)));
  await parallel(Array.from({ length: POOLSETS }, (_, j) => j), 16, (j) => must('POST', `/apis/apps.tether.dev/v1alpha1/namespaces/${ns}/poolsets`, poolSet(j, 1)));
  const created = performance.now() - t0;
  console.error(`bench: created in ${s(created)}`);
  const c1 = await converge('creation', hub, async () => (await poolsConverged(1)) && (await setsConverged(1)), t0);
  console.error(`bench: creation converged in ${s(c1.ms)}`);
  const m1 = await hub.metrics();
  const labelled1 = await nodesCarryWave(1);
  const settledRss = rssOf(hub.child.pid!);

  // Phase 2: every pool and every template changes.
  const t2 = performance.now();
  await parallel(Array.from({ length: POOLS }, (_, i) => i), 16, (i) =>
    api.request('PATCH', `/apis/apps.tether.dev/v1alpha1/nodepools/${poolName(i)}`, { spec: { labels: { wave: '2' } } }),
  );
  await parallel(Array.from({ length: POOLSETS }, (_, j) => j), 16, (j) =>
    api.request('PATCH', `/apis/apps.tether.dev/v1alpha1/namespaces/${ns}/poolsets/set-${j}`, { spec: { workload: { spec: { template: { metadata: { annotations: { wave: '2' } } } } } } }),
  );
  const changed = performance.now() - t2;
  const c2 = await converge('change', hub, async () => (await poolsConverged(2)) && (await setsConverged(2)), t2);
  console.error(`bench: change converged in ${s(c2.ms)}`);
  const m2 = await hub.metrics();
  const labelled2 = await nodesCarryWave(2);

  // Phase 3: a restarted hub on a converged cluster; done when no request came for 3 s.
  await hub.stop();
  const t3 = performance.now();
  hub = await startHub();
  let last = -1;
  let quietSince = performance.now();
  let peak3 = 0;
  for (;;) {
    peak3 = Math.max(peak3, rssOf(hub.child.pid!));
    // Lease renewals go on every 2 s: quiet means no other request.
    const m = await hub.metrics();
    const n = sum(m, 'tether_hub_kube_requests_total') - sum(m, 'tether_hub_kube_requests_total', 'resource="leases"');
    if (n !== last) {
      last = n;
      quietSince = performance.now();
    } else if (performance.now() - quietSince > 3000 && n > 0) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const m3 = await hub.metrics();
  const restartMs = quietSince - t3;

  const objects1 = POOLS * NODES_PER_POOL + POOLS + POOLSETS + POOLSETS * (POOLS / BANDS);
  const req = (a: Map<string, number>, b: Map<string, number>, filter = '') => sum(b, 'tether_hub_kube_requests_total', filter) - sum(a, 'tether_hub_kube_requests_total', filter);
  /** Writes other than lease renewals (those go on every 2 s whatever happens). */
  const writeCount = (m: Map<string, number>) =>
    [...m].filter(([k]) => k.startsWith('tether_hub_kube_requests_total') && /verb="(PATCH|PUT|POST|DELETE)"/.test(k) && !k.includes('resource="leases"')).reduce((n, [, v]) => n + v, 0);
  const writes = (a: Map<string, number>, b: Map<string, number>) => writeCount(b) - writeCount(a);
  const r1 = req(m0, m1);
  const r2 = req(m1, m2);
  const r3 = sum(m3, 'tether_hub_kube_requests_total') - sum(m3, 'tether_hub_kube_requests_total', 'resource="leases"');
  const bareRss = rssOf(bare.pid!);
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

  const section = [
    '## Pools',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on this machine (2 cores), \`bun scripts/bench/pools.ts\`: a control plane of its own,`,
    `${POOLS} NodePools × ${NODES_PER_POOL} Node objects (no kubelets), ${POOLSETS} PoolSets each selecting ${POOLS / BANDS} pools by label`,
    `(${POOLSETS * (POOLS / BANDS)} Deployments of 1 replica, one tweak each); the controllers run as their own process (\`scripts/bench/pools-hub.ts\`,`,
    '4 workers per controller). "Converged": every NodePool and PoolSet status observed its generation, lists its nodes',
    'or pools, Applied/Synced True, every pool workload updated. Objects reconciled at creation: nodes + pools + sets + workloads',
    `= ${objects1}.`,
    '',
    '| phase | measure | hub | baseline | ratio |',
    '|---|---|---:|---:|---:|',
    `| creation | time to converged | ${s(c1.ms)} | ${s(created)} (apiserver accepting the ${objects1 - POOLSETS * (POOLS / BANDS)} objects) | ${ratio(c1.ms, created)} |`,
    `| creation | API requests per reconciled object | ${(r1 / objects1).toFixed(2)} (${r1} requests, ${writes(m0, m1)} writes) | 1 write per object | ${ratio(r1, objects1)} |`,
    `| change of every pool and template | time to converged | ${s(c2.ms)} | ${s(changed)} (apiserver accepting the ${POOLS + POOLSETS} patches) | ${ratio(c2.ms, changed)} |`,
    `| change of every pool and template | API requests per reconciled object | ${(r2 / objects1).toFixed(2)} (${r2} requests, ${writes(m1, m2)} writes) | 1 write per object | ${ratio(r2, objects1)} |`,
    `| restart, nothing to do | requests until quiet (leases aside) | ${r3} (${writeCount(m3)} writes) in ${s(restartMs)} | 0 writes | – |`,
    `| – | hub RSS idle (before the objects) | ${mb(idleRss)} | ${mb(bareRss)} (idle \`bun -e\`) | ${ratio(idleRss, bareRss)} |`,
    `| creation | hub RSS peak / settled | ${mb(c1.peak)} / ${mb(settledRss)} | ${mb(bareRss)} | ${ratio(c1.peak, bareRss)} |`,
    `| change | hub RSS peak | ${mb(c2.peak)} | ${mb(bareRss)} | ${ratio(c2.peak, bareRss)} |`,
    `| restart | hub RSS peak | ${mb(peak3)} | ${mb(bareRss)} | ${ratio(peak3, bareRss)} |`,
    '',
    `Checked from the apiserver after each phase: ${labelled1} / ${labelled2} of ${POOLS * NODES_PER_POOL} nodes carried their pool's labels.`,
    'Requests by resource at creation: ' +
      [...m1]
        .filter(([k]) => k.startsWith('tether_hub_kube_requests_total'))
        .map(([k, v]) => {
          const code = k.match(/code="([^"]+)"/)?.[1] ?? '';
          const label = `${k.match(/resource="([^"]+)"/)?.[1]} ${k.match(/verb="([^"]+)"/)?.[1]}${code.startsWith('2') ? '' : ` → ${code}`}`;
          return [label, v - (m0.get(k) ?? 0)] as const;
        })
        .filter(([, v]) => v > 0)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') +
      '.',
    '',
  ];
  publishSection('Pools', section.join('\n'));
} finally {
  await hub.stop().catch(() => {});
  bare.kill();
  await cluster.stop();
}
process.exit(0);
