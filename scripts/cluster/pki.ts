/**
 * Certificates and keys for the test control plane, made with the `openssl` CLI (no npm
 * dependency, and the same tool an operator would use by hand).
 *
 * Keys are EC P-256 except the service-account signing key, which is RSA 2048 as kubeadm makes
 * it. Every certificate gets a random serial, so concurrent issuing needs no serial file.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ErrorCode, TetherError } from '../../shared/errors.ts';

export interface CertFiles {
  certFile: string;
  keyFile: string;
}

/** A CA is a certificate and key too; the name says which role a pair plays. */
export type CaFiles = CertFiles;

export interface CertSpec {
  /** Common name (a Kubernetes user name for client certificates). */
  cn: string;
  /** Organizations (Kubernetes groups for client certificates). */
  orgs?: string[];
  /** Extended key usages. */
  usage: ('client' | 'server')[];
  /** DNS names and IP addresses for the subjectAltName. */
  dnsNames?: string[];
  ips?: string[];
  days?: number;
}

/** Runs openssl; the error names the step and carries openssl's stderr. */
function openssl(step: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        reject(new TetherError(ErrorCode.Internal, `${step}: openssl ${args[0]}: ${stderr.trim() || err.message}`, { cause: err }));
      } else resolve(stdout);
    });
  });
}

/** "/CN=a/O=b/O=c" with the characters openssl treats specially escaped. */
function subject(cn: string, orgs: string[] = []): string {
  const esc = (v: string) => v.replace(/([\\/+,=])/g, '\\$1');
  return `/CN=${esc(cn)}` + orgs.map((o) => `/O=${esc(o)}`).join('');
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // keep it positive
  return '0x' + b.toString('hex');
}

function ensureDir(file: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
}

/** A self-signed CA certificate and its key. */
export async function createCa(files: CaFiles, cn: string, days = 3650): Promise<CaFiles> {
  ensureDir(files.certFile);
  await openssl(`create CA ${cn}`, [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', files.keyFile, '-out', files.certFile, '-days', String(days), '-subj', subject(cn),
    '-set_serial', serial(),
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign,cRLSign',
    '-addext', 'subjectKeyIdentifier=hash',
  ]);
  return files;
}

/** Writes a new EC key and a certificate for it signed by `ca`. */
export async function issueCert(ca: CaFiles, files: CertFiles, spec: CertSpec): Promise<CertFiles> {
  ensureDir(files.certFile);
  const csrFile = `${files.keyFile}.csr`;
  const extFile = `${files.keyFile}.ext`;
  const eku = spec.usage.map((u) => (u === 'client' ? 'clientAuth' : 'serverAuth')).join(',');
  const sans = [...(spec.dnsNames ?? []).map((d) => `DNS:${d}`), ...(spec.ips ?? []).map((i) => `IP:${i}`)];
  const ext = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${eku}`,
    'authorityKeyIdentifier=keyid',
    ...(sans.length ? [`subjectAltName=${sans.join(',')}`] : []),
  ];
  writeFileSync(extFile, ext.join('\n') + '\n');
  try {
    await openssl(`issue certificate ${spec.cn}`, [
      'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', files.keyFile, '-out', csrFile, '-subj', subject(spec.cn, spec.orgs),
    ]);
    await openssl(`sign certificate ${spec.cn}`, [
      'x509', '-req', '-in', csrFile, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', serial(),
      '-days', String(spec.days ?? 365), '-extfile', extFile, '-out', files.certFile,
    ]);
  } finally {
    rmSync(csrFile, { force: true });
    rmSync(extFile, { force: true });
  }
  return files;
}

/** An RSA key pair in PEM files (the service-account token signing key). */
export async function createRsaKeyPair(privateFile: string, publicFile: string): Promise<void> {
  ensureDir(privateFile);
  await openssl('create service-account key', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', privateFile]);
  await openssl('extract service-account public key', ['pkey', '-in', privateFile, '-pubout', '-out', publicFile]);
}

/**
 * A new EC key and a PEM certificate request for it (what a kubelet sends as a
 * CertificateSigningRequest). Returns both PEMs; nothing is written to disk.
 */
export async function createCsr(cn: string, orgs: string[] = []): Promise<{ keyPem: string; csrPem: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'tether-csr-'));
  try {
    const keyFile = join(dir, 'key.pem');
    const csrFile = join(dir, 'csr.pem');
    await openssl(`create CSR ${cn}`, [
      'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyFile, '-out', csrFile, '-subj', subject(cn, orgs),
    ]);
    return { keyPem: readFileSync(keyFile, 'utf8'), csrPem: readFileSync(csrFile, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function readPem(file: string): string {
  return readFileSync(file, 'utf8');
}
