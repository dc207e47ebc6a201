/**
 * The hub's api-stream forwarder against the real control plane, as deployed: the tether-hub
 * ServiceAccount with exactly deploy/rbac.yaml (tether-hub-node-proxy: constrained impersonation),
 * never the admin. An agent session and a hub session (the real tunnel session code, joined in
 * memory) carry a node's requests; the hub session's onOpen is the forwarder, as in cloud/hub.ts.
 *
 * Claims: the node's request for its own Node succeeds; the apiserver sees the node's identity
 * (SelfSubjectReview says system:node:<name> with the groups the apiserver gave it, even when the
 * edge asks to impersonate someone else); another node's pod's Secret, listing all Secrets and
 * creating a ClusterRoleBinding are refused 403 by the apiserver; a pod's bearer token passes as
 * the pod's identity; a watch streams events as they happen. With the topology filter fed by the
 * hub's own informers (as the tether-hub ServiceAccount), an EndpointSlice LIST crosses the link
 * with the node's pool's endpoints only, and a pool change ends an open watch with 410 Expired.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import http, { type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createApiUpstream, loadKubeConfig, type ApiUpstream } from '../cloud/kube/client.ts';
import { createApiForwarder, type ApiForwarder } from '../cloud/tunnel/api-forward.ts';
import { createHubTopology } from '../cloud/tunnel/api-topology.ts';
import { watchTopology, type Watching } from '../cloud/tunnel/kube-backend.ts';
import { createMemoryLogger } from '../shared/log.ts';
import { createTransportPair } from '../shared/tunnel/memory-transport.ts';
import { createTunnelSession, type TunnelSession } from '../shared/tunnel/session.ts';
import { hubKubeconfig, sharedCluster, type Cluster } from './support/cluster.ts';
import { crdDir } from './support/pools.ts';

const id = `${process.pid}`;
const node = `fwd-a-${id}`;
const other = `fwd-b-${id}`;
const ns = 'default';
const secret = `fwd-secret-${id}`;
const crb = `fwd-escalate-${id}`;

interface Answer {
  status: number;
  body: any;
}

/** An http.Agent of the edge whose connections are api streams of `session`. */
function viaSession(session: TunnelSession): http.Agent {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  (agent as unknown as { createConnection: (o: unknown, cb: (e: Error | null, s?: Duplex) => void) => void }).createConnection = (_o, cb) => {
    session.open('kube-apiserver', 0, { compress: true }).then(
      (d) => {
        Object.assign(d, { setKeepAlive: () => d, setNoDelay: () => d, setTimeout: () => d, ref: () => d, unref: () => d });
        cb(null, d);
      },
      (e) => cb(e),
    );
  };
  return agent;
}

function request(agent: http.Agent, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const r = http.request(
      { host: 'kube-apiserver.tether', path, method, agent, headers: { accept: 'application/json', ...(payload ? { 'content-type': 'application/json' } : {}), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode!, body: parsed });
        });
        res.on('error', reject);
      },
    );
    r.on('error', reject);
    r.end(payload);
  });
}

