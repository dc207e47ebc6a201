/**
 * Authorization parity offline (issue 12, part 3), on the real control plane: an offline answer
 * never shows a local identity more than kube-apiserver showed it online.
 *
 * The agent runs in an edge site with its defaults (HTTPS with the local CA); the kubelet
 * simulator and the requests below use local certificates (kubelet, kube-proxy), so they reach
 * the apiserver as the node and the Node authorizer decides. To make the store hold more than the
 * node may see, a ServiceAccount that may read every ConfigMap and the namespace's Secrets lists
 * them through the agent as CoreDNS (a cached component): the store then holds all ConfigMaps and
 * a Secret of a pod on another node.
 *   - online, as the kubelet: listing every ConfigMap, watching them, and getting the Secret of a
 *     pod not on this node are 403 (Node authorizer); offline the same requests are 403 with the
 *     apiserver's Status, not 200 from the store;
 *   - what the kubelet read online (its pods, their ConfigMap and Secret) is still answered offline;
 *   - kube-proxy offline cannot read what only the kubelet was shown (503 saying it is not known),
 *     yet gets what it listed itself;
 *   - the same after the agent is killed and restarted while offline.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Cluster, sharedCluster } from './support/cluster.ts';
import { type EdgeAgentProcess, type LocalClient, localClient, requestInSite, spawnAgent, until } from './support/edge-agent.ts';
import { type EdgeSite, createEdgeSite } from './support/netns.ts';

const isRoot = process.getuid?.() === 0;
const simMain = fileURLToPath(new URL('./support/kubelet-sim/main.ts', import.meta.url));
const edgeMain = fileURLToPath(new URL('../edge/main.ts', import.meta.url));
const node = `authz-${process.pid}`;
const ns = `authz-${process.pid}`;
const ALL_CONFIGMAPS = '/api/v1/configmaps';
const WATCH_ALL_CONFIGMAPS = '/api/v1/configmaps?watch=true&timeoutSeconds=2';
const OWN_CONFIGMAP = `/api/v1/namespaces/${ns}/configmaps/app-config`;
const OWN_SECRET = `/api/v1/namespaces/${ns}/secrets/app-secret`;
const OTHER_SECRET = `/api/v1/namespaces/${ns}/secrets/other-secret`;
const OWN_PODS = `/api/v1/pods?fieldSelector=spec.nodeName%3D${node}`;
const SERVICES = '/api/v1/services';

describe.skipIf(!isRoot)('offline answers keep to what each local identity was allowed online', () => {
  let cluster: Cluster;
  let site: EdgeSite;
  let agent: EdgeAgentProcess;
  let agentArgs: string[];
  let sim: ChildProcess;
  let kubelet: LocalClient;
  let kubeProxy: LocalClient;
  let readerToken: string;
  const work = mkdtempSync(join(tmpdir(), 'tether-authz-e2e-'));
  const caDir = join(work, 'local-ca');

  const explain = (e: unknown): never => {
    throw new Error(`${(e as Error).message}\n--- agent log ---\n${agent?.log.slice(-40).join('\n')}`);
  };
  type Req = Parameters<typeof requestInSite>[1];
  const as = (c: LocalClient) => (r: Req) => requestInSite(site, { caPem: c.caPem, certPem: c.certPem, keyPem: c.keyPem, ...r }, work);
  const asKubelet = (path: string) => as(kubelet)({ path });
  const asKubeProxy = (path: string) => as(kubeProxy)({ path });
  const asReader = (path: string) => requestInSite(site, { caPem: kubelet.caPem, path, headers: { 'user-agent': 'coredns/1.11.3', authorization: `Bearer ${readerToken}` } }, work);
  const agentStatus = async () => {
    const r = await site.exec([process.execPath, edgeMain, 'status', '--json'], { timeoutMs: 20_000 });
    return JSON.parse(r.stdout) as { online: boolean; store: { objects: Record<string, number>; views: Record<string, number> } };
  };
  const names = (body: { items?: { metadata: { name: string } }[] }) => (body.items ?? []).map((i) => i.metadata.name).sort();
  const podSpec = (nodeName: string, configMap: string, secret: string) => ({
    nodeName,
    containers: [{ name: 'c', image: 'registry.invalid/app:1' }],
    volumes: [{ name: 'cfg', configMap: { name: configMap } }, { name: 'sec', secret: { secretName: secret } }],
  });

  /** What every offline check below asserts, before and after a restart of the agent. */
  const checkOffline = async () => {
    // Refused online → refused offline, with the apiserver's Status (the store holds the data).
    const list = await asKubelet(ALL_CONFIGMAPS);
    expect(list.status).toBe(403);
    expect(list.body).toMatchObject({ kind: 'Status', reason: 'Forbidden', code: 403 });
    expect(list.body.message).toContain(`system:node:${node}`);
    expect(list.text).not.toContain('cloud-only');
    const watch = await asKubelet(WATCH_ALL_CONFIGMAPS);
    expect(watch.status).toBe(403);
    expect(watch.body).toMatchObject({ kind: 'Status', reason: 'Forbidden' });
    const other = await asKubelet(OTHER_SECRET);
    expect(other.status).toBe(403);
    expect(other.body).toMatchObject({ kind: 'Status', reason: 'Forbidden' });
    expect(other.text).not.toContain(Buffer.from('elsewhere').toString('base64'));
    // What the kubelet read online is answered.
    const pods = await asKubelet(OWN_PODS);
    expect(pods.status).toBe(200);
    expect(pods.source).toBe('cache');
    expect(names(pods.body)).toEqual(['on-node']);
    const cm = await asKubelet(OWN_CONFIGMAP);
    expect(cm.status).toBe(200);
    expect(cm.body.data).toEqual({ mode: 'edge' });
    const secret = await asKubelet(OWN_SECRET);
    expect(secret.status).toBe(200);
    expect(Buffer.from(secret.body.data.password, 'base64').toString()).toBe('edge');
    // kube-proxy: not what only the kubelet was shown; what it listed itself, yes.
    for (const path of [OWN_CONFIGMAP, OWN_SECRET]) {
      const r = await asKubeProxy(path);
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({ kind: 'Status', reason: 'ServiceUnavailable' });
      expect(r.body.message).toContain('not known whether kube-proxy may get');
      expect(r.text).not.toContain('"data"');
    }
    const services = await asKubeProxy(SERVICES);
    expect(services.status).toBe(200);
    expect(names(services.body)).toContain('app-svc');
  };

  beforeAll(async () => {
    cluster = await sharedCluster();
    site = await createEdgeSite(`authz-${process.pid}`);
    const cert = await cluster.issueClientCert(`system:node:${node}`, ['system:nodes']);
    kubelet = localClient(caDir, 'kubelet', work);
    kubeProxy = localClient(caDir, 'kube-proxy', work);
    agentArgs = [
      '--node-name', node, '--servers', cluster.edgeServer, '--ca-file', cluster.caFile, '--cert-file', cert.certFile, '--key-file', cert.keyFile,
      '--data-dir', join(work, 'store'), '--local-ca-dir', caDir, '--log-format', 'text', '--rotate-certificates', 'false',
    ];
    agent = spawnAgent(site, agentArgs);
    await until('agent listening on https', async () => agent.log.join('\n'), (l) => l.includes('proxy on https://127.0.0.1:10261')).catch(explain);

    const admin = cluster.admin;
    await admin.ensure('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    await admin.ensure(`/api/v1/namespaces/${ns}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app-config' }, data: { mode: 'edge' } });
    await admin.ensure(`/api/v1/namespaces/${ns}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cloud-config' }, data: { mode: 'cloud-only' } });
    await admin.ensure(`/api/v1/namespaces/${ns}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'app-secret' }, stringData: { password: 'edge' } });
    await admin.ensure(`/api/v1/namespaces/${ns}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'other-secret' }, stringData: { password: 'elsewhere' } });
    await admin.ensure(`/api/v1/namespaces/${ns}/services`, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'app-svc' }, spec: { ports: [{ port: 80 }] } });
    await admin.ensure(`/api/v1/namespaces/${ns}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'on-node' }, spec: podSpec(node, 'app-config', 'app-secret') });
    // Bound to a node that is not this one: the Node authorizer keeps its Secret from this node.
    await admin.ensure(`/api/v1/namespaces/${ns}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'elsewhere' }, spec: podSpec(`${node}-other`, 'cloud-config', 'other-secret') });
    // A ServiceAccount that may read every ConfigMap and this namespace's Secrets: through the agent
    // as CoreDNS, its answers fill the store with what the node may not see.
    await admin.ensure(`/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'reader' } });
    await admin.ensure('/apis/rbac.authorization.k8s.io/v1/clusterroles', {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: `authz-reader-${process.pid}` },
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }],
    });
    await admin.ensure('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: `authz-reader-${process.pid}` },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `authz-reader-${process.pid}` },
      subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: ns }],
    });
    await admin.ensure(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`, {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'secrets' },
      rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list'] }],
    });
    await admin.ensure(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'secrets' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'secrets' },
      subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: ns }],
    });
    const tr = await admin.request('POST', `/api/v1/namespaces/${ns}/serviceaccounts/reader/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } });
    if (tr.status !== 201) throw new Error(`token request: ${JSON.stringify(tr.body)}`);
    readerToken = tr.body.status.token;
    sim = site.spawn([process.execPath, simMain, '--node-name', node, '--kubeconfig', kubelet.kubeconfig, '--address', site.address]);
  }, 1_800_000);

  afterAll(async () => {
    if (cluster) {
      await cluster.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=false']);
      await cluster.kubectl(['delete', 'node', node, '--ignore-not-found', '--wait=false']);
      await cluster.kubectl(['delete', 'clusterrole,clusterrolebinding', `authz-reader-${process.pid}`, '--ignore-not-found', '--wait=false']);
    }
    sim?.kill('SIGTERM');
    await agent?.stop();
    await site?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  test('online, through the agent: the Node authorizer refuses the kubelet what is not its pods\', and the store holds more than that', async () => {
    await until('node Ready', async () => ((await cluster.admin.request('GET', `/api/v1/nodes/${node}`)).body?.status?.conditions ?? []) as { type: string; status: string }[],
      (cs) => cs.some((c) => c.type === 'Ready' && c.status === 'True')).catch(explain);
    // The store gets every ConfigMap and the other node's Secret, from a client allowed to read them.
    const all = await asReader(ALL_CONFIGMAPS);
    expect(all.status).toBe(200);
    expect(names(all.body)).toEqual(expect.arrayContaining(['app-config', 'cloud-config']));
    expect((await asReader(OTHER_SECRET)).status).toBe(200);
    // The kubelet: refused the cluster-wide list and watch and the Secret of a pod elsewhere.
    const list = await asKubelet(ALL_CONFIGMAPS);
    expect(list.status).toBe(403);
    expect(list.source).not.toBe('cache');
    expect(list.body).toMatchObject({ kind: 'Status', reason: 'Forbidden' });
    expect((await asKubelet(WATCH_ALL_CONFIGMAPS)).status).toBe(403);
    const other = await until('the other node\'s Secret refused to the kubelet', () => asKubelet(OTHER_SECRET), (r) => r.status === 403).catch(explain);
    expect(other.body).toMatchObject({ kind: 'Status', reason: 'Forbidden' });
    // ... and allowed its pods, their ConfigMap and Secret (the Node authorizer's graph may lag the pod).
    expect(names((await until('own pods', () => asKubelet(OWN_PODS), (r) => r.status === 200)).body)).toEqual(['on-node']);
    expect((await until('own ConfigMap', () => asKubelet(OWN_CONFIGMAP), (r) => r.status === 200).catch(explain)).body.data).toEqual({ mode: 'edge' });
    expect((await until('own Secret', () => asKubelet(OWN_SECRET), (r) => r.status === 200).catch(explain)).status).toBe(200);
    // kube-proxy lists Services (as it does), and never asks for the ConfigMap or Secret.
    expect((await asKubeProxy(SERVICES)).status).toBe(200);
    const st = await until('answers recorded', agentStatus, (s) => (s.store.objects['v1/configmaps'] ?? 0) >= 2 && (s.store.objects['v1/secrets'] ?? 0) >= 2).catch(explain);
    expect(st.store.views['kube-proxy']).toBeGreaterThan(0);
  }, 300_000);

  test('offline: the same refusals, what each identity read is still answered, kube-proxy does not get the kubelet\'s', async () => {
    await site.cut();
    await until('agent offline', agentStatus, (s) => !s.online, 60_000).catch(explain);
    await checkOffline();
  }, 180_000);

  test('offline, after the agent is killed and restarted: the same answers', async () => {
    await agent.stop('SIGKILL');
    agent = spawnAgent(site, agentArgs);
    await until('agent listening on https again', async () => agent.log.join('\n'), (l) => l.includes('proxy on https://127.0.0.1:10261')).catch(explain);
    await until('restarted agent offline', agentStatus, (s) => !s.online, 60_000).catch(explain);
    try {
      await checkOffline();
    } finally {
      await site.heal();
    }
  }, 240_000);
});
