import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { ErrorCode, isTetherError } from '../../shared/errors.ts';
import { createMemoryLogger } from '../../shared/log.ts';
import { createTransportPair } from '../../shared/tunnel/memory-transport.ts';
import { createTunnelSession } from '../../shared/tunnel/session.ts';
import { createApiForwarder, type ApiForwarder, type ApiUpstream } from './api-forward.ts';
import { createHubTestPki, type HubTestPki } from '../../test/support/pki.ts';
import { waitFor } from '../../test/support/wait.ts';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  clientCert: boolean;
  body: string;
}

let pki: HubTestPki;
let apiserver: https.Server;
let upstream: ApiUpstream;
const seen: Seen[] = [];
/** Per path: what the fake apiserver does with a request (default: 200 with the request echoed). */
const routes = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();
const upgrades: { url: string; headers: IncomingMessage['headers'] }[] = [];

/** Whether the request came with a client certificate of the CA (Bun's getPeerCertificate gives no subject; `authorized` is reliable). */
function withClientCert(req: IncomingMessage): boolean {
  return (req.socket as TLSSocket).authorized === true;
}

beforeAll(async () => {
  pki = await createHubTestPki();
  const ca = readFileSync(pki.caFile);
  const hubClient = await pki.client('tether-hub-sa');
  apiserver = https.createServer({ cert: readFileSync(pki.hub.certFile), key: readFileSync(pki.hub.keyFile), ca, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, clientCert: withClientCert(req), body: Buffer.concat(chunks).toString() });
      const route = routes.get((req.url ?? '').split('?')[0]!);
      if (route) return route(req, res);
      const body = JSON.stringify({ kind: 'Echo', url: req.url });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
  });
  apiserver.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    upgrades.push({ url: req.url!, headers: req.headers });
    if (req.url?.includes('refuse')) {
      const body = '{"kind":"Status","code":403}';
      return socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    }
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: SPDY/3.1\r\nConnection: Upgrade\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n');
    socket.on('data', (d: Buffer) => socket.write(`echo:${d}`));
  });
  await new Promise<void>((r) => apiserver.listen(0, '127.0.0.1', () => r()));
  const port = (apiserver.address() as AddressInfo).port;
  const hubAgent = new https.Agent({ keepAlive: true, ca, cert: readFileSync(hubClient.certFile), key: readFileSync(hubClient.keyFile) });
  const bearerAgent = new https.Agent({ keepAlive: true, ca });
  upstream = {
    server: new URL(`https://127.0.0.1:${port}/`),
    agent: (as) => (as === 'hub' ? hubAgent : bearerAgent),
    hubHeaders: async () => ({ authorization: 'Bearer hub-token' }),
    close() {
      hubAgent.destroy();
      bearerAgent.destroy();
    },
  };
});

afterAll(() => {
  apiserver?.close();
  apiserver?.closeAllConnections?.();
  upstream?.close?.();
  pki?.remove();
});

function forwarder(o: Partial<Parameters<typeof createApiForwarder>[0]> = {}) {
  const codes: number[] = [];
  const f = createApiForwarder({ upstream, impersonation: 'constrained', log: createMemoryLogger('debug'), answered: (_n, c) => codes.push(c), ...o });
  return { f, codes };
}

/** An http.Agent of the edge whose connections are api streams of `f` for `node`. */
function edgeAgent(f: ApiForwarder, node: string, streams: Duplex[] = []): http.Agent {
  const agent = new http.Agent({ keepAlive: false });
  (agent as unknown as { createConnection: (o: unknown, cb: (e: Error | null, s?: Duplex) => void) => void }).createConnection = (_o, cb) => {
    f.open(node, 'kube-apiserver', 0).then(
      (d) => {
        streams.push(d);
        Object.assign(d, { setKeepAlive: () => d, setNoDelay: () => d, setTimeout: () => d, ref: () => d, unref: () => d });
        cb(null, d);
      },
      (e) => cb(e),
    );
  };
  return agent;
}

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

function request(agent: http.Agent, path: string, opts: { method?: string; headers?: Record<string, string | string[]>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: 'kube-apiserver.tether', path, method: opts.method ?? 'GET', headers: opts.headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    r.on('error', reject);
    r.end(opts.body);
  });
}

const last = () => seen[seen.length - 1]!;

