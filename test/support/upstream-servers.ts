/**
 * Test support for edge/upstream: a throwaway PKI (the one of test/support/pki.ts), and local HTTPS
 * "apiservers" on 127.0.0.1 that require a client certificate signed by that CA.
 *
 * A server listens with a raw net.Server in front of a tls.Server and an http.Server, so that it can
 * - serve: `/readyz` answers `readyzStatus`; `/whoami` answers the CN of the client certificate;
 *   `/watch` sends headers and a first line, then stays open and gets lines from `push()`;
 * - hang(): accept TCP and never answer (new connections are ignored, requests on existing ones are
 *   never answered), as a server behind a dead link;
 * - stop(): close the listener and destroy every socket; start(): listen again on the same port.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import type { Upstream, UpstreamAgent } from '../../edge/upstream/pool.ts';
import { createTestPki } from './pki.ts';

export interface Pki {
  dir: string;
  ca: string;
  client(cn: string): { cert: string; key: string };
  server: { cert: string; key: string };
  remove(): void;
}

/** A CA (test/support/pki.ts), a serving certificate for 127.0.0.1 and a client certificate per CN. */
export async function makePki(clients: string[]): Promise<Pki> {
  const pki = await createTestPki();
  const server = await pki.server({ cn: '127.0.0.1', ips: ['127.0.0.1'] });
  const issued = new Map<string, { cert: string; key: string }>();
  for (const cn of clients) {
    const c = await pki.client(cn);
    issued.set(cn, { cert: c.certPem, key: c.keyPem });
  }
  return {
    dir: pki.dir,
    ca: pki.caPem,
    server: { cert: server.certPem, key: server.keyPem },
    client(cn) {
      const c = issued.get(cn);
      if (!c) throw new Error(`no client certificate ${cn}`);
      return c;
    },
    remove: pki.remove,
  };
}

export interface TestApiServer {
  readonly url: string;
  /** Status of /readyz answers. */
  readyzStatus: number;
  /** /readyz requests answered 200 since the last start(). */
  readonly readyzOk: number;
  /** Every request served: path and client certificate CN. */
  readonly requests: { path: string; cn: string }[];
  /** TCP connections accepted since listening first, and those still open. */
  readonly connections: number;
  readonly openConnections: number;
  push(line: string): void;
  /** Ends every open /watch response cleanly. */
  endWatches(): void;
  hang(): void;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export async function startApiServer(pki: Pki): Promise<TestApiServer> {
  let mode: 'serve' | 'hang' = 'serve';
  let readyzOk = 0;
  let connections = 0;
  const requests: { path: string; cn: string }[] = [];
  const sockets = new Set<net.Socket>();
  const raw = new Set<net.Socket>();
  const watches = new Set<http.ServerResponse>();

  const app = http.createServer((req, res) => {
    if (mode === 'hang') return; // never answered
    const socket = req.socket as tls.TLSSocket;
    const cn = String(socket.getPeerCertificate().subject?.CN ?? '');
    const path = new URL(req.url ?? '/', 'https://x').pathname;
    requests.push({ path, cn });
    if (path === '/readyz') {
      if (api.readyzStatus === 200) readyzOk++;
      res.writeHead(api.readyzStatus, { 'content-type': 'text/plain' }).end('ok');
    } else if (path === '/whoami') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(cn);
    } else if (path === '/watch') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"type":"BOOKMARK"}\n');
      watches.add(res);
      res.on('close', () => watches.delete(res));
    } else {
      res.writeHead(404).end();
    }
  });
  const secure = tls.createServer(
    { ca: pki.ca, cert: pki.server.cert, key: pki.server.key, requestCert: true, rejectUnauthorized: true },
    (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      app.emit('connection', s);
    },
  );
  secure.on('tlsClientError', () => {});
  const front = net.createServer((s) => {
    connections++;
    sockets.add(s);
    raw.add(s);
    s.on('close', () => (sockets.delete(s), raw.delete(s)));
    s.on('error', () => {});
    if (mode === 'serve') secure.emit('connection', s);
  });

  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      front.once('error', reject);
      front.listen(port, '127.0.0.1', () => {
        front.off('error', reject);
        resolve((front.address() as net.AddressInfo).port);
      });
    });
  const port = await listen(0);

  const api: TestApiServer = {
    url: `https://127.0.0.1:${port}`,
    readyzStatus: 200,
    get readyzOk() {
      return readyzOk;
    },
    requests,
    get connections() {
      return connections;
    },
    get openConnections() {
      return raw.size;
    },
    push(line) {
      for (const w of watches) w.write(line + '\n');
    },
    endWatches() {
      for (const w of watches) w.end();
    },
    hang() {
      mode = 'hang';
    },
    async stop() {
      const closed = new Promise<void>((resolve) => front.close(() => resolve()));
      for (const s of sockets) s.destroy();
      sockets.clear();
      await closed;
    },
    async start() {
      mode = 'serve';
      readyzOk = 0;
      await listen(port);
    },
  };
  return api;
}

/** In-process conditions, polled every 5 ms (the one wait helper). */
export { waitFor } from './wait.ts';

export interface Reply {
  status: number;
  body: string;
  reused: boolean;
}

/** GET through an agent, as the proxy would. */
export function get(u: Upstream, path: string, agent: UpstreamAgent = u.agent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(path, u.url), { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export interface OpenWatch {
  lines: string[];
  /** Settles when the stream ends: resolves on a clean end, rejects with the abort or socket error. */
  done: Promise<void>;
}

/** Opens GET /watch on `u` with `abort` as its signal; resolves once the first line arrived. */
export function openWatch(u: Upstream, abort: AbortController): Promise<OpenWatch> {
  return new Promise((resolveOpen, rejectOpen) => {
    const lines: string[] = [];
    let endWatch!: () => void;
    let failWatch!: (e: unknown) => void;
    const done = new Promise<void>((res, rej) => ((endWatch = res), (failWatch = rej)));
    done.catch(() => {});
    const req = https.request(new URL('/watch', u.url), { agent: u.agent }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        const parts = buf.split('\n');
        buf = parts.pop() ?? '';
        lines.push(...parts);
        if (lines.length > 0) resolveOpen({ lines, done });
      });
      res.on('end', endWatch);
      res.on('error', failWatch);
    });
    const onAbort = () => req.destroy(abort.signal.reason as Error);
    abort.signal.addEventListener('abort', onAbort, { once: true });
    req.on('error', (e) => {
      failWatch(e);
      rejectOpen(e);
    });
    req.end();
  });
}
