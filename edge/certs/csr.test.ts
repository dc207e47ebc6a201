import { afterAll, describe, expect, test } from 'bun:test';
import { execFileSync, spawnSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { integer, oid, tlv } from './_der.ts';
import { buildCsr, csrToPem, generateNodeKey, keyToPem } from './csr.ts';

const dir = mkdtempSync(join(tmpdir(), 'tether-csr-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** `openssl req -verify -noout -text` on the PEM; returns its exit code and combined output. */
function opensslVerify(pem: string): { code: number; out: string } {
  const file = join(dir, `req-${++n}.csr`);
  writeFileSync(file, pem);
  const r = spawnSync('openssl', ['req', '-verify', '-noout', '-text', '-in', file], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: `${r.stdout}\n${r.stderr}` };
}

describe('DER encoding', () => {
  test('object identifiers, integers and long lengths encode as X.690 says', () => {
    expect(oid('1.2.840.10045.4.3.2').toString('hex')).toBe('06082a8648ce3d040302');
    expect(oid('2.5.4.3').toString('hex')).toBe('0603550403');
    expect(integer(0).toString('hex')).toBe('020100');
    expect(integer(128).toString('hex')).toBe('02020080');
    expect(tlv(0x04, Buffer.alloc(200)).subarray(0, 3).toString('hex')).toBe('0481c8');
    expect(tlv(0x04, Buffer.alloc(300)).subarray(0, 4).toString('hex')).toBe('0482012c');
  });
});

describe('certification requests', () => {
  test('openssl verifies the self-signature and reads the node subject and the P-256 key', () => {
    const key = generateNodeKey();
    const pem = csrToPem(buildCsr(key, { cn: 'system:node:edge-1', orgs: ['system:nodes'] }));
    const r = opensslVerify(pem);
    expect(r.code).toBe(0);
    expect(r.out).toContain('verify OK');
    expect(r.out).toContain('Subject: O = system:nodes, CN = system:node:edge-1');
    expect(r.out).toContain('ASN1 OID: prime256v1');
    expect(r.out).toContain('Signature Algorithm: ecdsa-with-SHA256');
    expect(r.out).toMatch(/Attributes:\s*\(none\)|Attributes:\s*\n\s*a0:00/);
  });

  test('the request carries exactly the public half of the key', () => {
    const key = generateNodeKey();
    const file = join(dir, 'pub.csr');
    writeFileSync(file, csrToPem(buildCsr(key, { cn: 'system:node:edge-2', orgs: ['system:nodes'] })));
    const pub = execFileSync('openssl', ['req', '-in', file, '-noout', '-pubkey'], { encoding: 'utf8' });
    expect(createPublicKey(pub).export({ type: 'spki', format: 'der' })).toEqual(
      createPublicKey(key).export({ type: 'spki', format: 'der' }),
    );
    // The key's PEM is what openssl reads back as the same key.
    expect(keyToPem(key)).toStartWith('-----BEGIN PRIVATE KEY-----');
  });

  test('long subjects (multi-byte DER lengths) and several organizations still verify', () => {
    const orgs = Array.from({ length: 12 }, (_, i) => `org-${i}-${'x'.repeat(20)}`);
    const r = opensslVerify(csrToPem(buildCsr(generateNodeKey(), { cn: `system:node:${'n'.repeat(60)}`, orgs })));
    expect(r.code).toBe(0);
    expect(r.out).toContain('verify OK');
    for (const o of orgs) expect(r.out).toContain(o);
  });

  test('a request altered after signing fails openssl verification', () => {
    const der = buildCsr(generateNodeKey(), { cn: 'system:node:edge-3', orgs: ['system:nodes'] });
    const at = der.indexOf(Buffer.from('edge-3'));
    der[at] = 'f'.charCodeAt(0); // "fdge-3": the signature no longer matches
    const r = opensslVerify(csrToPem(der));
    // OpenSSL 3.0 exits 0 here and reports the failure in words.
    expect(r.out).toContain('verify failure');
    expect(r.out).not.toContain('verify OK');
  });

  test('only EC private keys are accepted', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    expect(() => buildCsr(rsa, { cn: 'x' })).toThrow('an EC private key is needed');
  });
});
