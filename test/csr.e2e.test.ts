/**
 * Which node certificates a bootstrap token can get, on the real control plane: tokens from the
 * real `tether-hub token create`, CSRs posted with them, decided by tether-hub's CSR approver
 * (the real controller, as the hub's service account with deploy/rbac.yaml) and signed by
 * kube-controller-manager:
 * - kube-controller-manager approves no bootstrap CSR itself (no nodeclient binding);
 * - a token naming no node: denied for a node that exists, approved (and signed) for a new one;
 * - a token from `--node-name N`: denied for any other name, new or existing; approved for N, even
 *   though N exists (the re-join case);
 * - `token create` refuses a bad --node-name, and refuses to make a token when a binding would let
 *   kube-controller-manager approve its CSRs for any name.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { X509Certificate } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createCsr } from '../scripts/cluster/pki.ts';
import { pollUntil } from './support/wait.ts';
import { type Cluster, type CsrApprover, sharedCluster, startCsrApprover } from './support/cluster.ts';
import { bunBin, run } from './support/run.ts';

const hubMain = fileURLToPath(new URL('../cloud/main.ts', import.meta.url));
const id = String(process.pid);
const existing = `csr-e2e-existing-${id}`;
const named = `csr-e2e-named-${id}`;
const CSRS = '/apis/certificates.k8s.io/v1/certificatesigningrequests';

describe('CSR approval for bootstrap tokens', () => {
  let cluster: Cluster;
  let approver: CsrApprover;
  const tokenIds: string[] = [];
  const csrNames: string[] = [];
  const nodes = [existing, named];

  /** `tether-hub token create` with the admin kubeconfig; the token and the join command's words. */
  const tokenCreate = async (extra: string[] = []) => {
    const r = await run([bunBin, hubMain, 'token', 'create', '--kubeconfig', cluster.adminKubeconfig, '--ttl', '30m', '--description', 'csr e2e', ...extra]);
    return { ...r, words: r.stdout.trim().split(' ') };
  };
  const usableToken = async (extra: string[] = []) => {
    const r = await tokenCreate(extra);
    if (r.code !== 0) throw new Error(`tether-hub token create: ${r.stderr}`);
    const token = r.words[r.words.indexOf('--token') + 1]!;
    tokenIds.push(token.split('.')[0]!);
    const self = cluster.client({ token });
    await pollUntil(
      'bootstrap token usable',
      async () => (await self.request('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' })).status === 201,
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    return { token, words: r.words, stderr: r.stderr };
  };
  /** Posts a kubelet client CSR for `node` as `token`; resolves with the CSR once it is decided (and, if approved, signed). */
  const csrFor = async (token: string, node: string) => {
    const { csrPem } = await createCsr(`system:node:${node}`, ['system:nodes']);
    const name = `csr-e2e-${id}-${csrNames.length}`;
    csrNames.push(name);
    const boot = cluster.client({ token });
    const created = await boot.request('POST', CSRS, {
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name },
      spec: { request: Buffer.from(csrPem).toString('base64'), signerName: 'kubernetes.io/kube-apiserver-client-kubelet', usages: ['digital signature', 'client auth'] },
    });
    if (created.status !== 201) throw new Error(`create CSR: HTTP ${created.status} ${JSON.stringify(created.body)}`);
    let csr: any;
    await pollUntil(
      `CSR ${name} decided`,
      async () => {
        csr = (await cluster.admin.request('GET', `${CSRS}/${name}`)).body;
        const conditions = (csr?.status?.conditions ?? []) as { type: string }[];
        return conditions.some((c) => c.type === 'Denied') || (conditions.some((c) => c.type === 'Approved') && !!csr.status.certificate);
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    ).catch((e) => {
      throw new Error(`${(e as Error).message}\n--- approver ---\n${approver.log.slice(-20).join('\n')}`);
    });
    return csr;
  };
  const conditionOf = (csr: any) => (csr.status.conditions as { type: string; reason: string; message: string }[]).find((c) => c.type === 'Approved' || c.type === 'Denied')!;

  beforeAll(async () => {
    cluster = await sharedCluster();
    for (const n of nodes) {
      const res = await cluster.admin.request('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: n } });
      if (res.status !== 201) throw new Error(`create node ${n}: HTTP ${res.status}`);
    }
    approver = await startCsrApprover(cluster);
  }, 300_000);

  afterAll(async () => {
    await approver?.stop();
    if (!cluster) return;
    for (const n of csrNames) await cluster.admin.request('DELETE', `${CSRS}/${n}`);
    for (const t of tokenIds) await cluster.admin.request('DELETE', `/api/v1/namespaces/kube-system/secrets/bootstrap-token-${t}`);
    for (const n of [...nodes, `csr-e2e-new-${id}`]) await cluster.admin.request('DELETE', `/api/v1/nodes/${n}`);
  });

  test('kube-controller-manager would approve no bootstrap token CSR itself: no bootstrap group may create nodeclient CSRs', async () => {
    const review = await cluster.admin.request('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: 'system:bootstrap:abcdef',
        groups: ['system:bootstrappers', 'system:bootstrappers:kubeadm:default-node-token', 'system:authenticated'],
        resourceAttributes: { group: 'certificates.k8s.io', resource: 'certificatesigningrequests', subresource: 'nodeclient', verb: 'create' },
      },
    });
    expect(review.status).toBe(201);
    expect(review.body.status.allowed).toBe(false);
  });

  test('a token naming no node is denied a certificate for a node that exists, with what to do instead', async () => {
    const { token, stderr } = await usableToken();
    expect(stderr).toContain('joins only nodes that do not exist yet');
    const csr = await csrFor(token, existing);
    expect(conditionOf(csr)).toMatchObject({ type: 'Denied', reason: 'TetherNodeExists' });
    expect(conditionOf(csr).message).toContain(`tether-hub token create --node-name ${existing}`);
    expect(csr.status.certificate).toBeUndefined();
  }, 120_000);

  test('a token naming no node gets a signed certificate for a new node', async () => {
    const { token } = await usableToken();
    const node = `csr-e2e-new-${id}`;
    const csr = await csrFor(token, node);
    expect(conditionOf(csr)).toMatchObject({ type: 'Approved', reason: 'TetherBootstrap' });
    const cert = new X509Certificate(Buffer.from(csr.status.certificate, 'base64'));
    expect(cert.subject.split('\n')).toEqual(['O=system:nodes', `CN=system:node:${node}`]);
    expect(cert.verify(new X509Certificate(cluster.caCertPem).publicKey)).toBe(true);
  }, 120_000);

  test('a token from --node-name N is denied any other node, new or existing, and gets N although N exists', async () => {
    const { token, words } = await usableToken(['--node-name', named]);
    expect(words.slice(-2)).toEqual(['--node-name', named]);
    const who = await cluster.client({ token }).request('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
    expect(who.body.status.userInfo.groups).toContain(`system:bootstrappers:tether:node:${named}`);

    for (const other of [`csr-e2e-other-${id}`, existing]) {
      const csr = await csrFor(token, other);
      expect(conditionOf(csr)).toMatchObject({ type: 'Denied', reason: 'TetherTokenForAnotherNode' });
      expect(conditionOf(csr).message).toContain(`created for node ${named}`);
      expect(csr.status.certificate).toBeUndefined();
    }
    const own = await csrFor(token, named);
    expect(conditionOf(own)).toMatchObject({ type: 'Approved', reason: 'TetherBootstrapNamed' });
    expect(new X509Certificate(Buffer.from(own.status.certificate, 'base64')).subject).toContain(`CN=system:node:${named}`);
  }, 180_000);

  test('a dotted --node-name becomes a group the apiserver accepts, and the token authenticates', async () => {
    const dotted = `csr-e2e-${id}.shop-7.example`;
    const { token } = await usableToken(['--node-name', dotted]);
    const who = await cluster.client({ token }).request('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
    expect(who.body.status.userInfo.groups).toContain(`system:bootstrappers:tether:node:csr-e2e-${id}:shop-7:example`);
  }, 120_000);

  test('token create refuses an invalid --node-name with a readable message and creates nothing', async () => {
    const r = await tokenCreate(['--node-name', 'Shop_7']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toBe('tether-hub: token create: --node-name: "Shop_7" is not a valid node name (lower-case letters, digits, \'-\' and \'.\', starting and ending with a letter or digit)');
  });

  test('token create refuses while a binding would let kube-controller-manager approve bootstrap CSRs for any node', async () => {
    const binding = `csr-e2e-autoapprove-${id}`;
    const tokensBefore = await bootstrapSecretNames();
    const made = await cluster.admin.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: binding },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:certificates.k8s.io:certificatesigningrequests:nodeclient' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:bootstrappers:kubeadm:default-node-token' }],
    });
    expect(made.status).toBe(201);
    try {
      // RBAC reaches the authorizer through an informer: wait until the binding is in force.
      const r = await pollUntilValue(async () => {
        const out = await tokenCreate();
        if (out.code === 0) tokenIds.push(out.words[out.words.indexOf('--token') + 1]!.split('.')[0]!);
        return out.code === 1 ? out : undefined;
      });
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain("kube-controller-manager would approve this token's node certificates for any node name");
      expect(r.stderr).toContain(binding);
      expect(r.stderr).toContain('kubectl delete clusterrolebinding kubeadm:node-autoapprove-bootstrap');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect((await bootstrapSecretNames()).filter((n) => !tokensBefore.includes(n) && !tokenIds.some((t) => n.endsWith(t)))).toEqual([]);
    } finally {
      await cluster.admin.request('DELETE', `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${binding}`);
    }
  }, 120_000);

  const bootstrapSecretNames = async () =>
    ((await cluster.admin.request('GET', '/api/v1/namespaces/kube-system/secrets?fieldSelector=type%3Dbootstrap.kubernetes.io%2Ftoken')).body.items as any[]).map((s) => s.metadata.name as string);
  const pollUntilValue = async <T>(f: () => Promise<T | undefined>): Promise<T> => {
    let value: T | undefined;
    await pollUntil('token create refuses', async () => (value = await f()) !== undefined, { timeoutMs: 60_000, intervalMs: 500 });
    return value!;
  };
});
