/**
 * The proxy's front door against a fake apiserver (a unit test of this module; the end-to-end
 * claims are in test/local-auth.e2e.test.ts on the real control plane). The fake apiserver is an
 * mTLS server that answers who it saw: the node (its client certificate), a bearer token, or
 * nobody; so each test shows which identity a local request went upstream with.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { Agent as HttpsAgent } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { createMemoryLogger } from '../../shared/log.ts';
import { Registry } from '../../shared/metrics.ts';
import type { RequestInfo } from '../../shared/kube/index.ts';
import { type LocalCa, createLocalCa, localCaFrom } from '../certs/local-ca.ts';
import { createListener, type Listener } from './listener.ts';
import { createOfflineTokens } from '../auth/offline-tokens.ts';
import { type ProxyOptions, type ProxyServer, type Target, createProxyServer } from './server.ts';
import type { Cache } from '../cache/contract.ts';

const mkCa = (cn: string): LocalCa => {
  const c = createLocalCa(cn);
  return localCaFrom('mem', c.certPem, c.keyPem);
};
const clusterCa = mkCa('cluster CA');
const localCa = mkCa('local CA');
const foreignCa = mkCa('someone else');
const nodeCert = clusterCa.issue('system:node:edge-1', 'client');
const kubeletCert = localCa.issue('kubelet', 'client');
const operatorCert = localCa.issue('operator', 'client');
const foreignKubelet = foreignCa.issue('kubelet', 'client');
const serving = localCa.issue('tether-edge', 'server', { hosts: ['127.0.0.1'] });

interface Seen {
  method: string;
  url: string;
  user: string;
}
let apiserver: Listener;
let apiUrl: URL;
const seen: Seen[] = [];
let proxy: ProxyServer | undefined;
const taps: { component: string; cached: boolean; path: string }[] = [];

beforeAll(async () => {
  const apiServing = clusterCa.issue('apiserver', 'server', { hosts: ['127.0.0.1'] });
  apiserver = createListener(
    (req, res) => {
      const sock = req.socket as import('node:tls').TLSSocket;
      const cn = sock.authorized ? String(sock.getPeerCertificate().subject?.CN) : undefined;
      const user = req.headers.authorization ? `token:${req.headers.authorization}` : (cn ?? 'anonymous');
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', user });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Seen', user, url: req.url, bytes: Buffer.concat(chunks).length }));
      });
    },
    { caPem: clusterCa.certPem, certPem: apiServing.certPem, keyPem: apiServing.keyPem },
  );
  // Upgrades (exec, port-forward): answer 101 with who was seen, then echo.
  apiserver.http.on('upgrade', (req, socket) => {
    const sock = req.socket as import('node:tls').TLSSocket;
    const user = req.headers.authorization ? 'token' : sock.authorized ? String(sock.getPeerCertificate().subject?.CN) : 'anonymous';
    seen.push({ method: req.method ?? '', url: req.url ?? '', user });
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\nX-User: ${user}\r\n\r\n`);
    socket.pipe(socket);
  });
  await new Promise<void>((r) => apiserver.socketServer.listen(0, '127.0.0.1', () => r()));
  apiUrl = new URL(`https://127.0.0.1:${(apiserver.socketServer.address() as { port: number }).port}`);
});
afterAll(() => apiserver.close());
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  seen.length = 0;
  taps.length = 0;
});

const target = (): Target => ({
  url: apiUrl,
  agent: new HttpsAgent({ ca: clusterCa.certPem, cert: nodeCert.certPem, key: nodeCert.keyPem }),
  bearerAgent: new HttpsAgent({ ca: clusterCa.certPem }),
  tlsOptions: (withIdentity) => (withIdentity ? { ca: clusterCa.certPem, cert: nodeCert.certPem, key: nodeCert.keyPem } : { ca: clusterCa.certPem }),
});

async function start(over: Partial<ProxyOptions> & { online?: boolean } = {}): Promise<ProxyServer> {
  const t = target();
  const online = over.online ?? true;
  const cache: Cache = {
    tapFor: (info: RequestInfo, _a, cached) => {
      taps.push({ component: info.component, cached, path: info.path });
      return undefined;
    },
    read: () => ({ status: 200, body: { kind: 'FromCache' } }),
    watch: () => {},
    write: () => ({ status: 200, body: { kind: 'WrittenOffline' } }),
    document: () => undefined,
  };
  proxy = await createProxyServer({
    listen: '127.0.0.1:0',
    upstreams: { pick: () => (online ? t : undefined), reportFailure: () => {}, track: () => () => {} },
    cache,
    isCachedComponent: (c) => ['kubelet', 'kube-proxy', 'coredns'].includes(c),
    log: createMemoryLogger('error'),
    requests: new Registry().counter('t', 't'),
    clientAuth: { mode: 'tls', tls: { caPem: localCa.certPem, certPem: serving.certPem, keyPem: serving.keyPem } },
    ...over,
  });
  return proxy;
}

type Creds = { certPem: string; keyPem: string } | undefined;
async function call(path: string, o: { creds?: Creds; headers?: Record<string, string>; method?: string; body?: string } = {}) {
  const res = await fetch(proxy!.url + path, {
    method: o.method ?? 'GET',
    headers: o.headers,
    body: o.body,
    tls: { ca: localCa.certPem, ...(o.creds ? { cert: o.creds.certPem, key: o.creds.keyPem } : {}) },
  } as RequestInit);
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body };
}

const podsOnNode = '/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1';
const kubeletUA = { 'user-agent': 'kubelet/v1.34.4 (linux/amd64) kubernetes/abc' };

describe('local clients authenticate', () => {
  test('the kubelet certificate lends the node identity, and its CN makes it the cached kubelet', async () => {
    await start();
    const r = await call(podsOnNode, { creds: kubeletCert, headers: { 'user-agent': 'curl/8' } });
    expect(r.status).toBe(200);
    expect(r.body.user).toBe('system:node:edge-1');
    expect(taps).toEqual([{ component: 'kubelet', cached: true, path: '/api/v1/pods' }]);
  });

  test('without a certificate, a User-Agent of kubelet gets 401 with a Status, and nothing goes upstream or is cached', async () => {
    await start();
    const r = await call(podsOnNode, { headers: kubeletUA });
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({ kind: 'Status', reason: 'Unauthorized', code: 401 });
    expect(r.body.message).toContain('client certificate');
    expect(seen).toEqual([]);
    expect(taps).toEqual([]);
  });

  test('a kubelet certificate from another CA is not the kubelet', async () => {
    await start();
    const r = await call(podsOnNode, { creds: foreignKubelet, headers: kubeletUA }).catch((e) => ({ status: 0, body: String(e) }));
    // Either the handshake or the request is refused; it never goes upstream.
    expect(r.status === 401 || r.status === 0).toBe(true);
    expect(seen).toEqual([]);
  });

  test('a bearer token passes through as the caller, and cannot claim the kubelet component', async () => {
    await start();
    const r = await call(podsOnNode, { headers: { ...kubeletUA, authorization: 'Bearer pod-token' } });
    expect(r.status).toBe(200);
    expect(r.body.user).toBe('token:Bearer pod-token');
    expect(taps).toEqual([{ component: '', cached: false, path: '/api/v1/pods' }]);
    const dns = await call('/api/v1/services', { headers: { 'user-agent': 'coredns/1.11', authorization: 'Bearer dns-token' } });
    expect(dns.body.user).toBe('token:Bearer dns-token');
    expect(taps[1]).toEqual({ component: 'coredns', cached: true, path: '/api/v1/services' });
  });

  test('certificate signing requests never go out with the lent identity', async () => {
    await start();
    const csr = JSON.stringify({ apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', metadata: { name: 'x' } });
    const path = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
    const r = await call(path, { creds: kubeletCert, method: 'POST', body: csr, headers: { 'content-type': 'application/json' } });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ kind: 'Status', reason: 'Forbidden', code: 403 });
    expect(seen).toEqual([]);
    // Reading them is fine, and a bearer token's CSR is the token holder's business.
    expect((await call(path, { creds: kubeletCert })).body.user).toBe('system:node:edge-1');
    const own = await call(path, { method: 'POST', body: csr, headers: { 'content-type': 'application/json', authorization: 'Bearer bootstrap' } });
    expect(own.body.user).toBe('token:Bearer bootstrap');
  });

  test('--insecure-plain-http lends the node identity to bare loopback requests, by User-Agent, as before', async () => {
    await start({ clientAuth: { mode: 'insecure-plain-http' } });
    expect(proxy!.url.startsWith('http://')).toBe(true);
    const res = await fetch(proxy!.url + podsOnNode, { headers: kubeletUA });
    expect(((await res.json()) as { user: string }).user).toBe('system:node:edge-1');
    expect(taps).toEqual([{ component: 'kubelet', cached: true, path: '/api/v1/pods' }]);
  });
});

describe('upgrades (exec, attach, port-forward) authenticate the same way', () => {
  const upgrade = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n`;
  const exec = '/api/v1/namespaces/default/pods/p/exec?command=sh';

  test('with the kubelet certificate the upgrade goes upstream as the node, and bytes flow both ways', async () => {
    await start();
    const url = new URL(proxy!.url);
    const got = await new Promise<string>((resolve, reject) => {
      const s = tlsConnect({ host: url.hostname, port: Number(url.port), ca: localCa.certPem, cert: kubeletCert.certPem, key: kubeletCert.keyPem });
      let data = '';
      s.on('secureConnect', () => s.write(upgrade(exec)));
      s.on('data', (d: Buffer) => {
        data += String(d);
        if (data.includes('\r\n\r\n') && !data.includes('ping')) s.write('ping');
        if (data.endsWith('ping')) {
          resolve(data);
          s.destroy();
        }
      });
      s.on('error', reject);
    });
    expect(got).toStartWith('HTTP/1.1 101');
    expect(got).toContain('X-User: system:node:edge-1');
    expect(got.endsWith('ping')).toBe(true);
  });

  test('without a certificate it gets 401 with a Status; a dot segment 400; neither goes upstream', async () => {
    await start();
    const bare = await rawRequest(upgrade(exec), undefined);
    expect(bare.head).toStartWith('HTTP/1.1 401');
    expect(JSON.parse(bare.body)).toMatchObject({ kind: 'Status', code: 401 });
    const dots = await rawRequest(upgrade('/api/v1/namespaces/default/pods/p/../q/exec'), kubeletCert);
    expect(dots.head).toStartWith('HTTP/1.1 400');
    expect(JSON.parse(dots.body)).toMatchObject({ kind: 'Status', code: 400 });
    expect(seen).toEqual([]);
  });
});

describe('the path decided on is the path forwarded', () => {
  test('dot segments are refused with a 400 Status and never forwarded', async () => {
    await start();
    for (const p of ['/api/v1/namespaces/default/pods/../secrets', '/api/v1/namespaces/default/pods/%2e%2e/secrets', '/api/v1/namespaces/default/pods%2F..%2Fsecrets']) {
      // fetch would resolve "..": send the bytes as they are.
      const raw = await rawRequest(`GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, kubeletCert);
      expect(raw.head).toStartWith('HTTP/1.1 400');
      expect(JSON.parse(raw.body)).toMatchObject({ kind: 'Status', code: 400 });
    }
    expect(seen).toEqual([]);
  });

  test('what goes upstream is the target that was parsed', async () => {
    await start();
    await call('/api/v1/namespaces/default/configmaps/c?resourceVersion=0', { creds: kubeletCert });
    expect(seen.map((s) => s.url)).toEqual(['/api/v1/namespaces/default/configmaps/c?resourceVersion=0']);
  });
});

describe('malformed HTTP and big bodies get a Status', () => {
  test('a malformed request line gets 400 with a Status body', async () => {
    await start();
    const raw = await rawRequest('GET /api\x01/v1 HTTP/1.1\r\nHost: x\r\n\r\n', kubeletCert);
    expect(raw.head).toStartWith('HTTP/1.1 400');
    expect(JSON.parse(raw.body)).toMatchObject({ kind: 'Status', reason: 'BadRequest', code: 400 });
  });

  test('a body over the limit gets 413 with a Status, declared or streamed', async () => {
    await start();
    const big = 'x'.repeat(3 * 1024 * 1024 + 10);
    const r = await call('/api/v1/namespaces/default/configmaps', { creds: kubeletCert, method: 'POST', body: big, headers: { 'content-type': 'application/json' } });
    expect(r.status).toBe(413);
    expect(r.body).toMatchObject({ kind: 'Status', reason: 'RequestEntityTooLarge', code: 413 });
    const chunked = await rawRequest(
      `POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `${(4 * 1024 * 1024).toString(16)}\r\n${'y'.repeat(4 * 1024 * 1024)}\r\n0\r\n\r\n`,
      kubeletCert,
    );
    expect(chunked.head).toStartWith('HTTP/1.1 413');
    expect(JSON.parse(chunked.body)).toMatchObject({ kind: 'Status', code: 413 });
    expect(seen).toEqual([]);
  });
});

describe('cacheSecrets: false', () => {
  test('Secrets are not recorded online and not answered offline', async () => {
    await start({ cacheSecrets: false });
    await call('/api/v1/namespaces/default/secrets/s', { creds: kubeletCert });
    await call('/api/v1/namespaces/default/configmaps/c', { creds: kubeletCert });
    expect(taps).toEqual([
      { component: 'kubelet', cached: false, path: '/api/v1/namespaces/default/secrets/s' },
      { component: 'kubelet', cached: true, path: '/api/v1/namespaces/default/configmaps/c' },
    ]);
    await proxy!.close();
    await start({ cacheSecrets: false, online: false });
    const off = await call('/api/v1/namespaces/default/secrets/s', { creds: kubeletCert });
    expect(off.status).toBe(503);
    expect(off.body.message).toContain('Secrets are not kept on this node');
    expect((await call('/api/v1/namespaces/default/configmaps/c', { creds: kubeletCert })).body.kind).toBe('FromCache');
  });

  test('by default Secrets are cached like the rest', async () => {
    await start();
    await call('/api/v1/namespaces/default/secrets/s', { creds: kubeletCert });
    expect(taps).toEqual([{ component: 'kubelet', cached: true, path: '/api/v1/namespaces/default/secrets/s' }]);
  });
});

describe('offline TokenRequests', () => {
  const TOKEN = '/api/v1/namespaces/default/serviceaccounts/default/token';
  test('only the kubelet gets the answer kept for its TokenRequest; another local client or a bearer token never does', async () => {
    const asked: string[] = [];
    const kept = { kind: 'TokenRequest', status: { token: 'issued-online' } };
    await start({
      online: false,
      cache: {
        tapFor: () => undefined,
        read: () => ({ status: 200, body: {} }),
        watch: () => {},
        write: () => ({ status: 503, body: { kind: 'Status', code: 503 } }),
        document: () => undefined,
        token: (info, body) => (asked.push(`${info.component} ${body.toString()}`), { status: 201, body: kept }),
      },
    });
    const post = (o: { creds?: Creds; headers?: Record<string, string> }) => call(TOKEN, { method: 'POST', body: 'the-request', ...o, headers: { 'content-type': 'application/json', ...o.headers } });
    const kubelet = await post({ creds: kubeletCert });
    expect(kubelet.status).toBe(201);
    expect(kubelet.body).toEqual(kept);
    expect(asked).toEqual(['kubelet the-request']);
    expect((await post({ creds: operatorCert })).status).toBe(503);
    expect((await post({ headers: { authorization: 'Bearer some-pod-token' } })).status).not.toBe(201);
    expect(asked).toEqual(['kubelet the-request']);
  });
});

describe('offline bearer tokens (issue 10 item 5)', () => {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const podToken = `${b64({ alg: 'RS256' })}.${b64({ sub: 'system:serviceaccount:shop:web', exp: Math.floor(Date.now() / 1000) + 3600, 'kubernetes.io': { namespace: 'shop', pod: { name: 'web-1', uid: 'u-1' } } })}.sig`;
  const coredns = { 'user-agent': 'coredns/1.11' };

  test('a made-up token gets 401 offline and nothing from the store', async () => {
    await start({ online: false, offlineTokens: createOfflineTokens(), podExists: () => true });
    const r = await call('/api/v1/namespaces/shop/secrets/db', { headers: { authorization: 'Bearer made-up', ...coredns } });
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({ kind: 'Status', reason: 'Unauthorized' });
    expect(r.body.message).toContain('was not accepted by the apiserver while online');
  });

  test('a token is answered offline only what the apiserver showed it online, while its pod exists', async () => {
    const tokens = createOfflineTokens();
    let podThere = true;
    const auth = { authorization: `Bearer ${podToken}`, ...coredns };
    await start({ offlineTokens: tokens, podExists: () => podThere });
    expect((await call('/api/v1/namespaces/shop/configmaps', { headers: auth })).body.user).toBe(`token:Bearer ${podToken}`);
    await proxy!.close();
    await start({ online: false, offlineTokens: tokens, podExists: () => podThere });
    expect((await call('/api/v1/namespaces/shop/configmaps', { headers: auth })).body.kind).toBe('FromCache');
    expect((await call('/api/v1/namespaces/shop/configmaps/settings', { headers: auth })).body.kind).toBe('FromCache');
    const other = await call('/api/v1/namespaces/shop/secrets/db', { headers: auth });
    expect(other.status).toBe(403);
    expect(other.body).toMatchObject({ kind: 'Status', reason: 'Forbidden' });
    // The node's own clients are not affected by what tokens saw.
    expect((await call('/api/v1/namespaces/shop/secrets/db', { creds: kubeletCert })).body.kind).toBe('FromCache');
    podThere = false;
    const gone = await call('/api/v1/namespaces/shop/configmaps', { headers: auth });
    expect(gone.status).toBe(401);
    expect(gone.body.message).toContain('no longer exists');
  });
});

/** Sends raw bytes over TLS with a client certificate; resolves with the response head and body. */
function rawRequest(bytes: string, creds: Creds): Promise<{ head: string; body: string }> {
  const url = new URL(proxy!.url);
  return new Promise((resolve, reject) => {
    const s = url.protocol === 'https:'
      ? tlsConnect({ host: url.hostname, port: Number(url.port), ca: localCa.certPem, ...(creds ? { cert: creds.certPem, key: creds.keyPem } : {}) })
      : netConnect({ host: url.hostname, port: Number(url.port) });
    let data = '';
    s.on(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => s.write(bytes));
    s.on('data', (d: Buffer) => (data += String(d)));
    s.on('error', (e: Error) => (data ? undefined : reject(e)));
    s.on('close', () => {
      const i = data.indexOf('\r\n\r\n');
      resolve({ head: data.slice(0, i), body: data.slice(i + 4) });
    });
  });
}
