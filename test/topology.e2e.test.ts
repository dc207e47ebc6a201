/**
 * Service topology through tether-edge on the real control plane: kube-proxy's and CoreDNS's view
 * (through the agent, online and offline) of a Service annotated apps.tether.dev/topology holds only
 * the endpoints of the node's own pool, and a change of the pool's members reaches an open watch
 * as an event. The pool's membership (NodePool status) is written here by the admin, standing in
 * for tether-hub's NodePool controller, which test/pools.e2e.test.ts covers.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Cluster, sharedCluster } from './support/cluster.ts';
import { parseAddresses } from './support/edge-agent.ts';
import { crdDir, deployDir } from './support/pools.ts';
import { until } from './support/wait.ts';

const edgeMain = join(import.meta.dir, '../edge/main.ts');
const id = process.pid;
const [me, peer, other] = [`topo-a1-${id}`, `topo-a2-${id}`, `topo-b1-${id}`];
const [poolA, poolB] = [`topo-a-${id}`, `topo-b-${id}`];
const ns = 'default';
const svc = `topo-svc-${id}`;
const UA = { 'kube-proxy': 'kube-proxy/v1.34.4 (linux/amd64) kubernetes/abc', kubelet: 'kubelet/v1.34.4 (linux/amd64) kubernetes/abc', coredns: 'coredns/1.11.3' };

let cluster: Cluster;
let cert: { certFile: string; keyFile: string };
/** kube-proxy and CoreDNS carry their service account's token (system:node-proxier), as they do on a node. */
let token: string;
const work = mkdtempSync(join(tmpdir(), 'tether-topology-'));
const children: ChildProcess[] = [];

