import { afterAll, expect, test } from 'bun:test';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, createCsr, issueCert } from './pki.ts';

const dir = mkdtempSync(join(tmpdir(), 'tether-pki-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const pair = (n: string) => ({ certFile: join(dir, `${n}.crt`), keyFile: join(dir, `${n}.key`) });
const cert = (f: string) => new X509Certificate(readFileSync(f));

test('a serving certificate carries the requested SANs and is signed by the CA', async () => {
  const ca = await createCa(pair('ca'), 'test-ca');
  const server = await issueCert(ca, pair('server'), {
    cn: 'kube-apiserver',
    usage: ['server'],
    ips: ['127.0.0.1', '198.18.0.1'],
    dnsNames: ['kubernetes.default.svc', 'localhost'],
  });
  const x = cert(server.certFile);
  expect(x.subjectAltName).toBe('DNS:kubernetes.default.svc, DNS:localhost, IP Address:127.0.0.1, IP Address:198.18.0.1');
  expect(x.checkIssued(cert(ca.certFile))).toBe(true);
  expect(x.verify(cert(ca.certFile).publicKey)).toBe(true);
  expect(x.ca).toBe(false);
  expect(cert(ca.certFile).ca).toBe(true);
});

test('a client certificate has one O per group, with special characters kept', async () => {
  const ca = await createCa(pair('ca2'), 'test-ca');
  const client = await issueCert(ca, pair('client'), { cn: 'system:node:a/b', orgs: ['system:nodes', 'x+y=z'], usage: ['client'] });
  const x = cert(client.certFile);
  // X509Certificate escapes '+' when it prints a name; the value itself is x+y=z.
  expect(x.subject.split('\n')).toEqual(['CN=system:node:a/b', 'O=system:nodes', 'O=x\\+y=z']);
  expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
});

test('createCsr returns a key and a CSR for the given subject', async () => {
  const { keyPem, csrPem } = await createCsr('system:node:n1', ['system:nodes']);
  expect(keyPem).toContain('PRIVATE KEY');
  expect(csrPem).toContain('BEGIN CERTIFICATE REQUEST');
});
