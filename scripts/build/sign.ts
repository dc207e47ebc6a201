/**
 * Release signatures: SHA256SUMS.sig is the raw 64-byte Ed25519 signature over the exact bytes of
 * SHA256SUMS, the same bytes `openssl pkeyutl -sign -rawin -inkey release.key -in SHA256SUMS`
 * writes, so a release can be checked by hand with openssl and by the agent with node:crypto.
 * Ed25519 only: with node:crypto `sign(null, …)` other key types would silently mean another
 * scheme (a hashed RSA or ECDSA signature) that the agent and install.sh do not accept.
 */
import { type KeyObject, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The length of every Ed25519 signature (RFC 8032). */
export const SIGNATURE_BYTES = 64;

/** Reads an Ed25519 private key PEM; throws an Error with a readable message otherwise. */
export function readSigningKey(path: string): KeyObject {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read the signing key ${path}: ${(e as Error).message}`);
  }
  if (pem.includes('BEGIN PUBLIC KEY')) {
    throw new Error(`${path} is a public key: --sign-key takes the private key (openssl genpkey -algorithm ed25519 -out release.key)`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new Error(`${path} is not a readable PEM private key (make one with: openssl genpkey -algorithm ed25519 -out release.key)`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(`${path} holds a key of type ${key.asymmetricKeyType ?? 'unknown'}; release signing needs Ed25519 (openssl genpkey -algorithm ed25519 -out release.key)`);
  }
  return key;
}

/** The raw signature over `data`. */
export function signRelease(data: Uint8Array, key: KeyObject): Buffer {
  return sign(null, data, key);
}

/** Whether `sig` is a valid signature over `data` by the Ed25519 public key (PEM text or KeyObject). */
export function verifyRelease(data: Uint8Array, sig: Uint8Array, publicKey: string | KeyObject): boolean {
  const key = typeof publicKey === 'string' ? createPublicKey({ key: publicKey, format: 'pem' }) : publicKey;
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`expected an Ed25519 public key, got ${key.asymmetricKeyType ?? 'an unknown key type'}`);
  if (sig.length !== SIGNATURE_BYTES) return false;
  return verify(null, data, key, sig);
}

/** The PEM (SPKI) public key of a signing key, as `openssl pkey -pubout` prints it. */
export function publicKeyPem(key: KeyObject): string {
  return createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
}
