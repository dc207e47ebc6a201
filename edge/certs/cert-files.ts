/**
 * The node's certificate and key on disk (PEM, 0600, in a 0700 directory), replaced so that a
 * crash at any point leaves a usable pair:
 *
 *   1. write <key>.new and <cert>.new (0600, fsynced)
 *   2. rename <key>.new → <key>
 *   3. rename <cert>.new → <cert>
 *
 * A crash between 2 and 3 leaves a new key beside the old certificate; `recoverCertFiles` (run
 * before the files are read) finishes step 3 when <cert>.new pairs with the key, and otherwise
 * removes leftovers of an unfinished step 1.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';

export interface CertPaths {
  certFile: string;
  keyFile: string;
}

/** Writes `data` to `file` (mode 0600) and flushes it to disk. */
export function writeSecretFile(file: string, data: string | Buffer, mode = 0o600): void {
  const fd = openSync(file, 'w', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeCertPair(paths: CertPaths, certPem: string, keyPem: string): void {
  const step = `write certificate ${paths.certFile}`;
  try {
    for (const f of [paths.certFile, paths.keyFile]) mkdirSync(dirname(f), { recursive: true, mode: 0o700 });
    writeSecretFile(`${paths.keyFile}.new`, keyPem);
    writeSecretFile(`${paths.certFile}.new`, certPem);
    renameSync(`${paths.keyFile}.new`, paths.keyFile);
    renameSync(`${paths.certFile}.new`, paths.certFile);
  } catch (e) {
    throw new TetherError(ErrorCode.Internal, `${step}: ${messageOf(e)}`, { cause: e });
  }
}

function pairs(certPem: Buffer, keyPem: Buffer): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/** Completes or discards an interrupted `writeCertPair`. Returns what it did, for the log. */
export function recoverCertFiles(paths: CertPaths, log?: Logger): 'none' | 'completed' | 'discarded' {
  const certNew = `${paths.certFile}.new`;
  const keyNew = `${paths.keyFile}.new`;
  if (!existsSync(certNew) && !existsSync(keyNew)) return 'none';
  if (!existsSync(keyNew) && existsSync(certNew) && existsSync(paths.keyFile) && pairs(readFileSync(certNew), readFileSync(paths.keyFile))) {
    renameSync(certNew, paths.certFile);
    log?.warn('completed an interrupted certificate replacement', { certFile: paths.certFile });
    return 'completed';
  }
  rmSync(certNew, { force: true });
  rmSync(keyNew, { force: true });
  log?.warn('discarded an unfinished certificate replacement', { certFile: paths.certFile });
  return 'discarded';
}

export interface LoadedCert {
  certPem: Buffer;
  keyPem: Buffer;
  cert: X509Certificate;
  notBefore: Date;
  notAfter: Date;
}

export function loadCertPair(paths: CertPaths): LoadedCert {
  const step = `read node certificate ${paths.certFile}`;
  try {
    const certPem = readFileSync(paths.certFile);
    const keyPem = readFileSync(paths.keyFile);
    const cert = new X509Certificate(certPem);
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error(`the key ${paths.keyFile} does not belong to it`);
    return { certPem, keyPem, cert, notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
  } catch (e) {
    throw new TetherError(ErrorCode.BadConfig, `${step}: ${messageOf(e)}`, { cause: e });
  }
}
