/**
 * Local clients authenticate (issue 10, item 2), on the real control plane. The agent runs in an
 * edge site with its defaults: HTTPS on the site's 127.0.0.1:10261 with the local CA. The kubelet
 * simulator uses a kubeconfig with the kubelet's local certificate, as join writes it. Every other
 * request is made from inside the site, as any local process or hostNetwork pod could make it:
 * - the kubelet with its certificate works (the node registers and is Ready, its data is cached);
 * - a process without a certificate cannot act as the node: it cannot read a Secret the node may
 *   read, nor create a CSR as system:node:<name>; plain HTTP gets no answer at all;
 * - with the kubelet's certificate, a CSR still does not go out with the node's identity;
 * - a client claiming the kubelet's User-Agent without the certificate is not cached: bare, it is
 *   refused; with a bearer token it passes through as the token's owner and nothing of it is
 *   recorded (while the same request as coredns, a cached component, is: the check can see it);
 * - offline (issue 10, item 5), a bearer token is answered from the store only what the apiserver
 *   showed that very token online: a made-up token gets 401, the real token 403 for a Secret the
 *   store holds (the node's) but the token was never shown, and its own list from the store.
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
const node = `local-auth-${process.pid}`;
const ns = `local-auth-${process.pid}`;
const kubeletUA = 'kubelet/v1.34.4 (linux/amd64) kubernetes/unknown';

describe.skipIf(!isRoot)('local clients of the agent authenticate', () => {
  let cluster: Cluster;
  let site: EdgeSite;
  let agent: EdgeAgentProcess;
  let sim: ChildProcess;
  let kubelet: LocalClient;
  let saToken: string;
  const work = mkdtempSync(join(tmpdir(), 'tether-local-auth-e2e-'));
  const caDir = join(work, 'local-ca');

  const explain = (e: unknown): never => {
    throw new Error(`${(e as Error).message}\n--- agent log ---\n${agent?.log.slice(-40).join('\n')}`);
  };
  const inSite = (r: Parameters<typeof requestInSite>[1]) => requestInSite(site, r, work);
  const anonymous = (r: Parameters<typeof requestInSite>[1]) => inSite({ caPem: kubelet.caPem, ...r });
  const asKubelet = (r: Parameters<typeof requestInSite>[1]) => inSite({ caPem: kubelet.caPem, certPem: kubelet.certPem, keyPem: kubelet.keyPem, ...r });
  const agentStatus = async () => {
    const r = await site.exec([process.execPath, edgeMain, 'status', '--json'], { timeoutMs: 20_000 });
    return JSON.parse(r.stdout) as { online: boolean; store: { objects: Record<string, number>; views: Record<string, number> } };
  };
  const nodeCsrs = async () =>
    ((await cluster.admin.request('GET', '/apis/certificates.k8s.io/v1/certificatesigningrequests')).body.items as { spec: { username: string } }[]).filter(
      (c) => c.spec.username === `system:node:${node}`,
    ).length;
  const csrBody = JSON.stringify({
    apiVersion: 'certificates.k8s.io/v1',
    kind: 'CertificateSigningRequest',
    metadata: { generateName: 'local-auth-' },
    // Refused before the apiserver would look at it; a well-formed request would be approved for the node.
    spec: { request: Buffer.from('-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n').toString('base64'), signerName: 'kubernetes.io/kube-apiserver-client-kubelet', usages: ['client auth'] },
  });

  beforeAll(async () => {
    cluster = await sharedCluster();
    site = await createEdgeSite(`lauth-${process.pid}`);
    const cert = await cluster.issueClientCert(`system:node:${node}`, ['system:nodes']);
    kubelet = localClient(caDir, 'kubelet', work);
    agent = spawnAgent(site, [
      '--node-name', node, '--servers', cluster.edgeServer, '--ca-file', cluster.caFile, '--cert-file', cert.certFile, '--key-file', cert.keyFile,
      '--data-dir', join(work, 'store'), '--local-ca-dir', caDir, '--log-format', 'text', '--rotate-certificates', 'false',
    ]);
    await until('agent listening on https', async () => agent.log.join('\n'), (l) => l.includes('proxy on https://127.0.0.1:10261')).catch(explain);
    sim = site.spawn([process.execPath, simMain, '--node-name', node, '--kubeconfig', kubelet.kubeconfig, '--address', site.address]);

    // A namespace with a pod bound to the node that mounts a Secret (so the node may read it), and a
    // ServiceAccount that may list PodTemplates there (which the kubelet never touches).
    const admin = cluster.admin;
    await admin.ensure('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    await admin.ensure(`/api/v1/namespaces/${ns}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'node-secret' }, stringData: { password: 'edge' } });
    await admin.ensure(`/api/v1/namespaces/${ns}/pods`, {
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'uses-secret' },
      spec: { nodeName: node, containers: [{ name: 'c', image: 'registry.invalid/app:1' }], volumes: [{ name: 's', secret: { secretName: 'node-secret' } }] },
    });
    await admin.ensure(`/api/v1/namespaces/${ns}/podtemplates`, {
      apiVersion: 'v1', kind: 'PodTemplate', metadata: { name: 'probe' }, template: { spec: { containers: [{ name: 'c', image: 'registry.invalid/app:1' }] } },
    });
    await admin.ensure(`/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'reader' } });
    await admin.ensure(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`, {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'podtemplates' },
      rules: [{ apiGroups: [''], resources: ['podtemplates'], verbs: ['get', 'list', 'watch'] }],
    });
    await admin.ensure(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'podtemplates' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'podtemplates' },
      subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: ns }],
    });
    const tr = await admin.request('POST', `/api/v1/namespaces/${ns}/serviceaccounts/reader/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } });
    if (tr.status !== 201) throw new Error(`token request: ${JSON.stringify(tr.body)}`);
    saToken = tr.body.status.token;
  }, 1_800_000);

  afterAll(async () => {
    if (cluster) {
      await cluster.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=false']);
      await cluster.kubectl(['delete', 'node', node, '--ignore-not-found', '--wait=false']);
    }
    sim?.kill('SIGTERM');
    await agent?.stop();
    await site?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  test('the kubelet with its local certificate works: the node registers, is Ready, and its data is cached', async () => {
    const ready = await until(
      'node Ready',
      async () => ((await cluster.admin.request('GET', `/api/v1/nodes/${node}`)).body?.status?.conditions ?? []) as { type: string; status: string }[],
      (cs) => cs.some((c) => c.type === 'Ready' && c.status === 'True'),
    ).catch(explain);
    expect(ready.find((c) => c.type === 'Ready')?.status).toBe('True');
    const st = await until('kubelet cached', agentStatus, (s) => (s.store.views.kubelet ?? 0) > 0).catch(explain);
    expect(st.store.views.kubelet).toBeGreaterThan(0);
    // The node's identity reads the Secret of its pod: what the refusals below keep from others.
    const secret = await until('secret readable as the node', () => asKubelet({ path: `/api/v1/namespaces/${ns}/secrets/node-secret` }), (r) => r.status === 200).catch(explain);
    expect(Buffer.from(secret.body.data.password, 'base64').toString()).toBe('edge');
  }, 300_000);

  test('a local process without a certificate cannot read the node\'s Secrets nor create a CSR as the node', async () => {
    const before = await nodeCsrs();
    const secret = await anonymous({ path: `/api/v1/namespaces/${ns}/secrets/node-secret`, headers: { 'user-agent': kubeletUA } });
    expect(secret.status).toBe(401);
    expect(secret.body).toMatchObject({ kind: 'Status', reason: 'Unauthorized', code: 401 });
    expect(secret.text).not.toContain('password');
    const csr = await anonymous({ method: 'POST', path: '/apis/certificates.k8s.io/v1/certificatesigningrequests', body: csrBody, headers: { 'content-type': 'application/json', 'user-agent': kubeletUA } });
    expect(csr.status).toBe(401);
    expect(csr.body.kind).toBe('Status');
    // Plain HTTP, as every local client used before: no answer at all.
    const plain = await inSite({ base: 'http://127.0.0.1:10261', path: `/api/v1/namespaces/${ns}/secrets/node-secret` });
    expect(plain.status === 0 || plain.status === 400).toBe(true);
    expect(plain.text).not.toContain('password');
    expect(await nodeCsrs()).toBe(before);
  }, 120_000);

  test('even with the kubelet\'s certificate, a CSR never goes out with the node\'s identity', async () => {
    const before = await nodeCsrs();
    const csr = await asKubelet({ method: 'POST', path: '/apis/certificates.k8s.io/v1/certificatesigningrequests', body: csrBody, headers: { 'content-type': 'application/json' } });
    expect(csr.status).toBe(403);
    expect(csr.body).toMatchObject({ kind: 'Status', reason: 'Forbidden' });
    expect(csr.body.message).toContain('certificate signing requests are never sent with the node');
    expect(await nodeCsrs()).toBe(before);
  }, 120_000);

  test('a client claiming the kubelet\'s User-Agent without the certificate is not cached', async () => {
    const path = `/api/v1/namespaces/${ns}/podtemplates`;
    const viewsBefore = (await agentStatus()).store.views.kubelet ?? 0;
    // Bare: refused, nothing recorded.
    const bare = await anonymous({ path, headers: { 'user-agent': kubeletUA } });
    expect(bare.status).toBe(401);
    // With a bearer token: answered by the apiserver as the token's owner, and not recorded.
    const asToken = await anonymous({ path, headers: { 'user-agent': kubeletUA, authorization: `Bearer ${saToken}` } });
    expect(asToken.status).toBe(200);
    expect(asToken.body.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual(['probe']);
    const after = await agentStatus();
    expect(after.store.objects['v1/podtemplates'] ?? 0).toBe(0);
    expect(after.store.views.kubelet ?? 0).toBe(viewsBefore);
    // The same request as coredns (a cached component, by User-Agent for bearer tokens) is recorded:
    // the check above would have seen a kubelet-claimed answer being cached.
    const dns = await anonymous({ path, headers: { 'user-agent': 'coredns/1.11.3', authorization: `Bearer ${saToken}` } });
    expect(dns.status).toBe(200);
    const recorded = await until('coredns answer recorded', agentStatus, (s) => (s.store.objects['v1/podtemplates'] ?? 0) > 0, 30_000).catch(explain);
    expect(recorded.store.views.coredns).toBeGreaterThan(0);
  }, 120_000);

  test('offline, a bearer token gets from the store only what the apiserver showed it online', async () => {
    const path = `/api/v1/namespaces/${ns}/podtemplates`;
    const dns = { 'user-agent': 'coredns/1.11.3' };
    // Online: the token's list (recorded, as the test above shows) and the node's Secret in the store.
    expect((await anonymous({ path, headers: { ...dns, authorization: `Bearer ${saToken}` } })).status).toBe(200);
    expect((await asKubelet({ path: `/api/v1/namespaces/${ns}/secrets/node-secret` })).status).toBe(200);
    await site.cut();
    try {
      await until('agent offline', agentStatus, (s) => !s.online, 60_000).catch(explain);
      const own = await anonymous({ path, headers: { ...dns, authorization: `Bearer ${saToken}` } });
      expect(own.status).toBe(200);
      expect(own.source).toBe('cache');
      expect(own.body.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual(['probe']);
      const madeUp = await anonymous({ path: `/api/v1/namespaces/${ns}/secrets/node-secret`, headers: { ...dns, authorization: 'Bearer made-up' } });
      expect(madeUp.status).toBe(401);
      expect(madeUp.body).toMatchObject({ kind: 'Status', reason: 'Unauthorized' });
      expect(madeUp.text).not.toContain('password');
      const notShown = await anonymous({ path: `/api/v1/namespaces/${ns}/secrets/node-secret`, headers: { ...dns, authorization: `Bearer ${saToken}` } });
      expect(notShown.status).toBe(403);
      expect(notShown.body).toMatchObject({ kind: 'Status', reason: 'Forbidden' });
      expect(notShown.text).not.toContain('password');
      // The node's own identity still reads what it was shown.
      expect((await asKubelet({ path: `/api/v1/namespaces/${ns}/secrets/node-secret` })).status).toBe(200);
    } finally {
      await site.heal();
    }
  }, 180_000);
});
