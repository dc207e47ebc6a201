/**
 * The one throwaway PKI for tests, built on scripts/cluster/pki.ts (the openssl CLI, as the test
 * control plane makes its own): a CA in a temporary directory, server and client certificates
 * signed by it with the CN, O and SANs a test asks for, certificates from an unrelated CA (to be
 * refused), and the two things scripts/cluster/pki.ts has no need of: signing a certificate
 * request someone else made (a fake CSR API), and a certificate with a raw openssl subject
 * (several CNs, multi-valued RDNs) for identity parsing. `remove()` deletes the directory.
 *
 * Presets for the shapes the suites use: `createHubTestPki` (a hub's listeners and its callers)
 * and `createTunnelTestPki` (PEM buffers for a TLS tunnel pair).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueCert, type CaFiles, type CertFiles } from '../../scripts/cluster/pki.ts';

export type { CaFiles, CertFiles };

/** Files on disk and their PEM text. */
export interface TestCert extends CertFiles {
  certPem: string;
  keyPem: string;
}

export interface ServerSpec {
  /** Common name; default the first SAN. */
  cn?: string;
  /** Default 127.0.0.1 when no DNS name is given either. */
  ips?: string[];
  dnsNames?: string[];
  /** Client usage as well (a hub replica presents its serving certificate to its peers). */
  alsoClient?: boolean;
  days?: number;
}

export interface TestPki {
  dir: string;
  ca: CaFiles;
  caPem: string;
  server(spec?: ServerSpec): Promise<TestCert>;
  /** A client certificate: CN is the Kubernetes user, O its groups. */
  client(cn: string, orgs?: string[], days?: number): Promise<TestCert>;
  /** A node's client certificate: CN system:node:<name>, O system:nodes. */
  node(name: string): Promise<TestCert>;
  /** A client certificate for `cn` signed by an unrelated CA (same names, wrong issuer). */
  foreign(cn: string, orgs?: string[]): Promise<TestCert>;
  /** The unrelated CA's certificate (PEM), for a peer that must be refused. */
  foreignCaPem(): Promise<string>;
  /** A client certificate with an openssl `-subj` as given, multi-valued RDNs allowed. */
  withSubject(subj: string): Promise<TestCert>;
  /** Signs a PEM certificate request made elsewhere, as a cluster signer would (client usage). */
  signCsr(csrPem: string, days?: number): Promise<string>;
  remove(): void;
}

function openssl(args: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile('openssl', args, (e, _out, err) => (e ? reject(new Error(`openssl ${args[0]}: ${err.trim() || e.message}`, { cause: e })) : resolve())),
  );
}

const serial = () => `0x${randomBytes(8).toString('hex')}`;
const CLIENT_EXT = 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n';

/** A new CA (and an unrelated one, made when first needed) in a new temporary directory. */
export async function createTestPki(opts: { cn?: string; days?: number } = {}): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), 'tether-test-pki-'));
  const days = opts.days ?? 2;
  let n = 0;
  const files = (name: string): CertFiles => ({ certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`) });
  const read = (f: CertFiles): TestCert => ({ ...f, certPem: readFileSync(f.certFile, 'utf8'), keyPem: readFileSync(f.keyFile, 'utf8') });
  const ca = await createCa(files('ca'), opts.cn ?? 'tether-test-ca', days);
  let other: Promise<CaFiles> | undefined;
  const otherCa = () => (other ??= createCa(files('other-ca'), 'other-ca', days));
  const client = async (issuer: CaFiles, cn: string, orgs: string[] = [], d = days) =>
    read(await issueCert(issuer, files(`c${++n}`), { cn, orgs, usage: ['client'], days: d }));
  /** Signs `csrFile` with the CA and the extensions given; returns the certificate file. */
  const sign = async (csrFile: string, ext: string, d: number): Promise<string> => {
    const out = csrFile.replace(/\.csr$/, '.crt');
    writeFileSync(`${csrFile}.ext`, ext);
    await openssl(['x509', '-req', '-in', csrFile, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', serial(), '-days', String(d), '-extfile', `${csrFile}.ext`, '-out', out]);
    return out;
  };
  return {
    dir,
    ca,
    caPem: readFileSync(ca.certFile, 'utf8'),
    async server(spec = {}) {
      const ips = spec.ips ?? (spec.dnsNames?.length ? [] : ['127.0.0.1']);
      const dnsNames = spec.dnsNames ?? [];
      const cn = spec.cn ?? dnsNames[0] ?? ips[0]!;
      const usage: ('server' | 'client')[] = spec.alsoClient ? ['server', 'client'] : ['server'];
      return read(await issueCert(ca, files(`s${++n}`), { cn, usage, ips, dnsNames, days: spec.days ?? days }));
    },
    client: (cn, orgs, d) => client(ca, cn, orgs, d),
    node: (name) => client(ca, `system:node:${name}`, ['system:nodes']),
    foreign: async (cn, orgs) => client(await otherCa(), cn, orgs),
    foreignCaPem: async () => readFileSync((await otherCa()).certFile, 'utf8'),
    async withSubject(subj) {
      const f = files(`r${++n}`);
      const csr = f.keyFile.replace(/\.key$/, '.csr');
      await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-multivalue-rdn', '-keyout', f.keyFile, '-out', csr, '-subj', subj]);
      await sign(csr, CLIENT_EXT, days);
      return read(f);
    },
    async signCsr(csrPem, d = 1) {
      const csr = join(dir, `q${++n}.csr`);
      writeFileSync(csr, csrPem);
      return readFileSync(await sign(csr, CLIENT_EXT, d), 'utf8');
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The PKI a hub and its callers need (the cloud/ unit suites): files on disk. */
export interface HubTestPki {
  dir: string;
  caFile: string;
  /** Serving certificate for 127.0.0.1 with client usage too (replicas present it to peers). */
  hub: TestCert;
  node(name: string): Promise<TestCert>;
  client(cn: string, orgs?: string[]): Promise<TestCert>;
  withSubject(subj: string): Promise<TestCert>;
  foreign(cn: string, orgs?: string[]): Promise<TestCert>;
  remove(): void;
}

export async function createHubTestPki(): Promise<HubTestPki> {
  const pki = await createTestPki();
  const hub = await pki.server({ cn: 'tether-hub', alsoClient: true });
  return {
    dir: pki.dir,
    caFile: pki.ca.certFile,
    hub,
    node: pki.node,
    client: (cn, orgs) => pki.client(cn, orgs),
    withSubject: pki.withSubject,
    foreign: pki.foreign,
    remove: pki.remove,
  };
}

/** PEM buffers for a TLS tunnel pair: the hub's serving certificate, a node's client certificate. */
export interface TunnelTestPki {
  ca: Buffer;
  otherCa: Buffer;
  serverCert: Buffer;
  serverKey: Buffer;
  clientCert: Buffer;
  clientKey: Buffer;
}

/** Nothing is left on disk: the buffers are all a tunnel test needs. */
export async function createTunnelTestPki(node = 'edge-1'): Promise<TunnelTestPki> {
  const pki = await createTestPki();
  try {
    const server = await pki.server({ cn: 'tether-hub' });
    const client = await pki.node(node);
    return {
      ca: Buffer.from(pki.caPem),
      otherCa: Buffer.from(await pki.foreignCaPem()),
      serverCert: Buffer.from(server.certPem),
      serverKey: Buffer.from(server.keyPem),
      clientCert: Buffer.from(client.certPem),
      clientKey: Buffer.from(client.keyPem),
    };
  } finally {
    pki.remove();
  }
}
