/**
 * Test support for edge/certs unit tests only: an HTTPS server on 127.0.0.1 that plays the
 * CertificateSigningRequest API of kube-apiserver (create, get) with a throwaway CA
 * (test/support/pki.ts), approving and signing at once. The end-to-end suites use the real control plane instead.
 *
 * Authentication: a bearer token from `tokens`, or a client certificate signed by the CA.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { createTestPki } from './pki.ts';

export interface FakeCsrApi {
  url: string;
  caPem: string;
  /** Each CSR created: who asked (`token:<id>` or `cert:<CN>`) and its name. */
  created: { name: string; by: string }[];
  tokens: Set<string>;
  /** Answer CSRs with a Denied condition instead of a certificate. */
  deny: boolean;
  /** A client certificate for `cn` (O=system:nodes) valid for `days`. */
  issue(cn: string, days?: number): Promise<{ certPem: string; keyPem: string }>;
  close(): Promise<void>;
}

export async function startFakeCsrApi(): Promise<FakeCsrApi> {
  const pki = await createTestPki({ cn: 'fake-cluster-ca' });
  const serving = await pki.server({ cn: '127.0.0.1', ips: ['127.0.0.1'], days: 1 });
  const csrs = new Map<string, { certificate?: string; denied?: boolean }>();
  const api: FakeCsrApi = {
    url: '',
    caPem: pki.caPem,
    created: [],
    tokens: new Set(),
    deny: false,
    issue: (cn, days = 1) => pki.client(cn, ['system:nodes'], days),
    close: () => new Promise((resolve) => server.close(() => (pki.remove(), resolve()))),
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
    req.on('end', async () => {
      const base = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
      if (req.method === 'POST' && req.url === base) {
        const csr = JSON.parse(Buffer.concat(chunks).toString());
        const name = `${csr.metadata.generateName}${api.created.length}`;
        api.created.push({ name, by: who });
        const pem = Buffer.from(csr.spec.request, 'base64').toString();
        let certificate: string | undefined;
        if (!api.deny) {
          try {
            certificate = Buffer.from(await pki.signCsr(pem, 1)).toString('base64');
          } catch (e) {
            return send(400, { kind: 'Status', message: `sign request: ${(e as Error).message}` });
          }
        }
        csrs.set(name, api.deny ? { denied: true } : { certificate });
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
    { cert: serving.certPem, key: serving.keyPem, ca: api.caPem, requestCert: true, rejectUnauthorized: false },
    (socket) => app.emit('connection', socket),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  api.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return api;
}
