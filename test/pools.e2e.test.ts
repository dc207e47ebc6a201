/**
 * Node pools and pool sets on the real control plane: three simulated kubelets (each in its own
 * edge site, with its own node certificate) in two NodePools, the hub's controllers running
 * in-process as the hub's service account with exactly the RBAC of deploy/rbac.yaml, driven by
 * the real kubectl: printer columns, pool labels/annotations/taints on members and their clean-up,
 * a node moving pools, a PoolSet's per-pool Deployments with tweaks, refused overlapping tweaks,
 * deselection and deletion, CSR approval and denial, and a second replica taking over the lease.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { sharedCluster, type Cluster } from './support/cluster.ts';
import { prepareHub, kubectlOf, nodeReady, startHub, startSimNode, tokenKubeconfig, until, type InProcessHub, type SimNode } from './support/pools.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('pools.e2e.test.ts skipped: edge network namespaces need root');

const id = String(process.pid);
const ns = `pools-e2e-${id}`;
const north = `north-${id}`;
const south = `south-${id}`;
const names = [1, 2, 3].map((i) => `pools-n${i}-${id}`);
const [n1, n2, n3] = names as [string, string, string];

describe.skipIf(!isRoot)('node pools and pool sets', () => {
  let cluster: Cluster;
  let kubectl: ReturnType<typeof kubectlOf>;
  let sims: SimNode[] = [];
  let hub: InProcessHub | undefined;
  let hub2: InProcessHub | undefined;
  let kubeconfig: string;
  const csrs: string[] = [];

  const getJson = async (args: string[]) => JSON.parse(await kubectl([...args, '-o', 'json']));
  const node = (n: string) => getJson(['get', 'node', n]);
  const pool = (p: string) => getJson(['get', 'nodepool', p]);
  const deployments = async () => (await getJson(['get', 'deployments', '-n', ns])).items as any[];
  const pods = async (selector: string) => (await getJson(['get', 'pods', '-n', ns, '-l', selector])).items as any[];
  const explain = (e: unknown): never => {
    throw new Error(`${(e as Error).message}\n--- hub log ---\n${[...(hub?.log ?? []), ...(hub2?.log ?? [])].slice(-40).join('\n')}`);
  };

  beforeAll(async () => {
    cluster = await sharedCluster();
    kubectl = kubectlOf(cluster);
    const token = await prepareHub(cluster, ns, ['nodepools', 'poolsets']);
    kubeconfig = tokenKubeconfig(cluster, token);
    sims = await Promise.all(names.map((n, i) => startSimNode(cluster, n, `pools${i + 1}-${id}`)));
    hub = startHub(kubeconfig, `hub-a-${id}`, ns);
    await until('nodes Ready', () => Promise.all(names.map(node)), (ns) => ns.every(nodeReady), 120_000);
    await kubectl(['label', 'node', n1, n2, `apps.tether.dev/pool=${north}`]);
    await kubectl(['label', 'node', n3, `apps.tether.dev/pool=${south}`]);
    const pools = [
      {
        apiVersion: 'apps.tether.dev/v1alpha1',
        kind: 'NodePool',
        metadata: { name: north, labels: { region: 'north' } },
        spec: {
          labels: { site: 'north', 'example.com/tier': 'edge' },
          annotations: { 'example.com/owner': 'ops' },
          taints: [{ key: 'example.com/edge', value: 'yes', effect: 'NoSchedule' }],
        },
      },
      { apiVersion: 'apps.tether.dev/v1alpha1', kind: 'NodePool', metadata: { name: south, labels: { region: 'south' } }, spec: { type: 'Cloud', labels: { site: 'south' } } },
    ];
    await kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: pools }));
  }, 600_000);

  afterAll(async () => {
    await hub?.controllers.stop();
    await hub2?.controllers.stop();
    if (cluster) {
      await cluster.kubectl(['delete', 'namespace', ns, '--wait=false', '--ignore-not-found']);
      await cluster.kubectl(['delete', 'nodepool', north, south, '--ignore-not-found']);
      await cluster.kubectl(['delete', 'node', ...names, '--ignore-not-found', '--wait=false']);
      if (csrs.length) await cluster.kubectl(['delete', 'csr', ...csrs, '--ignore-not-found']);
    }
    await Promise.all(sims.map((s) => s.stop()));
  }, 120_000);

  test('the hub runs as its service account (deploy/rbac.yaml) and holds the lease', async () => {
    await hub!.controllers.running();
    expect(hub!.controllers.isLeader()).toBe(true);
    const lease = await getJson(['get', 'lease', '-n', ns, 'tether-hub-controllers']);
    expect(lease.spec.holderIdentity).toBe(`hub-a-${id}`);
  }, 60_000);

  test('kubectl get nodepools shows type and ready / not-ready counts', async () => {
    const applied = (p: any) => p.status?.conditions?.find((c: any) => c.type === 'Applied')?.status === 'True';
    await until('pool status', () => Promise.all([pool(north), pool(south)]), ([a, b]) => a.status?.readyNodeNum === 2 && b.status?.readyNodeNum === 1 && applied(a) && applied(b)).catch(explain);
    const out = await kubectl(['get', 'nodepools', north, south]);
    const [header, ...rows] = out.trim().split('\n');
    expect(header!.split(/\s+/)).toEqual(['NAME', 'TYPE', 'READY', 'NOTREADY', 'AGE']);
    expect(rows.find((r) => r.startsWith(north + ' '))!.split(/\s+/).slice(0, 4)).toEqual([north, 'Edge', '2', '0']);
    expect(rows.find((r) => r.startsWith(south + ' '))!.split(/\s+/).slice(0, 4)).toEqual([south, 'Cloud', '1', '0']);
    expect((await kubectl(['get', 'np', north, '-o', 'name'])).trim()).toBe(`nodepool.apps.tether.dev/${north}`);
    const status = (await pool(north)).status;
    expect(status.nodes).toEqual([n1, n2].sort());
    expect(status.conditions.find((c: any) => c.type === 'Applied').message).toBe('applied to 2 node(s)');
  }, 120_000);

  test('pool labels, annotations and taints appear on the members, and only there', async () => {
    const [a, b, c] = await until('members labelled', () => Promise.all(names.map(node)), (ns) => ns[0].metadata.labels.site === 'north' && ns[1].metadata.labels.site === 'north' && ns[2].metadata.labels.site === 'south').catch(explain);
    for (const n of [a, b]) {
      expect(n.metadata.labels['example.com/tier']).toBe('edge');
      expect(n.metadata.annotations['example.com/owner']).toBe('ops');
      expect(n.spec.taints).toContainEqual({ key: 'example.com/edge', value: 'yes', effect: 'NoSchedule' });
    }
    expect(c.metadata.labels['example.com/tier']).toBeUndefined();
    expect(c.spec.taints ?? []).not.toContainEqual(expect.objectContaining({ key: 'example.com/edge' }));
  }, 120_000);

  test('entries removed from the pool are removed from the members; everything else on them stays', async () => {
    await kubectl(['label', 'node', n1, 'hand=made']);
    await kubectl(['patch', 'nodepool', north, '--type=json', '-p', JSON.stringify([{ op: 'remove', path: '/spec/taints' }, { op: 'remove', path: '/spec/labels/example.com~1tier' }])]);
    const n = await until('pool entries gone', () => node(n1), (n) => !n.metadata.labels['example.com/tier'] && !(n.spec.taints ?? []).some((t: any) => t.key === 'example.com/edge')).catch(explain);
    expect(n.metadata.labels.hand).toBe('made');
    expect(n.metadata.labels.site).toBe('north');
    expect(n.metadata.annotations['example.com/owner']).toBe('ops');
    const other = await node(n2);
    expect(other.metadata.labels['example.com/tier']).toBeUndefined();
  }, 120_000);

  test('a node moved to another pool takes that pool\'s entries and drops the old pool\'s', async () => {
    await kubectl(['label', 'node', n2, `apps.tether.dev/pool=${south}`, '--overwrite']);
    const n = await until('n2 follows', () => node(n2), (n) => n.metadata.labels.site === 'south').catch(explain);
    expect(n.metadata.annotations['example.com/owner']).toBeUndefined();
    const [a, b] = await until('statuses follow', () => Promise.all([pool(north), pool(south)]), ([a, b]) => a.status.nodes.length === 1 && b.status.nodes.length === 2).catch(explain);
    expect(a.status.nodes).toEqual([n1]);
    expect(b.status.nodes).toEqual([n2, n3].sort());
  }, 120_000);

  const poolSet = (pools: string[], extraTweaks: unknown[] = [], podAnnotations: Record<string, string> = {}) => ({
    apiVersion: 'apps.tether.dev/v1alpha1',
    kind: 'PoolSet',
    metadata: { name: 'web', namespace: ns },
    spec: {
      pools,
      workload: {
        kind: 'Deployment',
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' }, annotations: podAnnotations },
            spec: { tolerations: [{ key: 'example.com/edge', operator: 'Exists' }], containers: [{ name: 'app', image: 'registry.invalid/web:1' }] },
          },
        },
      },
      tweaks: [
        { pools: [north], replicas: 2, containerImages: [{ name: 'app', image: 'registry.invalid/web:north' }] },
        { poolSelector: { matchLabels: { region: 'south' } }, patches: [{ op: 'add', path: '/spec/template/spec/containers/0/env', value: [{ name: 'POOL', value: 'site-{{pool}}' }] }] },
        ...extraTweaks,
      ],
    },
  });
  const members = async (p: string) => (await pool(p)).status.nodes as string[];

  test('a PoolSet yields one Deployment per pool, whose pods run only in that pool, with each pool\'s tweaks', async () => {
    await kubectl(['apply', '-f', '-'], JSON.stringify(poolSet([north, south])));
    const ds = await until('two deployments', deployments, (ds) => ds.length === 2).catch(explain);
    const byName = Object.fromEntries(ds.map((d) => [d.metadata.name, d]));
    const a = byName[`web-${north}`];
    const b = byName[`web-${south}`];
    expect(a.spec.replicas).toBe(2);
    expect(a.spec.template.spec.containers[0].image).toBe('registry.invalid/web:north');
    expect(a.spec.template.spec.containers[0].env).toBeUndefined();
    expect(b.spec.replicas).toBe(1);
    expect(b.spec.template.spec.containers[0].image).toBe('registry.invalid/web:1');
    expect(b.spec.template.spec.containers[0].env).toEqual([{ name: 'POOL', value: `site-${south}` }]);
    expect(a.metadata.ownerReferences[0]).toMatchObject({ kind: 'PoolSet', name: 'web', controller: true });

    for (const [p, want] of [[north, 2], [south, 1]] as const) {
      const ps = await until(`pods of ${p} running`, () => pods(`apps.tether.dev/pool=${p}`), (ps) => ps.length === want && ps.every((x) => x.status.phase === 'Running')).catch(explain);
      const inPool = await members(p);
      for (const x of ps) expect(inPool).toContain(x.spec.nodeName);
    }
    const status = await until('poolset status', () => getJson(['get', 'poolset', 'web', '-n', ns]), (s) => s.status?.readyReplicas === 3).catch(explain);
    expect(status.status.pools.map((p: any) => [p.name, p.desired, p.ready])).toEqual([[north, 2, 2], [south, 1, 1]].sort());
    const out = await kubectl(['get', 'poolsets', '-n', ns]);
    const [header, row] = out.trim().split('\n');
    expect(header!.split(/\s+/)).toEqual(['NAME', 'KIND', 'POOLS', 'DESIRED', 'READY', 'UPDATED', 'AGE']);
    expect(row!.split(/\s+/).slice(0, 6)).toEqual(['web', 'Deployment', '2', '3', '3', '3']);
    expect((await kubectl(['get', 'ps', '-n', ns, '-o', 'name'])).trim()).toBe('poolset.apps.tether.dev/web');
  }, 180_000);

  test('a template change rolls out to every pool', async () => {
    await kubectl(['apply', '-f', '-'], JSON.stringify(poolSet([north, south], [], { revision: '2' })));
    const ps = await until('new pods everywhere', () => pods('app=web'), (ps) => ps.length === 3 && ps.every((p) => p.metadata.annotations?.revision === '2' && p.status.phase === 'Running' && !p.metadata.deletionTimestamp)).catch(explain);
    expect(new Set(ps.map((p) => p.metadata.labels['apps.tether.dev/pool']))).toEqual(new Set([north, south]));
    await until('status updated', () => getJson(['get', 'poolset', 'web', '-n', ns]), (s) => s.status.updatedReplicas === 3 && s.status.conditions.find((c: any) => c.type === 'Ready')?.status === 'True').catch(explain);
  }, 180_000);

  test('a tweak overlapping an earlier one is refused with a condition naming both; that pool keeps its workload', async () => {
    await kubectl(['apply', '-f', '-'], JSON.stringify(poolSet([north, south], [{ pools: [north], patches: [{ op: 'replace', path: '/spec/replicas', value: 5 }] }], { revision: '2' })));
    const s = await until('TweaksValid False', () => getJson(['get', 'poolset', 'web', '-n', ns]), (s) => s.status.conditions.find((c: any) => c.type === 'TweaksValid')?.status === 'False').catch(explain);
    const c = s.status.conditions.find((c: any) => c.type === 'TweaksValid');
    expect(c.reason).toBe('TweakConflict');
    expect(c.message).toBe(`${north}: tweaks[2].patches[0] (/spec/replicas) overlaps tweaks[0].replicas (/spec/replicas)`);
    expect((await getJson(['get', 'deployment', `web-${north}`, '-n', ns])).spec.replicas).toBe(2);
    await kubectl(['apply', '-f', '-'], JSON.stringify(poolSet([north, south], [], { revision: '2' })));
    await until('TweaksValid True', () => getJson(['get', 'poolset', 'web', '-n', ns]), (s) => s.status.conditions.find((c: any) => c.type === 'TweaksValid')?.status === 'True').catch(explain);
  }, 120_000);

  test('removing a pool from the selection removes its workload', async () => {
    await kubectl(['apply', '-f', '-'], JSON.stringify(poolSet([south], [], { revision: '2' })));
    const ds = await until('north workload gone', deployments, (ds) => ds.length === 1).catch(explain);
    expect(ds[0].metadata.name).toBe(`web-${south}`);
    await until('poolCount 1', () => getJson(['get', 'poolset', 'web', '-n', ns]), (s) => s.status.poolCount === 1).catch(explain);
  }, 120_000);

  test('deleting the PoolSet deletes its workloads (owner references)', async () => {
    await kubectl(['delete', 'poolset', 'web', '-n', ns]);
    await until('workloads gone', deployments, (ds) => ds.length === 0).catch(explain);
  }, 120_000);

  const csrFor = async (cn: string, signerName: string, as: SimNode) => {
    const r = spawnSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', '/dev/null', '-subj', `/O=system:nodes/CN=${cn}`], { encoding: 'utf8' });
    const name = `pools-e2e-${id}-${csrs.length}`;
    csrs.push(name);
    const res = await cluster.client(as.cert).request('POST', '/apis/certificates.k8s.io/v1/certificatesigningrequests', {
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name },
      spec: { request: Buffer.from(r.stdout).toString('base64'), signerName, usages: ['digital signature', 'client auth'] },
    });
    if (res.status !== 201) throw new Error(`create CSR: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    return until(`CSR ${name} decided`, () => getJson(['get', 'csr', name]), (c) => (c.status?.conditions ?? []).length > 0).catch(explain);
  };

  test("a CSR for another node's name is denied with a reason; a node renewing its own is approved", async () => {
    const denied = await csrFor(`system:node:${n2}`, 'kubernetes.io/kube-apiserver-client', sims[0]!);
    expect(denied.status.conditions[0]).toMatchObject({ type: 'Denied', status: 'True', reason: 'TetherNotEntitled' });
    expect(denied.status.conditions[0].message).toContain(`system:node:${n1} may not obtain a client certificate for node ${n2}`);
    const own = await csrFor(`system:node:${n1}`, 'kubernetes.io/kube-apiserver-client', sims[0]!);
    expect(own.status.conditions[0]).toMatchObject({ type: 'Approved', status: 'True', reason: 'TetherNodeRenewal' });
  }, 120_000);

  test('a second replica waits while the first leads, and takes over when the first stops', async () => {
    hub2 = startHub(kubeconfig, `hub-b-${id}`, ns);
    await until('hub-b asked for the lease a few times', async () => hub2!.controllers.totals().requests, (n) => n >= 3);
    expect(hub2.controllers.isLeader()).toBe(false);
    await hub!.controllers.stop();
    hub = undefined;
    await hub2.controllers.running();
    expect((await getJson(['get', 'lease', '-n', ns, 'tether-hub-controllers'])).spec.holderIdentity).toBe(`hub-b-${id}`);
    // and it reconciles: a pool change reaches the members
    await kubectl(['patch', 'nodepool', south, '--type=merge', '-p', JSON.stringify({ spec: { labels: { site: 'south', handover: 'done' } } })]);
    await until('hub-b applied', () => node(n3), (n) => n.metadata.labels.handover === 'done').catch(explain);
  }, 120_000);
});
