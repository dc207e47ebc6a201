/**
 * What a release must prove before anything of it runs, checked in this order (each failure names
 * the file and what did not match; the caller reports it as Failed and swaps nothing):
 *
 *   1. SHA256SUMS.sig is an Ed25519 signature of the exact bytes of SHA256SUMS by the release key
 *      pinned at join (`releaseKey`). Nothing else from the release location is trusted before this:
 *      the hub, a mirror or the network may hand down any bytes.
 *   2. VERSION is listed in SHA256SUMS, its bytes hash to that line, and its content is the version
 *      the node was asked for: an old signed SHA256SUMS cannot be replayed as a newer release.
 *   3. The binary for this build's target is listed, and the downloaded file's sha256 is that line.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { createHash } from 'node:crypto';
import { RELEASE_FILES } from '../../shared/upgrade/contract.ts';

/** A release that must not be installed; `message` is the reason reported in the Node's status. */
export class ReleaseRefused extends Error {
  override readonly name = 'ReleaseRefused';
}

/** The lines of a SHA256SUMS file ("<64 hex>  <name>", or "<hex> *<name>" in binary mode), by file name. */
export function parseSums(text: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (!line.trim()) continue;
    const m = /^([0-9a-fA-F]{64}) [ *](.+)$/.exec(line);
    if (!m) throw new ReleaseRefused(`${RELEASE_FILES.sums}: malformed line ${JSON.stringify(line.slice(0, 100))}`);
    sums.set(m[2]!, m[1]!.toLowerCase());
  }
  return sums;
}

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The pinned key as a KeyObject; a key that is not an Ed25519 public key is refused. */
export function releaseKeyOf(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (e) {
    throw new ReleaseRefused(`the pinned release key cannot be read (${e instanceof Error ? e.message : String(e)})`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new ReleaseRefused(`the pinned release key is ${key.asymmetricKeyType ?? 'not an asymmetric key'}, not Ed25519`);
  return key;
}

export interface ReleaseFiles {
  sums: Buffer;
  signature: Buffer;
  version: Buffer;
}

/**
 * Steps 1 and 2: returns the expected sha256 of `artifact` (step 3 compares the download with it).
 * Throws ReleaseRefused with the precise reason.
 */
export function verifyRelease(files: ReleaseFiles, o: { releaseKey: string; version: string; artifact: string }): string {
  const key = releaseKeyOf(o.releaseKey);
  let ok = false;
  try {
    ok = files.signature.length === 64 && verify(null, files.sums, key, files.signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new ReleaseRefused(`${RELEASE_FILES.signature} does not verify with the pinned release key`);
  const sums = parseSums(files.sums.toString('utf8'));
  const versionSum = sums.get(RELEASE_FILES.version);
  if (!versionSum) throw new ReleaseRefused(`${RELEASE_FILES.version} is not listed in ${RELEASE_FILES.sums}`);
  if (sha256Hex(files.version) !== versionSum) throw new ReleaseRefused(`${RELEASE_FILES.version} does not match its ${RELEASE_FILES.sums} line (sha256 ${sha256Hex(files.version)}, listed ${versionSum})`);
  const released = files.version.toString('utf8').trim();
  if (released !== o.version) throw new ReleaseRefused(`${RELEASE_FILES.version} says ${JSON.stringify(released.slice(0, 64))}, the target is ${o.version}`);
  const artifactSum = sums.get(o.artifact);
  if (!artifactSum) throw new ReleaseRefused(`${o.artifact} (this node's build) is not listed in ${RELEASE_FILES.sums}`);
  return artifactSum;
}

/** Step 3: the downloaded binary's sha256 against its SHA256SUMS line. */
export function checkArtifact(artifact: string, expected: string, actual: string): void {
  if (actual.toLowerCase() !== expected) throw new ReleaseRefused(`${artifact}: sha256 ${actual} does not match ${RELEASE_FILES.sums} (${expected})`);
}
