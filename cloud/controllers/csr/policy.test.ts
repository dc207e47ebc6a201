import { describe, expect, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import type { CertificateSigningRequest } from '../kube-types.ts';
import { csrSubject, pemToDer } from './pkcs10.ts';
import { decide, type CsrPolicy } from './policy.ts';
import { tokenNodeGroup } from './token-node.ts';

/** A real PKCS#10 request from openssl (tests only: production code never shells out). */
function openSslCsr(subject: string, extra: string[] = []): string {
  const r = spawnSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', '/dev/null', '-subj', subject, ...extra], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
}

const nodeCsr = openSslCsr('/O=system:nodes/CN=system:node:edge-1');

function csr(over: Partial<CertificateSigningRequest['spec']> = {}, pem = nodeCsr): CertificateSigningRequest {
  return {
    metadata: { name: 'csr-1' },
    spec: {
      request: Buffer.from(pem).toString('base64'),
      signerName: 'kubernetes.io/kube-apiserver-client-kubelet',
      usages: ['digital signature', 'client auth'],
      username: 'system:bootstrap:abcdef',
      groups: ['system:bootstrappers', 'system:bootstrappers:kubeadm:default-node-token', 'system:authenticated'],
      ...over,
    },
  };
}
const policy: CsrPolicy = {
  bootstrapGroups: ['system:bootstrappers'],
  bootstrapSigners: ['kubernetes.io/kube-apiserver-client-kubelet'],
  bootstrapExistingNodes: 'deny',
  nodeExists: () => false,
};
const exists = (...names: string[]) => (n: string) => names.includes(n);
const bootstrapGroups = (...extra: string[]) => ['system:bootstrappers', 'system:bootstrappers:kubeadm:default-node-token', ...extra, 'system:authenticated'];

describe('PKCS#10 subject parsing', () => {
  test('reads CN and O as openssl wrote them', () => {
    expect(csrSubject(pemToDer(nodeCsr))).toEqual({ commonName: 'system:node:edge-1', organizations: ['system:nodes'] });
  });
  test('several organizations, UTF-8 strings and multi-valued RDNs', () => {
    const pem = openSslCsr('/O=a/O=b+OU=x/CN=système', ['-utf8', '-multivalue-rdn']);
    expect(csrSubject(pemToDer(pem))).toEqual({ commonName: 'système', organizations: ['a', 'b'] });
  });
  test('garbage is refused with a message, not a crash', () => {
    expect(() => csrSubject(new Uint8Array([0x30, 0x82, 0xff]))).toThrow();
    expect(() => pemToDer('hello')).toThrow('no CERTIFICATE REQUEST');
  });
});

describe('CSR approval policy', () => {
  test('a bootstrap token may get a kubelet client certificate for a new node', () => {
    expect(decide(csr(), policy)).toMatchObject({ action: 'approve', reason: 'TetherBootstrap' });
  });
  test('the node itself may renew, for either signer', () => {
    for (const signerName of ['kubernetes.io/kube-apiserver-client', 'kubernetes.io/kube-apiserver-client-kubelet']) {
      expect(decide(csr({ signerName, username: 'system:node:edge-1', groups: ['system:nodes'] }), policy)).toMatchObject({ action: 'approve', reason: 'TetherNodeRenewal' });
    }
  });
  test("another node asking for this node's name is denied with a reason", () => {
    const d = decide(csr({ username: 'system:node:edge-2', groups: ['system:nodes', 'system:authenticated'] }), policy);
    expect(d).toMatchObject({ action: 'deny', reason: 'TetherNotEntitled' });
    if (d.action === 'deny') expect(d.message).toContain('system:node:edge-2 may not obtain a client certificate for node edge-1');
  });
  test('a bootstrap token may not use a signer it is not allowed', () => {
    expect(decide(csr({ signerName: 'kubernetes.io/kube-apiserver-client' }), policy)).toMatchObject({ action: 'deny', reason: 'TetherNotEntitled' });
  });
  test('by default a bootstrap token naming no node may not get a certificate for a node that exists', () => {
    const d = decide(csr(), { ...policy, nodeExists: exists('edge-1') });
    expect(d).toMatchObject({ action: 'deny', reason: 'TetherNodeExists' });
    if (d.action === 'deny') expect(d.message).toContain('tether-hub token create --node-name edge-1');
    // the same token for a node that does not exist is fine
    expect(decide(csr(), { ...policy, nodeExists: exists('edge-2') })).toMatchObject({ action: 'approve', reason: 'TetherBootstrap' });
  });
  test('the default configuration denies existing nodes', async () => {
    const { defaultControllersConfig } = await import('../config.ts');
    expect(defaultControllersConfig.csrBootstrapExistingNodes).toBe('deny');
  });
  test('bootstrapExistingNodes: allow keeps the old behaviour for tokens naming no node', () => {
    expect(decide(csr(), { ...policy, bootstrapExistingNodes: 'allow', nodeExists: exists('edge-1') })).toMatchObject({ action: 'approve', reason: 'TetherBootstrap' });
  });
  test('a token created for a node gets that node, whether it exists or not', () => {
    const groups = bootstrapGroups(tokenNodeGroup('edge-1'));
    expect(decide(csr({ groups }), policy)).toMatchObject({ action: 'approve', reason: 'TetherBootstrapNamed', node: 'edge-1' });
    expect(decide(csr({ groups }), { ...policy, nodeExists: exists('edge-1') })).toMatchObject({ action: 'approve', reason: 'TetherBootstrapNamed' });
  });
  test('a token created for a node gets no other node, existing or new, even with bootstrapExistingNodes: allow', () => {
    const groups = bootstrapGroups(tokenNodeGroup('edge-2'));
    for (const p of [policy, { ...policy, nodeExists: exists('edge-1') }, { ...policy, bootstrapExistingNodes: 'allow' as const }]) {
      const d = decide(csr({ groups }), p);
      expect(d).toMatchObject({ action: 'deny', reason: 'TetherTokenForAnotherNode' });
      if (d.action === 'deny') expect(d.message).toContain('created for node edge-2 and may not obtain a certificate for node edge-1');
    }
  });
  test('dotted node names survive the group encoding and match only themselves', () => {
    const dotted = openSslCsr('/O=system:nodes/CN=system:node:edge-1.shop-7.example');
    expect(tokenNodeGroup('edge-1.shop-7.example')).toBe('system:bootstrappers:tether:node:edge-1:shop-7:example');
    expect(decide(csr({ groups: bootstrapGroups(tokenNodeGroup('edge-1.shop-7.example')) }, dotted), policy)).toMatchObject({ action: 'approve', reason: 'TetherBootstrapNamed' });
    expect(decide(csr({ groups: bootstrapGroups(tokenNodeGroup('edge-1.shop-7')) }, dotted), policy)).toMatchObject({ action: 'deny', reason: 'TetherTokenForAnotherNode' });
  });
  test('a token bound to several nodes gets none of them', () => {
    const groups = bootstrapGroups(tokenNodeGroup('edge-1'), tokenNodeGroup('edge-2'));
    expect(decide(csr({ groups }), policy)).toMatchObject({ action: 'deny', reason: 'TetherTokenAmbiguous' });
  });
  test('a node group outside a bootstrap token entitles nothing', () => {
    // a requester that is no bootstrap token but carries the group (say, in a client certificate's O)
    const d = decide(csr({ username: 'mallory', groups: [tokenNodeGroup('edge-1'), 'system:authenticated'] }), policy);
    expect(d).toMatchObject({ action: 'deny', reason: 'TetherNotEntitled' });
  });
  test('wrong organization or usages are denied', () => {
    expect(decide(csr({}, openSslCsr('/O=system:masters/CN=system:node:edge-1')), policy)).toMatchObject({ action: 'deny', reason: 'TetherBadOrganization' });
    expect(decide(csr({ usages: ['client auth', 'server auth'] }), policy)).toMatchObject({ action: 'deny', reason: 'TetherBadUsages' });
  });
  test('CSRs that are not node client certificates, or already decided, are ignored', () => {
    expect(decide(csr({}, openSslCsr('/O=acme/CN=alice')), policy).action).toBe('ignore');
    expect(decide(csr({ signerName: 'kubernetes.io/kubelet-serving' }), policy).action).toBe('ignore');
    const done = { ...csr(), status: { conditions: [{ type: 'Approved', status: 'True' }] } };
    expect(decide(done, policy).action).toBe('ignore');
  });
});
