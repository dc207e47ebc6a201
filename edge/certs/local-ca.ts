/**
 * The agent's local CA: the credentials of local clients (the kubelet, kube-proxy) talking to the
 * agent's proxy over HTTPS. A client certificate from this CA is what lets a local process use the
 * node's identity; its common name says which component it is (and whether it is cached).
 *
 * On disk (`dir`, default /etc/tether/pki/local after join, <dataDir>/local-ca otherwise):
 *   dir/        0700, owned by the agent's user (root)
 *   ca.key      0600: EC P-256 key of the CA; whoever reads it can become the node
 *   ca.crt      0600: the CA certificate (10 years)
 * The agent's serving certificate (localhost, 127.0.0.1, ::1 and the listen host) is issued in
 * memory at every start and never written. A directory or key that another user owns or can read
 * is refused, not repaired: another user may have planted or copied it.
 */
import { type KeyObject, X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import { generateNodeKey, keyToPem } from './csr.ts';
import { type CertUsage, issueCertificate } from './_x509.ts';

export const LOCAL_CA_CERT = 'ca.crt';
export const LOCAL_CA_KEY = 'ca.key';
const YEAR_MS = 365 * 24 * 3600_000;

export interface IssuedPair {
  certPem: string;
  keyPem: string;
}

export interface LocalCa {
  readonly dir: string;
  readonly certPem: string;
  readonly cert: X509Certificate;
  /** A new key and certificate for `cn` (client: a local component; server: the agent's listener). */
  issue(cn: string, usage: Exclude<CertUsage, 'ca'>, opts?: { hosts?: readonly string[]; validMs?: number; now?: Date }): IssuedPair;
}

/** A new CA in memory (join writes its files as part of its change set). */
export function createLocalCa(cn: string, now = new Date()): { certPem: string; keyPem: string } {
  const key = generateNodeKey();
  const publicKey = createPublicKey(key);
  const certPem = issueCertificate(
    { cn, usage: 'ca', publicKey, notBefore: new Date(now.getTime() - 3600_000), notAfter: new Date(now.getTime() + 10 * YEAR_MS) },
    { cn, key, publicKey },
  );
  return { certPem, keyPem: keyToPem(key) };
}

/** The CA from its PEM files' contents. */
export function localCaFrom(dir: string, certPem: string, keyPem: string): LocalCa {
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(certPem);
    key = createPrivateKey(keyPem);
  } catch (e) {
    throw new TetherError(ErrorCode.BadConfig, `local CA ${dir}: cannot read the CA: ${messageOf(e)}; remove the directory to start a new CA (local clients then need new certificates: re-run join)`, { cause: e });
  }
  if (!cert.ca || !cert.checkPrivateKey(key)) throw new TetherError(ErrorCode.BadConfig, `local CA ${dir}: ${LOCAL_CA_CERT} is not a CA certificate for ${LOCAL_CA_KEY}`);
  const issuer = { cn: subjectCn(cert) ?? 'tether-edge local CA', key, publicKey: createPublicKey(key) };
  return {
    dir,
    certPem,
    cert,
    issue(cn, usage, o = {}) {
      const now = o.now ?? new Date();
      const leaf = generateNodeKey();
      const certPem = issueCertificate(
        {
          cn,
          usage,
          publicKey: leaf,
          hosts: o.hosts,
          notBefore: new Date(now.getTime() - 3600_000),
          notAfter: new Date(Math.min(now.getTime() + (o.validMs ?? (usage === 'server' ? YEAR_MS : 10 * YEAR_MS)), new Date(cert.validTo).getTime())),
        },
        issuer,
      );
      return { certPem, keyPem: keyToPem(leaf) };
    },
  };
}

export function subjectCn(cert: X509Certificate): string | undefined {
  for (const line of cert.subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return undefined;
}

function checkPrivate(path: string, kind: 'directory' | 'file'): void {
  const st = statSync(path);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new TetherError(ErrorCode.BadConfig, `local CA: ${path} is owned by uid ${st.uid}, not by this agent (uid ${uid}); another user may have planted it: remove it and re-run join`);
  }
  if (st.mode & 0o077) {
    throw new TetherError(
      ErrorCode.BadConfig,
      `local CA: ${path} is a ${kind} other users can ${kind === 'directory' ? 'enter' : 'read'} (mode ${(st.mode & 0o777).toString(8)}); its key may be known: remove ${kind === 'directory' ? 'it' : 'the directory'} and re-run join`,
    );
  }
}

/**
 * Opens the local CA in `dir`, creating it (0700 directory, 0600 files) when it does not exist yet.
 * Refuses a directory or files that another user owns or may read.
 */
export function openLocalCa(dir: string, cn = 'tether-edge local CA'): LocalCa {
  const certPath = join(dir, LOCAL_CA_CERT);
  const keyPath = join(dir, LOCAL_CA_KEY);
  try {
    if (!existsSync(dir)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700); // not loosened by the umask, nor by recursive's parents
    }
    checkPrivate(dir, 'directory');
    if (!existsSync(keyPath) && !existsSync(certPath)) {
      const ca = createLocalCa(cn);
      for (const [path, content] of [[certPath, ca.certPem], [keyPath, ca.keyPem]] as const) {
        const tmp = `${path}.new`;
        writeFileSync(tmp, content, { mode: 0o600 });
        renameSync(tmp, path);
      }
    }
    checkPrivate(keyPath, 'file');
    return localCaFrom(dir, readFileSync(certPath, 'utf8'), readFileSync(keyPath, 'utf8'));
  } catch (e) {
    if (e instanceof TetherError) throw e;
    throw new TetherError(ErrorCode.BadConfig, `local CA ${dir}: ${messageOf(e)}`, { cause: e });
  }
}