async function startAgent(server: string) {
  const child = spawn(process.execPath, [edgeMain, 'run', '--node-name', me, '--servers', server, '--ca-file', cluster.caFile, '--cert-file', cert.certFile,
    '--key-file', cert.keyFile, '--data-dir', join(work, 'store'), '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--rotate-certificates', 'false', '--insecure-plain-http', 'true'],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return (await until('agent started', async () => parseAddresses(out), (a) => a !== undefined, 30_000))!;
}

const nodesOf = (slices: { endpoints?: { nodeName?: string }[] }[]) => slices.flatMap((s) => (s.endpoints ?? []).map((e) => e.nodeName)).sort();
const getJson = async (url: string, ua: string) => {
  const headers: Record<string, string> = { 'user-agent': ua, accept: 'application/vnd.kubernetes.protobuf,application/json' };
  if (ua !== UA.kubelet) headers.authorization = `Bearer ${token}`;
  const r = await fetch(url, { headers });
  return { status: r.status, source: r.headers.get('x-tether-source'), body: (await r.json()) as { items: { metadata: { name: string }; endpoints?: { nodeName?: string }[]; subsets?: unknown[] }[] } };
};
const setMembers = (pool: string, nodes: string[]) =>
  cluster.admin.request('PATCH', `/apis/apps.tether.dev/v1alpha1/nodepools/${pool}/status`, { status: { nodes } }).then((r) => {
    if (r.status !== 200) throw new Error(`patch ${pool} status: ${r.status} ${JSON.stringify(r.body)}`);
  });

describe('service topology through the agent', () => {
  beforeAll(async () => {
    cluster = await sharedCluster();
    // The CRDs, and deploy/'s RBAC (it lets nodes read NodePools, as the agent does for the filter).
    const apply = await cluster.kubectl(['apply', '--server-side', '--force-conflicts', '-f', crdDir, '-f', join(deployDir, 'namespace.yaml'), '-f', join(deployDir, 'rbac.yaml')]);
    if (apply.code !== 0) throw new Error(apply.stderr);
    await until('CRDs served', () => cluster.admin.request('GET', '/apis/apps.tether.dev/v1alpha1/nodepools'), (r) => r.status === 200, 60_000);
    for (const n of [me, peer, other]) await cluster.admin.ensure('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: n } });
    for (const p of [poolA, poolB]) {
      await cluster.admin.ensure('/apis/apps.tether.dev/v1alpha1/nodepools', { apiVersion: 'apps.tether.dev/v1alpha1', kind: 'NodePool', metadata: { name: p }, spec: { type: 'Edge' } });
    }
    await setMembers(poolA, [me, peer].sort());
    await setMembers(poolB, [other]);
    // A Service without a selector, and its EndpointSlice and Endpoints written here (not by the controllers).
    await cluster.admin.ensure(`/api/v1/namespaces/${ns}/services`, {
      apiVersion: 'v1', kind: 'Service', metadata: { name: svc, namespace: ns, annotations: { 'apps.tether.dev/topology': 'apps.tether.dev/pool' } },
      spec: { ports: [{ port: 80 }] },
    });
    const ep = (node: string, i: number) => ({ addresses: [`198.18.200.${i}`], nodeName: node, conditions: { ready: true } });
    await cluster.admin.ensure(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `${svc}-1`, namespace: ns, labels: { 'kubernetes.io/service-name': svc, 'endpointslice.kubernetes.io/managed-by': 'tether-e2e' } },
      addressType: 'IPv4', ports: [{ port: 80 }], endpoints: [ep(me, 1), ep(peer, 2), ep(other, 3)],
    });
    await cluster.admin.ensure(`/api/v1/namespaces/${ns}/endpoints`, {
      // skip-mirror: the mirroring controller would otherwise add a second slice from these Endpoints.
      apiVersion: 'v1', kind: 'Endpoints', metadata: { name: svc, namespace: ns, labels: { 'endpointslice.kubernetes.io/skip-mirror': 'true' } },
      subsets: [{ addresses: [me, peer, other].map((n, i) => ({ ip: `198.18.200.${i + 1}`, nodeName: n })), ports: [{ port: 80 }] }],
    });
    cert = await cluster.issueClientCert(`system:node:${me}`, ['system:nodes']);
    const sa = `topo-proxy-${id}`;
    await cluster.admin.ensure('/api/v1/namespaces/kube-system/serviceaccounts', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa } });
    await cluster.admin.ensure('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: sa },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:node-proxier' },
      subjects: [{ kind: 'ServiceAccount', name: sa, namespace: 'kube-system' }],
    });
    const tr = await cluster.admin.request('POST', `/api/v1/namespaces/kube-system/serviceaccounts/${sa}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } });
    token = tr.body.status.token;
  }, 600_000);

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await cluster?.admin.request('DELETE', `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices/${svc}-1`);
    await cluster?.admin.request('DELETE', `/api/v1/namespaces/${ns}/endpoints/${svc}`);
    await cluster?.admin.request('DELETE', `/api/v1/namespaces/${ns}/services/${svc}`);
    for (const p of [poolA, poolB]) await cluster?.admin.request('DELETE', `/apis/apps.tether.dev/v1alpha1/nodepools/${p}`);
    for (const n of [me, peer, other]) await cluster?.admin.request('DELETE', `/api/v1/nodes/${n}`);
    await cluster?.admin.request('DELETE', `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/topo-proxy-${id}`);
  });

  test('online: kube-proxy and CoreDNS see only the endpoints of their pool; a membership change reaches an open watch', async () => {
    const { proxy, admin } = await startAgent(cluster.server);
    await until('online', async () => (await (await fetch(`${admin}/status`)).json()) as { online: boolean }, (s) => s.online);
    // The kubelet lists the Services through the agent, as it does; the agent fetches the pools itself.
    expect((await getJson(`${proxy}/api/v1/services`, UA.kubelet)).status).toBe(200);
    const slices = `${proxy}/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D${svc}`;
    const seen = await until('filtered slices', () => getJson(slices, UA['kube-proxy']), (r) => nodesOf(r.body.items).length === 2, 60_000);
    expect(nodesOf(seen.body.items)).toEqual([me, peer].sort());
    const endpoints = await getJson(`${proxy}/api/v1/namespaces/${ns}/endpoints?fieldSelector=metadata.name%3D${svc}`, UA.coredns);
    const addrs = (endpoints.body.items[0]!.subsets as { addresses: { nodeName: string }[] }[]).flatMap((s) => s.addresses.map((a) => a.nodeName)).sort();
    expect(addrs).toEqual([me, peer].sort());
    // Directly, the apiserver has all three: the filter is the agent's.
    const direct = await cluster.admin.request('GET', `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices/${svc}-1`);
    expect((direct.body.endpoints as unknown[]).length).toBe(3);

    // A watch through the agent; then `peer` leaves the pool: the watch gets the slice again, without it.
    const rv = (await getJson(slices, UA['kube-proxy'])).body as unknown as { metadata: { resourceVersion: string } };
    const ac = new AbortController();
    const r = await fetch(`${slices}&watch=true&resourceVersion=${rv.metadata.resourceVersion}`, {
      headers: { 'user-agent': UA['kube-proxy'], authorization: `Bearer ${token}` },
      signal: ac.signal,
    });
    const reader = r.body!.getReader();
    let text = '';
    void (async () => {
      for (;;) {
        const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
        if (done) return;
        text += new TextDecoder().decode(value);
      }
    })();
    await setMembers(poolA, [me]);
    const events = await until('re-emitted slice', async () => text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; object: { endpoints?: { nodeName?: string }[] } }),
      (evs) => evs.some((e) => e.type === 'MODIFIED' && nodesOf([e.object]).join() === me), 60_000);
    expect(events.find((e) => e.type === 'MODIFIED')!.object.endpoints!.map((e) => e.nodeName)).toEqual([me]);
    ac.abort();
  }, 180_000);

  test('offline: the same filtered view from the store', async () => {
    for (const c of children) c.kill('SIGKILL');
    const { proxy } = await startAgent('https://127.0.0.1:1');
    const slices = await getJson(`${proxy}/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D${svc}`, UA['kube-proxy']);
    expect(slices.source).toBe('cache');
    expect(nodesOf(slices.body.items)).toEqual([me]);
  }, 120_000);
});
