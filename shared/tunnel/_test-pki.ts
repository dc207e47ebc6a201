/**
 * Test certificates made with the openssl CLI: a CA, a server certificate for 127.0.0.1, a
 * client certificate (CN system:node:<name>, O system:nodes) and a second, unrelated CA.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  ca: Buffer;
  otherCa: Buffer;
  serverCert: Buffer;
  serverKey: Buffer;
  clientCert: Buffer;
  clientKey: Buffer;
}

export function makeTestPki(node = 'edge-1'): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'tether-tunnel-pki-'));
  const f = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const key = (name: string) => ssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f(name));
  try {
    for (const ca of ['ca', 'other-ca']) {
      key(`${ca}.key`);
      ssl('req', '-x509', '-new', '-key', f(`${ca}.key`), '-out', f(`${ca}.crt`), '-subj', `/CN=${ca}`, '-days', '1');
    }
    const issue = (name: string, subj: string, ext: string) => {
      key(`${name}.key`);
      ssl('req', '-new', '-key', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', subj);
      writeFileSync(f(`${name}.ext`), ext);
      ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${name}.crt`), '-days', '1', '-extfile', f(`${name}.ext`));
    };
    issue('server', '/CN=tether-hub', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    issue('client', `/O=system:nodes/CN=system:node:${node}`, 'extendedKeyUsage=clientAuth\n');
    const r = (name: string) => readFileSync(f(name));
    return { ca: r('ca.crt'), otherCa: r('other-ca.crt'), serverCert: r('server.crt'), serverKey: r('server.key'), clientCert: r('client.crt'), clientKey: r('client.key') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
