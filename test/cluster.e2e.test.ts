/**
 * The test control plane itself: upstream kube-apiserver, etcd, controller manager and scheduler
 * at the pinned version, the real kubectl, and the join path kubeadm sets up (anonymous
 * cluster-info, bootstrap tokens, node CSRs, Node authorizer + NodeRestriction) — except that, as in
 * a Tether cluster, kube-controller-manager approves node renewals but no bootstrap token's CSR.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHmac, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { parse as parseYaml } from 'yaml';
import { createKubeRest } from '../scripts/cluster/api.ts';
import { createBootstrapToken } from '../scripts/cluster/bootstrap.ts';
import { createCa, createCsr, issueCert } from '../scripts/cluster/pki.ts';
import { pollUntil } from './support/wait.ts';
import { sharedCluster, startCluster, type Cluster, type KubeRest } from './support/cluster.ts';

const pinnedVersion = /^\s*k8s\.io\/kubernetes (v\S+)\s*$/m.exec(readFileSync(join(import.meta.dir, '..', 'scripts', 'kube', 'go.mod'), 'utf8'))?.[1];

let c: Cluster;
let admin: KubeRest;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  c = await sharedCluster();
  admin = c.admin;
}, 1_800_000); // a cold control-plane build may happen here

afterAll(async () => {
  for (const f of cleanups) await f();
});

async function whoAmI(api: KubeRest): Promise<{ username: string; groups: string[] }> {
  const res = await api.request('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'SelfSubjectReview',
  });
  expect(res.status).toBe(201);
  return res.body.status.userInfo;
}

describe('control plane', () => {
  test('/readyz answers ok', async () => {
    const res = await admin.request('GET', '/readyz');
    expect(res.status).toBe(200);
    expect(res.body).toBe('ok');
  });

  test('kubectl get --raw /version reports the pinned release', async () => {
    expect(pinnedVersion).toMatch(/^v1\.37\./);
    const r = await c.kubectl(['get', '--raw', '/version']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).gitVersion).toBe(pinnedVersion!);
  });

  test('kubectl is built from the same k8s.io/kubernetes module as the control plane', async () => {
    const r = await c.kubectl(['version', '--client', '-o', 'json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).clientVersion.gitVersion).toBe(pinnedVersion!);
  });

  test('kubectl get ns lists the system namespaces', async () => {
    const r = await c.kubectl(['get', 'ns', '-o', 'name']);
    expect(r.code).toBe(0);
    const names = r.stdout.trim().split('\n');
    for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) expect(names).toContain(`namespace/${ns}`);
  });

  test('the kubernetes Service has the first service IP and the edge address as its endpoint', async () => {
    const svc = await admin.request('GET', '/api/v1/namespaces/default/services/kubernetes');
    expect(svc.body.spec.clusterIP).toBe('198.19.0.1');
    const slices = await admin.request('GET', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes');
    expect(slices.body.endpoints[0].addresses).toEqual(['198.18.0.1']);
    expect(slices.body.ports[0].port).toBe(c.state.ports.apiserver);
  });
});

describe('joining', () => {
  test('cluster-info is readable without credentials and its kubeconfig holds the CA and the edge server', async () => {
    const res = await fetch(`${c.server}/api/v1/namespaces/kube-public/configmaps/cluster-info`, { tls: { ca: c.caCertPem } });
    expect(res.status).toBe(200);
    const cm = (await res.json()) as { data: Record<string, string> };
    const kubeconfig = parseYaml(cm.data.kubeconfig!) as { clusters: { cluster: Record<string, string> }[] };
    const cluster = kubeconfig.clusters[0]!.cluster;
    expect(Buffer.from(cluster['certificate-authority-data']!, 'base64').toString()).toBe(c.caCertPem);
    expect(cluster.server).toBe(c.edgeServer);
    // The same anonymous request is refused elsewhere: the read above was truly anonymous.
    const secrets = await fetch(`${c.server}/api/v1/namespaces/kube-system/secrets`, { tls: { ca: c.caCertPem } });
    expect(secrets.status).toBe(403);
  });

  test('a bootstrap token gets a node client certificate through a CSR that kube-controller-manager leaves to tether-hub', async () => {
    const token = await c.createBootstrapToken({ ttlSeconds: 600, description: 'cluster e2e' });
    const id = token.split('.')[0]!;
    cleanups.push(() => admin.request('DELETE', `/api/v1/namespaces/kube-system/secrets/bootstrap-token-${id}`));
    const boot = c.client({ token });
    const who = await whoAmI(boot);
    expect(who.username).toBe(`system:bootstrap:${id}`);
    expect(who.groups).toContain('system:bootstrappers:kubeadm:default-node-token');

    const { keyPem, csrPem } = await createCsr('system:node:test-node', ['system:nodes']);
    const name = `node-csr-e2e-${randomBytes(4).toString('hex')}`;
    const created = await boot.request('POST', '/apis/certificates.k8s.io/v1/certificatesigningrequests', {
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name },
      spec: {
        request: Buffer.from(csrPem).toString('base64'),
        signerName: 'kubernetes.io/kube-apiserver-client-kubelet',
        usages: ['digital signature', 'client auth'],
      },
    });
    expect(created.status).toBe(201);
    cleanups.push(() => admin.request('DELETE', `/apis/certificates.k8s.io/v1/certificatesigningrequests/${name}`));

    // kube-controller-manager's approver acts only for requesters RBAC allows nodeclient
    // (bootstrap) or selfnodeclient (renewal) CSRs: no bootstrap group has the former, nodes the latter.
    const may = async (user: string, groups: string[], subresource: string) =>
      (
        await admin.request('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: { user, groups, resourceAttributes: { group: 'certificates.k8s.io', resource: 'certificatesigningrequests', subresource, verb: 'create' } },
        })
      ).body.status.allowed;
    expect(await may(who.username, who.groups, 'nodeclient')).toBe(false);
    expect(await may('system:node:test-node', ['system:nodes', 'system:authenticated'], 'selfnodeclient')).toBe(true);

    // Approved as tether-hub (or an operator) would; kube-controller-manager signs it.
    const pending = (await admin.request('GET', `/apis/certificates.k8s.io/v1/certificatesigningrequests/${name}`)).body;
    const approved = await admin.request('PUT', `/apis/certificates.k8s.io/v1/certificatesigningrequests/${name}/approval`, {
      ...pending,
      status: { conditions: [{ type: 'Approved', status: 'True', reason: 'ClusterE2E', message: 'approved by the cluster e2e suite' }] },
    });
    expect(approved.status).toBe(200);

    let csr: any;
    await pollUntil(
      'CSR approved and issued',
      async () => {
        csr = (await boot.request('GET', `/apis/certificates.k8s.io/v1/certificatesigningrequests/${name}`)).body;
        return !!csr?.status?.certificate;
      },
      { timeoutMs: 60_000 },
    );
    expect(csr.status.conditions).toEqual([expect.objectContaining({ type: 'Approved', reason: 'ClusterE2E', status: 'True' })]);
    const certPem = Buffer.from(csr.status.certificate, 'base64').toString();
    const cert = new X509Certificate(certPem);
    expect(cert.subject).toContain('CN=system:node:test-node');
    expect(cert.subject).toContain('O=system:nodes');
    expect(cert.verify(new X509Certificate(c.caCertPem).publicKey)).toBe(true);

    // The issued certificate authenticates as the node.
    const node = await whoAmI(createKubeRest({ server: c.server, caPem: c.caCertPem, certPem, keyPem }));
    expect(node.username).toBe('system:node:test-node');
    expect(node.groups).toContain('system:nodes');
  });

  test('the bootstrap signer signs cluster-info with a new token (HS256 over the kubeconfig)', async () => {
    const token = await c.createBootstrapToken({ description: 'cluster e2e signer' });
    const [id, secret] = token.split('.') as [string, string];
    cleanups.push(() => admin.request('DELETE', `/api/v1/namespaces/kube-system/secrets/bootstrap-token-${id}`));
    let data: Record<string, string> = {};
    await pollUntil(
      'cluster-info signature',
      async () => {
        data = (await admin.request('GET', '/api/v1/namespaces/kube-public/configmaps/cluster-info')).body.data;
        return `jws-kubeconfig-${id}` in data;
      },
      { timeoutMs: 60_000 },
    );
    const [header, empty, signature] = data[`jws-kubeconfig-${id}`]!.split('.');
    expect(empty).toBe('');
    expect(JSON.parse(Buffer.from(header!, 'base64url').toString())).toMatchObject({ alg: 'HS256', kid: id });
    const payload = Buffer.from(data.kubeconfig!).toString('base64url');
    expect(createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url')).toBe(signature!);
  });

  test('the token cleaner deletes an expired bootstrap token', async () => {
    const token = await createBootstrapToken(admin, { ttlSeconds: -60, description: 'cluster e2e expired' });
    const path = `/api/v1/namespaces/kube-system/secrets/bootstrap-token-${token.split('.')[0]}`;
    cleanups.push(() => admin.request('DELETE', path));
    await pollUntil('expired token deleted', async () => (await admin.request('GET', path)).status === 404, { timeoutMs: 60_000 });
  });

  test('a node certificate is authorized as that node, and NodeRestriction keeps it to its own lease', async () => {
    const creds = await c.issueClientCert('system:node:e2e-node-a', ['system:nodes']);
    const node = c.client(creds);
    expect((await whoAmI(node)).username).toBe('system:node:e2e-node-a');
    const leases = '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases';
    const lease = (name: string) => ({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace: 'kube-node-lease' },
      spec: { holderIdentity: name, leaseDurationSeconds: 40 },
    });
    cleanups.push(() => admin.request('DELETE', `${leases}/e2e-node-a`));

    const own = await node.request('POST', leases, lease('e2e-node-a'));
    expect(own.status).toBe(201);
    expect((await node.request('GET', `${leases}/e2e-node-a`)).status).toBe(200);

    const other = await node.request('POST', leases, lease('e2e-node-b'));
    expect(other.status).toBe(403);
    expect(other.body.message).toContain('can only access node lease with the same name as the requesting node');
  });
});

describe('egress selector', () => {
  test('given a hub address, the apiserver reaches kubelets through HTTP CONNECT over mTLS to the hub', async () => {
    // A stand-in for the hub: a TLS server that requires a client certificate from its own CA,
    // records the CONNECT line and refuses the tunnel. It never dials the target.
    const pki = mkdtempSync(join(tmpdir(), 'tether-hub-pki-'));
    const f = (n: string) => ({ certFile: join(pki, `${n}.crt`), keyFile: join(pki, `${n}.key`) });
    const hubCa = await createCa(f('ca'), 'test-hub-ca');
    const hubServing = await issueCert(hubCa, f('hub'), { cn: 'hub', usage: ['server'], ips: ['127.0.0.1'] });
    const apiserverClient = await issueCert(hubCa, f('apiserver'), { cn: 'kube-apiserver', usage: ['client'] });
    const connects: { line: string; peer: string }[] = [];
    const hub = createTlsServer(
      {
        cert: readFileSync(hubServing.certFile),
        key: readFileSync(hubServing.keyFile),
        ca: readFileSync(hubCa.certFile),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (sock) => {
        sock.once('data', (buf) => {
          connects.push({ line: buf.toString().split('\r\n')[0]!, peer: String(sock.getPeerCertificate().subject?.CN) });
          sock.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n');
        });
      },
    );
    await new Promise<void>((r) => hub.listen(0, '127.0.0.1', r));
    const port = (hub.address() as AddressInfo).port;
    let own: Cluster | undefined;
    try {
      own = await startCluster({
        hub: { url: `https://127.0.0.1:${port}`, caFile: hubCa.certFile, ...apiserverClient },
      });
      const ownAdmin = own.admin;
      const created = await ownAdmin.request('POST', '/api/v1/nodes', {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: 'egress-node' },
        status: {
          addresses: [{ type: 'InternalIP', address: '198.18.77.7' }],
          daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
        },
      });
      expect(created.status).toBe(201);
      const proxied = await ownAdmin.request('GET', '/api/v1/nodes/egress-node/proxy/healthz');
      expect(proxied.status).not.toBe(200);
      expect(connects).toContainEqual({ line: 'CONNECT 198.18.77.7:10250 HTTP/1.1', peer: 'kube-apiserver' });
    } finally {
      await own?.stop();
      hub.close();
      rmSync(pki, { recursive: true, force: true });
    }
  }, 300_000);
});