const whoami = { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' };

describe('hub api streams on the real control plane (deploy/rbac.yaml)', () => {
  let cluster: Cluster;
  let upstream: ApiUpstream;
  let forwarder: ApiForwarder;
  let hub: TunnelSession;
  let agentSession: TunnelSession;
  let edge: http.Agent;
  const codes: number[] = [];

  beforeAll(async () => {
    cluster = await sharedCluster();
    const file = await hubKubeconfig(cluster);
    upstream = await createApiUpstream(loadKubeConfig(file));
    forwarder = createApiForwarder({ upstream, impersonation: 'constrained', log: createMemoryLogger('info'), answered: (_n, c) => codes.push(c) });
    for (const name of [node, other]) {
      await cluster.admin.ensure('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name } });
    }
    await cluster.admin.ensure(`/api/v1/namespaces/${ns}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: secret }, stringData: { k: 'v' } });
    // A pod of the OTHER node that mounts the secret: the Node authorizer relates it to that node only.
    await cluster.admin.ensure(`/api/v1/namespaces/${ns}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `fwd-pod-${id}` },
      spec: {
        nodeName: other,
        containers: [{ name: 'c', image: 'tether.local/pause:1', volumeMounts: [{ name: 's', mountPath: '/s' }] }],
        volumes: [{ name: 's', secret: { secretName: secret } }],
      },
    });
    const [ta, th] = createTransportPair();
    const log = createMemoryLogger('info');
    hub = createTunnelSession({ transport: th, role: 'hub', log, onOpen: (host, port, info) => forwarder.open(node, host, port, info) });
    agentSession = createTunnelSession({ transport: ta, role: 'agent', log, hello: { node, addresses: [], version: 'e2e' } });
    await agentSession.ready;
    edge = viaSession(agentSession);
  }, 180_000);

  afterAll(async () => {
    edge?.destroy();
    agentSession?.close('done');
    forwarder?.close();
    if (cluster) {
      await cluster.admin.request('DELETE', `/api/v1/namespaces/${ns}/pods/fwd-pod-${id}?gracePeriodSeconds=0`);
      await cluster.admin.request('DELETE', `/api/v1/namespaces/${ns}/secrets/${secret}`);
      for (const name of [node, other]) await cluster.admin.request('DELETE', `/api/v1/nodes/${name}`);
      await cluster.admin.request('DELETE', `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${crb}`);
    }
  });

  test("the node's GET of its own Node succeeds through the hub", async () => {
    const a = await request(edge, 'GET', `/api/v1/nodes/${node}`);
    expect(a.status).toBe(200);
    expect(a.body.metadata.name).toBe(node);
  });

  test('the apiserver sees the node: SelfSubjectReview says system:node:<name>, groups set by the apiserver', async () => {
    const a = await request(edge, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', whoami);
    expect(a.status).toBe(201);
    expect(a.body.status.userInfo.username).toBe(`system:node:${node}`);
    expect(a.body.status.userInfo.groups).toEqual(expect.arrayContaining(['system:nodes', 'system:authenticated']));
    expect(a.body.status.userInfo.groups).not.toContain('system:masters');
  });

  test("identity headers from the edge are not honoured: asking to impersonate an admin still acts as the node", async () => {
    const a = await request(edge, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', whoami, {
      'Impersonate-User': 'kubernetes-admin',
      'Impersonate-Group': 'system:masters',
      'X-Remote-User': 'kubernetes-admin',
      'X-Remote-Group': 'system:masters',
    });
    expect(a.status).toBe(201);
    expect(a.body.status.userInfo.username).toBe(`system:node:${node}`);
    expect(a.body.status.userInfo.groups).not.toContain('system:masters');
  });

  test("another node's pod's Secret is refused 403 by the apiserver, naming the node", async () => {
    const a = await request(edge, 'GET', `/api/v1/namespaces/${ns}/secrets/${secret}`);
    expect(a.status).toBe(403);
    expect(a.body.kind).toBe('Status');
    expect(a.body.message).toContain(`User "system:node:${node}"`);
    expect(JSON.stringify(a.body)).not.toContain('"k"'); // no data
  });

  test('listing every Secret is refused 403', async () => {
    const a = await request(edge, 'GET', '/api/v1/secrets');
    expect(a.status).toBe(403);
    expect(a.body.message).toContain(`system:node:${node}`);
  });

  test('a cluster-admin action (create a ClusterRoleBinding) is refused 403 and nothing is created', async () => {
    const a = await request(edge, 'POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: crb },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: `system:node:${node}` }],
    });
    expect(a.status).toBe(403);
    expect(a.body.kind).toBe('Status');
    expect((await cluster.admin.request('GET', `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${crb}`)).status).toBe(404);
  });

  test("a pod's bearer token passes as the pod's identity, not the node's", async () => {
    const r = await cluster.kubectl(['create', 'token', 'default', '-n', ns, '--duration=10m']);
    expect(r.code).toBe(0);
    const a = await request(edge, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', whoami, { authorization: `Bearer ${r.stdout.trim()}` });
    expect(a.status).toBe(201);
    expect(a.body.status.userInfo.username).toBe(`system:serviceaccount:${ns}:default`);
  });

  test("a watch of the node's own Node streams an event as it happens", async () => {
    const list = await request(edge, 'GET', `/api/v1/nodes?fieldSelector=metadata.name%3D${node}`);
    expect(list.status).toBe(200);
    const rv = list.body.metadata.resourceVersion as string;
    const events: any[] = [];
    let res: IncomingMessage | undefined;
    const req = http.get({ host: 'x', path: `/api/v1/nodes?watch=1&fieldSelector=metadata.name%3D${node}&resourceVersion=${rv}`, agent: edge, headers: { accept: 'application/json' } }, (r) => {
      res = r;
      let buf = '';
      r.on('data', (c: Buffer) => {
        buf += c;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          events.push(JSON.parse(buf.slice(0, i)));
          buf = buf.slice(i + 1);
        }
      });
    });
    req.on('error', () => {});
    const deadline = Date.now() + 20_000;
    while (!res && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(res?.statusCode).toBe(200);
    const patched = await cluster.admin.request('PATCH', `/api/v1/nodes/${node}`, { metadata: { labels: { 'fwd-test': 'yes' } } });
    expect(patched.status).toBe(200);
    while (!events.some((e) => e.object?.metadata?.labels?.['fwd-test'] === 'yes') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    // The watch is still open (streamed, not buffered until its end) when the event arrived.
    expect(res!.complete).toBe(false);
    expect(events.find((e) => e.object?.metadata?.labels?.['fwd-test'] === 'yes')?.type).toBe('MODIFIED');
    req.destroy();
  });

  test('legacy impersonation is refused with deploy/rbac.yaml alone, and works with deploy/rbac-legacy-impersonation.yaml', async () => {
    const legacy = createApiForwarder({ upstream, impersonation: 'legacy', log: createMemoryLogger('info') });
    const [ta, th] = createTransportPair();
    const log = createMemoryLogger('info');
    createTunnelSession({ transport: th, role: 'hub', log, onOpen: (host, port) => legacy.open(node, host, port) });
    const a2 = createTunnelSession({ transport: ta, role: 'agent', log, hello: { node, addresses: [], version: 'e2e' } });
    await a2.ready;
    const via = viaSession(a2);
    const file = fileURLToPath(new URL('../deploy/rbac-legacy-impersonation.yaml', import.meta.url));
    try {
      const refused = await request(via, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', whoami);
      expect(refused.status).toBe(403);
      expect(refused.body.message).toContain('system:serviceaccount:tether-system:tether-hub');
      const applied = await cluster.kubectl(['apply', '-f', file]);
      expect(applied.code).toBe(0);
      let a: Answer = refused;
      const deadline = Date.now() + 30_000;
      while (a.status !== 201 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        a = await request(via, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', whoami);
      }
      expect(a.status).toBe(201);
      expect(a.body.status.userInfo.username).toBe(`system:node:${node}`);
      expect(a.body.status.userInfo.groups).toEqual(expect.arrayContaining(['system:nodes', 'system:authenticated']));
      const secretRefused = await request(via, 'GET', `/api/v1/namespaces/${ns}/secrets/${secret}`);
      expect(secretRefused.status).toBe(403);
    } finally {
      await cluster.kubectl(['delete', '--ignore-not-found', '-f', file]);
      via.destroy();
      a2.close('done');
      legacy.close();
    }
  });

  test('every answer was counted, and the api bytes went compressed', () => {
    expect(codes).toContain(200);
    expect(codes).toContain(403);
    const s = hub.stats();
    expect(s.apiRawOut).toBeGreaterThan(s.apiWireOut);
  });
});

describe('hub api streams: the topology filter before the link (real informers)', () => {
  let cluster: Cluster;
  let forwarder: ApiForwarder;
  let upstream: ApiUpstream;
  let informers: Watching[] = [];
  let agentSession: TunnelSession;
  let edge: http.Agent;
  let token: string;
  const [me, peer, far] = [`topo-hub-a1-${id}`, `topo-hub-a2-${id}`, `topo-hub-b1-${id}`];
  const [poolA, poolB] = [`topo-hub-a-${id}`, `topo-hub-b-${id}`];
  const svc = `topo-hub-svc-${id}`;
  const setMembers = async (pool: string, nodes: string[]) => {
    const r = await cluster.admin.request('PATCH', `/apis/apps.tether.dev/v1alpha1/nodepools/${pool}/status`, { status: { nodes } });
    if (r.status !== 200) throw new Error(`patch ${pool} status: ${r.status} ${JSON.stringify(r.body)}`);
  };
  const nodesOf = (slices: { endpoints?: { nodeName?: string }[] }[]) => slices.flatMap((x) => (x.endpoints ?? []).map((e) => e.nodeName)).sort();

  beforeAll(async () => {
    cluster = await sharedCluster();
    const apply = await cluster.kubectl(['apply', '--server-side', '--force-conflicts', '-f', crdDir]);
    if (apply.code !== 0) throw new Error(apply.stderr);
    for (let i = 0; (await cluster.admin.request('GET', '/apis/apps.tether.dev/v1alpha1/nodepools')).status !== 200; i++) {
      if (i > 600) throw new Error('NodePool CRD not served');
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const n of [me, peer, far]) await cluster.admin.ensure('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: n } });
    for (const p of [poolA, poolB]) await cluster.admin.ensure('/apis/apps.tether.dev/v1alpha1/nodepools', { apiVersion: 'apps.tether.dev/v1alpha1', kind: 'NodePool', metadata: { name: p }, spec: { type: 'Edge' } });
    await setMembers(poolA, [me, peer].sort());
    await setMembers(poolB, [far]);
    await cluster.admin.ensure(`/api/v1/namespaces/${ns}/services`, {
      apiVersion: 'v1', kind: 'Service', metadata: { name: svc, annotations: { 'apps.tether.dev/topology': 'apps.tether.dev/pool' } }, spec: { ports: [{ port: 80 }] },
    });
    await cluster.admin.ensure(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `${svc}-1`, labels: { 'kubernetes.io/service-name': svc, 'endpointslice.kubernetes.io/managed-by': 'tether-e2e' } },
      addressType: 'IPv4', ports: [{ port: 80 }], endpoints: [me, peer, far].map((n, i) => ({ addresses: [`198.18.201.${i + 1}`], nodeName: n, conditions: { ready: true } })),
    });
    // kube-proxy's identity: a service account bound to system:node-proxier; its token passes through the hub.
    const sa = `topo-hub-proxy-${id}`;
    await cluster.admin.ensure('/api/v1/namespaces/kube-system/serviceaccounts', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa } });
    await cluster.admin.ensure('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: sa },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:node-proxier' },
      subjects: [{ kind: 'ServiceAccount', name: sa, namespace: 'kube-system' }],
    });
    const tr = await cluster.admin.request('POST', `/api/v1/namespaces/kube-system/serviceaccounts/${sa}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } });
    token = tr.body.status.token;

    const kc = loadKubeConfig(await hubKubeconfig(cluster));
    upstream = await createApiUpstream(kc);
    const topology = createHubTopology();
    informers = watchTopology(kc, topology, createMemoryLogger('info'));
    await Promise.all(informers.map((w) => w.synced));
    forwarder = createApiForwarder({ upstream, impersonation: 'constrained', topology, log: createMemoryLogger('info') });
    const [ta, th] = createTransportPair();
    const log = createMemoryLogger('info');
    createTunnelSession({ transport: th, role: 'hub', log, onOpen: (host, port) => forwarder.open(me, host, port) });
    agentSession = createTunnelSession({ transport: ta, role: 'agent', log, hello: { node: me, addresses: [], version: 'e2e' } });
    await agentSession.ready;
    edge = viaSession(agentSession);
  }, 180_000);

  afterAll(async () => {
    edge?.destroy();
    agentSession?.close('done');
    forwarder?.close();
    await Promise.all(informers.map((w) => w.stop()));
    if (!cluster) return;
    await cluster.admin.request('DELETE', `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices/${svc}-1`);
    await cluster.admin.request('DELETE', `/api/v1/namespaces/${ns}/services/${svc}`);
    for (const p of [poolA, poolB]) await cluster.admin.request('DELETE', `/apis/apps.tether.dev/v1alpha1/nodepools/${p}`);
    for (const n of [me, peer, far]) await cluster.admin.request('DELETE', `/api/v1/nodes/${n}`);
    await cluster.admin.request('DELETE', `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/topo-hub-proxy-${id}`);
    await cluster.admin.request('DELETE', `/api/v1/namespaces/kube-system/serviceaccounts/topo-hub-proxy-${id}`);
  });

  test("a LIST of the Service's EndpointSlices crosses the link with the node's pool's endpoints only", async () => {
    const path = `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D${svc}`;
    const a = await request(edge, 'GET', path, undefined, { authorization: `Bearer ${token}`, 'accept-encoding': 'gzip' });
    expect(a.status).toBe(200);
    expect(nodesOf(a.body.items)).toEqual([me, peer].sort());
    // Directly, the apiserver has all three: the filter is the hub's.
    expect(nodesOf((await cluster.admin.request('GET', path)).body.items)).toEqual([me, peer, far].sort());
  });

  test('a pool change ends an open watch of the node with 410 Expired, and the relist shows the new pool', { timeout: 60_000 }, async () => {
    const base = `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D${svc}`;
    const list = await request(edge, 'GET', base, undefined, { authorization: `Bearer ${token}` });
    const events: any[] = [];
    let ended = false;
    let open = false;
    const req = http.get({ host: 'x', path: `${base}&watch=true&resourceVersion=${list.body.metadata.resourceVersion}`, agent: edge, headers: { accept: 'application/json', authorization: `Bearer ${token}` } }, (r) => {
      open = r.statusCode === 200;
      let buf = '';
      r.on('data', (c: Buffer) => {
        buf += c;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          events.push(JSON.parse(buf.slice(0, i)));
          buf = buf.slice(i + 1);
        }
      });
      r.on('end', () => (ended = true));
    });
    req.on('error', () => {});
    const deadline = Date.now() + 20_000;
    // The answer's head comes once the apiserver started the watch and the hub registered it.
    while (!open && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(open).toBe(true);
    await setMembers(poolA, [me]);
    while (!ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(ended).toBe(true);
    expect(events.at(-1)).toMatchObject({ type: 'ERROR', object: { kind: 'Status', reason: 'Expired', code: 410 } });
    let relist = await request(edge, 'GET', base, undefined, { authorization: `Bearer ${token}` });
    while (nodesOf(relist.body.items).length !== 1 && Date.now() < deadline) relist = await request(edge, 'GET', base, undefined, { authorization: `Bearer ${token}` });
    expect(nodesOf(relist.body.items)).toEqual([me]);
  });
});
