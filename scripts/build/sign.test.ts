/** Release signatures made here and by openssl are the same thing: each side verifies the other's. */
import { afterAll, expect, test } from 'bun:test';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SIGNATURE_BYTES, publicKeyPem, readSigningKey, signRelease, verifyRelease } from './sign.ts';

const dir = mkdtempSync(join(tmpdir(), 'tether-sign-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const openssl = (...args: string[]) => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

const keyFile = join(dir, 'release.key');
const pubFile = join(dir, 'release.pub');
openssl('genpkey', '-algorithm', 'ed25519', '-out', keyFile);
openssl('pkey', '-in', keyFile, '-pubout', '-out', pubFile);
const sums = join(dir, 'SHA256SUMS');
writeFileSync(sums, `${'ab'.repeat(32)}  VERSION\n${'cd'.repeat(32)}  tether-edge-linux-x64\n`);

test('a signature made here verifies with openssl pkeyutl -rawin, and fails on one changed byte', () => {
  const sig = signRelease(readFileSync(sums), readSigningKey(keyFile));
  expect(sig.length).toBe(SIGNATURE_BYTES);
  writeFileSync(join(dir, 'SHA256SUMS.sig'), sig);
  const verify = (file: string) => {
    try {
      return openssl('pkeyutl', '-verify', '-pubin', '-inkey', pubFile, '-rawin', '-in', file, '-sigfile', join(dir, 'SHA256SUMS.sig'));
    } catch (e) {
      return String((e as { stdout?: string }).stdout);
    }
  };
  expect(verify(sums)).toContain('Signature Verified Successfully');
  const changed = join(dir, 'SHA256SUMS.changed');
  writeFileSync(changed, readFileSync(sums, 'utf8').replace('ab', 'ac'));
  expect(verify(changed)).toContain('Signature Verification Failure');
});

test('a signature made by openssl verifies here, with the public key as openssl writes it', () => {
  openssl('pkeyutl', '-sign', '-inkey', keyFile, '-rawin', '-in', sums, '-out', join(dir, 'openssl.sig'));
  const sig = readFileSync(join(dir, 'openssl.sig'));
  const pub = readFileSync(pubFile, 'utf8');
  expect(publicKeyPem(readSigningKey(keyFile))).toBe(pub);
  expect(verifyRelease(readFileSync(sums), sig, pub)).toBe(true);
  expect(verifyRelease(Buffer.from(readFileSync(sums, 'utf8') + '\n'), sig, pub)).toBe(false);
  expect(verifyRelease(readFileSync(sums), sig.subarray(0, 63), pub)).toBe(false);
  const other = generateKeyPairSync('ed25519').publicKey;
  expect(verifyRelease(readFileSync(sums), sig, other)).toBe(false);
});

test('signing keys that are not Ed25519 private keys are refused with what to do', () => {
  const ec = join(dir, 'ec.key');
  writeFileSync(ec, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  expect(() => readSigningKey(ec)).toThrow(`${ec} holds a key of type ec; release signing needs Ed25519`);
  expect(() => readSigningKey(pubFile)).toThrow('is a public key: --sign-key takes the private key');
  expect(() => readSigningKey(join(dir, 'absent.key'))).toThrow('cannot read the signing key');
  writeFileSync(join(dir, 'junk.key'), 'junk\n');
  expect(() => readSigningKey(join(dir, 'junk.key'))).toThrow('is not a readable PEM private key');
  const rsaPub = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
  expect(() => verifyRelease(readFileSync(sums), Buffer.alloc(64), rsaPub)).toThrow('expected an Ed25519 public key, got rsa');
});
