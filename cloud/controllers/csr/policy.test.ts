import { describe, expect, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import type { CertificateSigningRequest } from '../kube-types.ts';
import { csrSubject, pemToDer } from './pkcs10.ts';
import { decide, type CsrPolicy } from './policy.ts';

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
  bootstrapExistingNodes: 'allow',
  nodeExists: () => false,
};

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
  test('existing nodes can be reserved to themselves', () => {
    expect(decide(csr(), { ...policy, bootstrapExistingNodes: 'deny', nodeExists: (n) => n === 'edge-1' })).toMatchObject({ action: 'deny', reason: 'TetherNodeExists' });
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
