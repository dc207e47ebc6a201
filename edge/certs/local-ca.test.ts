import { afterAll, describe, expect, test } from 'bun:test';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:tls';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTetherError } from '../../shared/errors.ts';
import { createLocalCa, localCaFrom, openLocalCa, subjectCn } from './local-ca.ts';

const work = mkdtempSync(join(tmpdir(), 'tether-local-ca-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A TLS handshake between a server and a client certificate; resolves with what the server saw. */
function handshake(server: { certPem: string; keyPem: string }, caPem: string, client?: { certPem: string; keyPem: string }) {
  return new Promise<{ authorized: boolean; cn?: string }>((resolve, reject) => {
    const s = createServer({ cert: server.certPem, key: server.keyPem, ca: caPem, requestCert: true, rejectUnauthorized: false }, (sock) => {
      resolve({ authorized: sock.authorized, cn: String(sock.getPeerCertificate()?.subject?.CN) });
      sock.end();
      s.close();
    });
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      const c = connect({ host: '127.0.0.1', port, ca: caPem, ...(client ? { cert: client.certPem, key: client.keyPem } : {}) });
      c.on('error', reject);
      c.on('data', () => {});
    });
  });
}

describe('local CA', () => {
  test('is created 0700/0600 and opened again with the same certificate', () => {
    const dir = join(work, 'a', 'local-ca');
    const ca = openLocalCa(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'ca.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'ca.crt')).mode & 0o777).toBe(0o600);
    expect(ca.cert.ca).toBe(true);
    expect(openLocalCa(dir).certPem).toBe(ca.certPem);
  });

  test('issues client and server certificates that verify against it, with the right names and usages', () => {
    const ca = localCaFrom('mem', ...(Object.values(createLocalCa('test CA')) as [string, string]));
    const client = new X509Certificate(ca.issue('kubelet', 'client').certPem);
    expect(subjectCn(client)).toBe('kubelet');
    expect(client.verify(ca.cert.publicKey)).toBe(true);
    expect(client.checkIssued(ca.cert)).toBe(true);
    expect(client.keyUsage).toContain('1.3.6.1.5.5.7.3.2');
    expect(client.ca).toBe(false);
    const server = new X509Certificate(ca.issue('tether-edge', 'server', { hosts: ['localhost', '127.0.0.1', '::1', '198.18.0.7'] }).certPem);
    expect(server.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:198.18.0.7');
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(server.keyUsage).toContain('1.3.6.1.5.5.7.3.1');
  });

  test('a TLS server trusting the CA authenticates its client certificate by name, and not a foreign one', async () => {
    const ca = localCaFrom('mem', ...(Object.values(createLocalCa('test CA')) as [string, string]));
    const other = localCaFrom('mem', ...(Object.values(createLocalCa('other CA')) as [string, string]));
    const server = ca.issue('tether-edge', 'server', { hosts: ['127.0.0.1'] });
    expect(await handshake(server, ca.certPem, ca.issue('kube-proxy', 'client'))).toEqual({ authorized: true, cn: 'kube-proxy' });
    const foreign = await handshake(server, ca.certPem, other.issue('kubelet', 'client'));
    expect(foreign.authorized).toBe(false);
  });

  test('refuses a directory or key that other users can read', () => {
    const dir = join(work, 'loose');
    openLocalCa(dir);
    chmodSync(dir, 0o755);
    expect(() => openLocalCa(dir)).toThrow(/other users can enter/);
    chmodSync(dir, 0o700);
    chmodSync(join(dir, 'ca.key'), 0o644);
    let err: unknown;
    try {
      openLocalCa(dir);
    } catch (e) {
      err = e;
    }
    expect(isTetherError(err)).toBe(true);
    expect(String(err)).toMatch(/ca\.key .*mode 644/);
  });

  test('refuses garbage in place of the CA', () => {
    const dir = join(work, 'garbage');
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(dir, 'ca.crt'), 'not a certificate', { mode: 0o600 });
    writeFileSync(join(dir, 'ca.key'), 'not a key', { mode: 0o600 });
    expect(() => openLocalCa(dir)).toThrow(/cannot read the CA/);
  });
});
