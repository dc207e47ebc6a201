/**
 * Test support for edge/certs unit tests only: an HTTPS server on 127.0.0.1 that plays the
 * CertificateSigningRequest API of kube-apiserver (create, get) with a throwaway openssl CA,
 * approving and signing at once. The end-to-end suites use the real control plane instead.
 *
 * Authentication: a bearer token from `tokens`, or a client certificate signed by the CA.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls, { type TLSSocket } from 'node:tls';

export interface FakeCsrApi {
  url: string;
  caPem: string;
  /** Each CSR created: who asked (`token:<id>` or `cert:<CN>`) and its name. */
  created: { name: string; by: string }[];
  tokens: Set<string>;
  /** Answer CSRs with a Denied condition instead of a certificate. */
  deny: boolean;
  /** A client certificate for `cn` (O=system:nodes) valid for `days`. */
  issue(cn: string, days?: number): { certPem: string; keyPem: string };
  close(): Promise<void>;
}

export async function startFakeCsrApi(): Promise<FakeCsrApi> {
  const dir = mkdtempSync(join(tmpdir(), 'tether-fake-csr-'));
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const keyArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...keyArgs, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=fake-cluster-ca');
  ssl('req', ...keyArgs, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-out', 'server.crt', '-extfile', 'server.ext');
  let n = 0;
  const sign = (csrPem: string, days: number): string => {
    const id = ++n;
    writeFileSync(join(dir, `c${id}.csr`), csrPem);
    ssl('x509', '-req', '-in', `c${id}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', String(days), '-out', `c${id}.crt`);
    return readFileSync(join(dir, `c${id}.crt`), 'utf8');
  };
  const csrs = new Map<string, { certificate?: string; denied?: boolean }>();
  const api: FakeCsrApi = {
    url: '',
    caPem: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    created: [],
    tokens: new Set(),
    deny: false,
    issue(cn, days = 1) {
      const id = ++n;
      ssl('req', ...keyArgs, '-keyout', `i${id}.key`, '-out', `i${id}.csr`, '-subj', `/O=system:nodes/CN=${cn}`);
      const certPem = sign(readFileSync(join(dir, `i${id}.csr`), 'utf8'), days);
      return { certPem, keyPem: readFileSync(join(dir, `i${id}.key`), 'utf8') };
    },
    close: () => new Promise((resolve) => server.close(() => (rmSync(dir, { recursive: true, force: true }), resolve()))),
  };
  // A tls.Server handing its sockets to an http.Server: under Bun, https.Server requests do not
  // expose the peer certificate, TLS sockets do.
  const app = http.createServer((req, res) => {
    const socket = req.socket as TLSSocket;
    const auth = req.headers.authorization?.replace(/^Bearer /, '');
    const who = auth && api.tokens.has(auth) ? `token:${auth.split('.')[0]}` : socket.authorized ? `cert:${socket.getPeerCertificate().subject?.CN}` : undefined;
    const send = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (!who) return send(401, { kind: 'Status', message: 'Unauthorized' });
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const base = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
      if (req.method === 'POST' && req.url === base) {
        const csr = JSON.parse(Buffer.concat(chunks).toString());
        const name = `${csr.metadata.generateName}${api.created.length}`;
        api.created.push({ name, by: who });
        const pem = Buffer.from(csr.spec.request, 'base64').toString();
        csrs.set(name, api.deny ? { denied: true } : { certificate: Buffer.from(sign(pem, 1)).toString('base64') });
        return send(201, { ...csr, metadata: { name } });
      }
      const name = req.url?.startsWith(`${base}/`) ? req.url.slice(base.length + 1) : '';
      const found = csrs.get(name);
      if (req.method === 'GET' && found) {
        const conditions = found.denied ? [{ type: 'Denied', reason: 'TestDenied', message: 'no' }] : [{ type: 'Approved', reason: 'AutoApproved' }];
        return send(200, { metadata: { name }, status: { conditions, ...(found.certificate ? { certificate: found.certificate } : {}) } });
      }
      send(404, { kind: 'Status', message: 'not found' });
    });
  });
  const server = tls.createServer(
    { cert: readFileSync(join(dir, 'server.crt')), key: readFileSync(join(dir, 'server.key')), ca: api.caPem, requestCert: true, rejectUnauthorized: false },
    (socket) => app.emit('connection', socket),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  api.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return api;
}