describe('api stream forwarder', () => {
  test('a request without a bearer token goes out as the node: identity headers stripped, Impersonate-User set, the hub credentials', async () => {
    const { f, codes } = forwarder();
    const a = await request(edgeAgent(f, 'edge-1'), '/api/v1/nodes/edge-1', {
      headers: {
        'Impersonate-User': 'system:admin',
        'Impersonate-Group': 'system:masters',
        'Impersonate-Uid': '1',
        'Impersonate-Extra-Scopes': 'all',
        'X-Remote-User': 'admin',
        'X-Remote-Group': 'system:masters',
        'X-Remote-Extra-Foo': 'bar',
        Authorization: 'Basic YWRtaW46YWRtaW4=',
        'Proxy-Authorization': 'Basic x',
        Connection: 'keep-alive, X-Secret-Hop',
        'X-Secret-Hop': 'hop',
        'User-Agent': 'kubelet/v1.37.2',
        'Accept-Encoding': 'gzip',
      },
    });
    expect(a.status).toBe(200);
    expect(JSON.parse(a.body)).toEqual({ kind: 'Echo', url: '/api/v1/nodes/edge-1' });
    const h = last().headers;
    expect(h['impersonate-user']).toBe('system:node:edge-1');
    expect(h['impersonate-group']).toBeUndefined();
    expect(h['impersonate-uid']).toBeUndefined();
    expect(h['impersonate-extra-scopes']).toBeUndefined();
    expect(Object.keys(h).filter((k) => k.startsWith('x-remote-'))).toEqual([]);
    expect(h.authorization).toBe('Bearer hub-token');
    expect(h['proxy-authorization']).toBeUndefined();
    expect(h['x-secret-hop']).toBeUndefined();
    expect(h['user-agent']).toBe('kubelet/v1.37.2');
    expect(h['accept-encoding']).toBe('gzip');
    expect(last().clientCert).toBe(true);
    expect(codes).toEqual([200]);
    f.close();
  });

  test('legacy impersonation adds Impersonate-Group system:nodes and nothing else', async () => {
    const { f } = forwarder({ impersonation: 'legacy' });
    await request(edgeAgent(f, 'edge-2'), '/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-2', { headers: { 'Impersonate-Group': 'system:masters' } });
    expect(last().url).toBe('/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-2');
    expect(last().headers['impersonate-user']).toBe('system:node:edge-2');
    expect(last().headers['impersonate-group']).toBe('system:nodes');
    f.close();
  });

  test("a pod's bearer token passes through unchanged, without impersonation and without the hub's certificate", async () => {
    const { f } = forwarder();
    const a = await request(edgeAgent(f, 'edge-1'), '/api/v1/namespaces/default/configmaps', {
      method: 'POST',
      headers: { Authorization: 'Bearer pod-token', 'Impersonate-User': 'system:admin', 'Content-Type': 'application/json' },
      body: '{"kind":"ConfigMap"}',
    });
    expect(a.status).toBe(200);
    const s = last();
    expect(s.method).toBe('POST');
    expect(s.body).toBe('{"kind":"ConfigMap"}');
    expect(s.headers.authorization).toBe('Bearer pod-token');
    expect(s.headers['impersonate-user']).toBeUndefined();
    expect(s.clientCert).toBe(false);
    f.close();
  });

  test('accept-encoding can be replaced upstream (identity: the tunnel compresses)', async () => {
    const { f } = forwarder({ acceptEncoding: 'identity' });
    await request(edgeAgent(f, 'edge-1'), '/api/v1/nodes', { headers: { 'Accept-Encoding': 'gzip' } });
    expect(last().headers['accept-encoding']).toBe('identity');
    f.close();
  });

  test('a watch is streamed event by event, not buffered', async () => {
    let next!: () => void;
    let upstreamClosed = false;
    routes.set('/api/v1/watch-stream', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"type":"ADDED","object":{"n":1}}\n');
      next = () => res.end('{"type":"ADDED","object":{"n":2}}\n');
      res.once('close', () => (upstreamClosed = true));
    });
    const { f } = forwarder();
    const got: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      http
        .get({ host: 'x', path: '/api/v1/watch-stream?watch=1', agent: edgeAgent(f, 'edge-1') }, (res) => {
          res.on('data', (c: Buffer) => {
            got.push(String(c));
            if (got.length === 1) next();
          });
          res.on('end', () => resolve());
        })
        .on('error', reject);
    });
    await done;
    // The second event was written only after the first had reached the edge.
    expect(got.join('')).toBe('{"type":"ADDED","object":{"n":1}}\n{"type":"ADDED","object":{"n":2}}\n');
    expect(got[0]).toBe('{"type":"ADDED","object":{"n":1}}\n');
    await waitFor('upstream response closed', () => upstreamClosed);
    f.close();
  });

  test('the edge going away aborts the upstream request', async () => {
    let upstreamGone = false;
    let started = false;
    routes.set('/api/v1/watch-abort', (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"type":"ADDED"}\n');
      started = true;
      req.socket.once('close', () => (upstreamGone = true));
    });
    const { f, codes } = forwarder();
    const streams: Duplex[] = [];
    const r = http.get({ host: 'x', path: '/api/v1/watch-abort', agent: edgeAgent(f, 'edge-1', streams) }, (res) => res.on('data', () => {}));
    r.on('error', () => {});
    await waitFor('watch started', () => started && streams.length === 1);
    await waitFor('stream counted', () => f.streams === 1);
    streams[0]!.destroy(); // the tunnel stream is reset (agent gone)
    await waitFor('upstream connection closed', () => upstreamGone);
    expect(upstreamGone).toBe(true);
    await waitFor('stream forgotten', () => f.streams === 0);
    expect(codes).toEqual([200]);
    f.close();
  });

  test('a request target naming another host ("//host/…", absolute form) still goes to the apiserver', async () => {
    const { f } = forwarder();
    const n = seen.length;
    const a = await request(edgeAgent(f, 'edge-1'), '//198.18.0.5/api/v1/secrets?x=1');
    expect(a.status).toBe(200);
    expect(seen.length).toBe(n + 1);
    expect(last().url).toBe('//198.18.0.5/api/v1/secrets?x=1');
    const d = await f.open('edge-1', 'kube-apiserver', 0);
    let text = '';
    d.on('data', (c: Buffer) => (text += c));
    d.write('GET http://198.18.0.5/api HTTP/1.1\r\nHost: 198.18.0.5\r\nConnection: close\r\n\r\n');
    await waitFor('answer from the apiserver', () => text.includes('"kind":"Echo"'));
    expect(last().url).toBe('/');
    d.destroy();
    f.close();
  });

  test('backpressure: a slow edge stops the apiserver writing, and the whole answer arrives', async () => {
    const total = 32 * 1024 * 1024;
    let written = 0;
    let blocked = false;
    let resume!: () => void;
    routes.set('/api/v1/big', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
      const chunk = Buffer.alloc(64 * 1024, 120);
      const pump = () => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) {
            blocked = true;
            return void res.once('drain', pump);
          }
        }
        res.end();
      };
      pump();
    });
    const { f } = forwarder();
    let received = 0;
    const done = new Promise<void>((resolve, reject) => {
      http
        .get({ host: 'x', path: '/api/v1/big', agent: edgeAgent(f, 'edge-1') }, (res) => {
          res.pause(); // the edge reads nothing for now
          resume = () => res.resume();
          res.on('data', (c: Buffer) => (received += c.length));
          res.on('end', () => resolve());
        })
        .on('error', reject);
    });
    await waitFor('the apiserver blocked by the paused edge', () => blocked && resume !== undefined);
    // Let the chain fill up: wait until the apiserver has written nothing more for 40 polls in a row
    // (or has written everything, which only a forwarder buffering without bound lets it do).
    let last = -1;
    let still = 0;
    await waitFor('the apiserver stopped writing', () => {
      still = written === last ? still + 1 : 0;
      last = written;
      return still >= 40 || written >= total;
    });
    expect(written).toBeLessThan(total / 2);
    resume();
    await done;
    expect(received).toBe(total);
    f.close();
  });

  test('streams to any other destination are refused with a reason', async () => {
    const { f } = forwarder();
    const e = await f.open('edge-1', '10.0.0.1', 443).catch((x: unknown) => x);
    expect(isTetherError(e, ErrorCode.TunnelDenied)).toBe(true);
    expect(String((e as Error).message)).toContain('only to kube-apiserver:0');
    const e2 = await f.open('edge-1', 'kube-apiserver', 6443).catch((x: unknown) => x);
    expect(isTetherError(e2, ErrorCode.TunnelDenied)).toBe(true);
    const e3 = await f.open('Bad\r\nName', 'kube-apiserver', 0).catch((x: unknown) => x);
    expect(isTetherError(e3, ErrorCode.TunnelDenied)).toBe(true);
    f.close();
  });

  test('malformed HTTP on the stream gets a 400 Status, and the forwarder keeps serving', async () => {
    const { f, codes } = forwarder();
    const d = await f.open('edge-1', 'kube-apiserver', 0);
    const chunks: Buffer[] = [];
    d.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise<void>((r) => d.once('end', () => r()));
    d.write('NOT HTTP AT ALL\r\n\x00\x01\r\n\r\n');
    await ended;
    const text = Buffer.concat(chunks).toString();
    expect(text.startsWith('HTTP/1.1 400 ')).toBe(true);
    const status = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
    expect(status).toMatchObject({ kind: 'Status', status: 'Failure', code: 400, reason: 'BadRequest' });
    expect(codes).toEqual([400]);
    const a = await request(edgeAgent(f, 'edge-1'), '/version');
    expect(a.status).toBe(200);
    f.close();
  });

  test('kube-apiserver unreachable: 503 Status', async () => {
    const dead: ApiUpstream = { ...upstream, server: new URL('https://127.0.0.1:1/') };
    const { f, codes } = forwarder({ upstream: dead });
    const a = await request(edgeAgent(f, 'edge-1'), '/api/v1/nodes/edge-1');
    expect(a.status).toBe(503);
    expect(JSON.parse(a.body)).toMatchObject({ kind: 'Status', code: 503, reason: 'ServiceUnavailable' });
    expect(codes).toEqual([503]);
    f.close();
  });

  test('an upgrade (exec) is forwarded as the node: 101, then bytes both ways', async () => {
    const { f, codes } = forwarder();
    const d = await f.open('edge-1', 'kube-apiserver', 0);
    let text = '';
    d.on('data', (c: Buffer) => (text += c));
    d.write('POST /api/v1/namespaces/default/pods/p/exec?command=sh HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Remote-User: admin\r\n\r\n');
    await waitFor('101 head', () => text.includes('\r\n\r\n'));
    expect(text.startsWith('HTTP/1.1 101 ')).toBe(true);
    expect(text.toLowerCase()).toContain('x-stream-protocol-version: v4.channel.k8s.io');
    d.write('ping');
    await waitFor('echo through the upgraded stream', () => text.includes('echo:ping'));
    const u = upgrades[upgrades.length - 1]!;
    expect(u.headers['impersonate-user']).toBe('system:node:edge-1');
    expect(u.headers['x-remote-user']).toBeUndefined();
    expect(u.headers.upgrade).toBe('SPDY/3.1');
    expect(codes).toEqual([101]);
    d.destroy();
    f.close();
  });

  test('a refused upgrade passes the apiserver answer on and closes the stream', async () => {
    const { f } = forwarder();
    const d = await f.open('edge-1', 'kube-apiserver', 0);
    let text = '';
    d.on('data', (c: Buffer) => (text += c));
    const ended = new Promise<void>((r) => d.once('end', () => r()));
    d.write('POST /refuse HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n');
    await ended;
    expect(text.startsWith('HTTP/1.1 403 ')).toBe(true);
    expect(text.endsWith('{"kind":"Status","code":403}')).toBe(true);
    f.close();
  });

  test('over a real tunnel session: the agent opens a compressed api stream and the hub forwards it', async () => {
    const { f } = forwarder();
    const [ta, th] = createTransportPair();
    const log = createMemoryLogger('info');
    const hub = createTunnelSession({ transport: th, role: 'hub', log, onOpen: (host, port, info) => f.open('edge-9', host, port, info) });
    const agent = createTunnelSession({ transport: ta, role: 'agent', log, hello: { node: 'edge-9', addresses: [], version: 'test' } as never });
    await agent.ready;
    const a = await request(edgeAgentOver(() => agent.open('kube-apiserver', 0, { compress: true })), '/api/v1/nodes/edge-9');
    expect(a.status).toBe(200);
    expect(last().headers['impersonate-user']).toBe('system:node:edge-9');
    expect(hub.stats().apiRawOut).toBeGreaterThan(0);
    expect(hub.stats().apiWireOut).toBeGreaterThan(0);
    const refused = await agent.open('198.18.0.7', 22).catch((e: unknown) => e);
    expect(String((refused as Error).message)).toContain('only to kube-apiserver:0');
    agent.close('done');
    await hub.closed;
    f.close();
  });
});

function edgeAgentOver(open: () => Promise<Duplex>): http.Agent {
  const agent = new http.Agent({ keepAlive: false });
  (agent as unknown as { createConnection: (o: unknown, cb: (e: Error | null, s?: Duplex) => void) => void }).createConnection = (_o, cb) => {
    open().then(
      (d) => {
        Object.assign(d, { setKeepAlive: () => d, setNoDelay: () => d, setTimeout: () => d, ref: () => d, unref: () => d });
        cb(null, d);
      },
      (e) => cb(e),
    );
  };
  return agent;
}
