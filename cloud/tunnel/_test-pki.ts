/**
 * Test support: a throwaway PKI in a temporary directory (openssl, through scripts/cluster/pki.ts)
 * with the files a hub and its clients need. `remove()` deletes it.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueCert, type CertFiles } from '../../scripts/cluster/pki.ts';

export interface HubTestPki {
  dir: string;
  caFile: string;
  /** Serving certificate for 127.0.0.1 with client usage too (replicas present it to peers). */
  hub: CertFiles;
  node(name: string): Promise<CertFiles>;
  client(cn: string, orgs?: string[]): Promise<CertFiles>;
  /** A certificate signed by the CA with an openssl `-subj` as given (several CNs, say). */
  withSubject(subj: string): Promise<CertFiles>;
  /** A certificate for `cn` signed by an unrelated CA. */
  foreign(cn: string, orgs?: string[]): Promise<CertFiles>;
  remove(): void;
}

export async function makeHubTestPki(): Promise<HubTestPki> {
  const dir = mkdtempSync(join(tmpdir(), 'tether-hub-pki-'));
  const f = (n: string) => ({ certFile: join(dir, `${n}.crt`), keyFile: join(dir, `${n}.key`) });
  const ca = await createCa(f('ca'), 'test-ca', 2);
  const other = await createCa(f('other-ca'), 'other-ca', 2);
  const hub = await issueCert(ca, f('hub'), { cn: 'tether-hub', usage: ['server', 'client'], ips: ['127.0.0.1'], days: 2 });
  let n = 0;
  const client = (issuer: CertFiles, cn: string, orgs: string[] = []) => issueCert(issuer, f(`c${++n}`), { cn, orgs, usage: ['client'], days: 2 });
  return {
    dir,
    caFile: ca.certFile,
    hub,
    node: (name) => client(ca, `system:node:${name}`, ['system:nodes']),
    client: (cn, orgs) => client(ca, cn, orgs),
    foreign: (cn, orgs) => client(other, cn, orgs),
    async withSubject(subj) {
      const out = f(`s${++n}`);
      const run = (args: string[]) => new Promise<void>((res, rej) => execFile('openssl', args, (e, _o, err) => (e ? rej(new Error(`openssl ${args[0]}: ${err}`)) : res())));
      writeFileSync(`${out.keyFile}.ext`, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
      await run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-multivalue-rdn', '-keyout', out.keyFile, '-out', `${out.keyFile}.csr`, '-subj', subj]);
      await run(['x509', '-req', '-in', `${out.keyFile}.csr`, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '2', '-extfile', `${out.keyFile}.ext`, '-out', out.certFile]);
      return out;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
