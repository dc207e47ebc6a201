/** The release checks with real Ed25519 keys (node:crypto): each way a release can be wrong is refused with its reason. */
import { describe, expect, test } from 'bun:test';
import { generateKeyPairSync, sign } from 'node:crypto';
import { ReleaseRefused, checkArtifact, parseSums, releaseKeyOf, sha256Hex, verifyRelease } from './verify.ts';

const ARTIFACT = 'tether-edge-linux-x64';
const releaseKeys = generateKeyPairSync('ed25519');
const otherKeys = generateKeyPairSync('ed25519');
const pub = releaseKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const binary = Buffer.from('#!/bin/sh\necho 0.2.0\n');

function release(o: { version?: string; versionFile?: string; listVersion?: boolean; listArtifact?: boolean; signer?: typeof releaseKeys.privateKey; tamperSums?: boolean } = {}) {
  const version = Buffer.from(o.versionFile ?? `${o.version ?? '0.2.0'}\n`);
  const lines = [
    ...(o.listArtifact === false ? [] : [`${sha256Hex(binary)}  ${ARTIFACT}`]),
    `${sha256Hex(Buffer.from('other'))}  tether-edge-linux-arm64`,
    ...(o.listVersion === false ? [] : [`${sha256Hex(Buffer.from(`${o.version ?? '0.2.0'}\n`))}  VERSION`]),
  ];
  let sums = Buffer.from(`${lines.join('\n')}\n`);
  const signature = sign(null, sums, o.signer ?? releaseKeys.privateKey);
  if (o.tamperSums) sums = Buffer.from(sums.toString().replace(sha256Hex(binary), sha256Hex(Buffer.from('evil'))));
  return { sums, signature, version };
}

const refusal = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ReleaseRefused);
    return (e as Error).message;
  }
  throw new Error('not refused');
};

describe('verifyRelease', () => {
  test('a release signed by the pinned key, for the target version, gives the binary its signed sha256', () => {
    expect(verifyRelease(release(), { releaseKey: pub, version: '0.2.0', artifact: ARTIFACT })).toBe(sha256Hex(binary));
  });

  test('a signature by another key is refused', () => {
    expect(refusal(() => verifyRelease(release({ signer: otherKeys.privateKey }), { releaseKey: pub, version: '0.2.0', artifact: ARTIFACT }))).toBe(
      'SHA256SUMS.sig does not verify with the pinned release key',
    );
  });

  test('SHA256SUMS changed after signing is refused', () => {
    expect(refusal(() => verifyRelease(release({ tamperSums: true }), { releaseKey: pub, version: '0.2.0', artifact: ARTIFACT }))).toContain('does not verify');
  });

  test('a signature of the wrong length (truncated file) is refused, not thrown as a crypto error', () => {
    const r = release();
    expect(refusal(() => verifyRelease({ ...r, signature: r.signature.subarray(0, 10) }, { releaseKey: pub, version: '0.2.0', artifact: ARTIFACT }))).toContain('does not verify');
  });

  test('an old signed release replayed as a new version: VERSION says another version', () => {
    expect(refusal(() => verifyRelease(release({ version: '0.1.9' }), { releaseKey: pub, version: '0.2.0', artifact: ARTIFACT }))).toBe('VERSION says "0.1.9", the target is 0.2.0');
  });

  test('a VERSION file that is not the one listed is refused', () => {
    expect(refusal(() => verifyRelease(release({ versionFile: '0.2.0 \n' }), { releaseKey: pub, version: '0.2.0', artifact: ARTIFACT }))).toStartWith('VERSION does not match its SHA256SUMS line');
  });

  test('a release whose SHA256SUMS does not list VERSION is refused', () => {
    expect(refusal(() => verifyRelease(release({ listVersion: false }), { releaseKey: pub, version: '0.2.0', artifact: ARTIFACT }))).toBe('VERSION is not listed in SHA256SUMS');
  });

  test("a release without this node's build is refused", () => {
    expect(refusal(() => verifyRelease(release({ listArtifact: false }), { releaseKey: pub, version: '0.2.0', artifact: ARTIFACT }))).toBe(
      "tether-edge-linux-x64 (this node's build) is not listed in SHA256SUMS",
    );
  });

  test('a pinned key that is not Ed25519 is refused with its type', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(refusal(() => releaseKeyOf(rsa))).toBe('the pinned release key is rsa, not Ed25519');
    expect(refusal(() => releaseKeyOf('garbage'))).toStartWith('the pinned release key cannot be read');
  });
});

describe('checkArtifact', () => {
  test('the sha256 of the download must be the signed one', () => {
    const expected = sha256Hex(binary);
    expect(() => checkArtifact(ARTIFACT, expected, expected.toUpperCase())).not.toThrow();
    expect(refusal(() => checkArtifact(ARTIFACT, expected, sha256Hex(Buffer.from('x'))))).toBe(`${ARTIFACT}: sha256 ${sha256Hex(Buffer.from('x'))} does not match SHA256SUMS (${expected})`);
  });
});

describe('parseSums', () => {
  test('reads text and binary mode lines, and refuses a malformed one', () => {
    const a = 'a'.repeat(64);
    const b = 'B'.repeat(64);
    expect([...parseSums(`${a}  one\n${b} *two\n\n`)]).toEqual([['one', a], ['two', 'b'.repeat(64)]]);
    expect(refusal(() => parseSums('xyz  one\n'))).toStartWith('SHA256SUMS: malformed line');
  });
});
