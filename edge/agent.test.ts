/**
 * The agent's behaviour under bad input, against a fake apiserver (a unit test of this module:
 * end-to-end claims are in test/edge-agent.e2e.test.ts against the real control plane).
 * Malformed requests, an upstream answering garbage, a corrupted store file and a full disk each
 * leave the agent serving, with the problem reported in /readyz and /status.
 */
import { afterEach, describe, expect, test } from 'bun:test';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { type Server, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { gunzipSync, gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { createMemoryLogger } from '../shared/log.ts';
import { type RunningAgent, startAgent } from './agent.ts';
import { edgeConfigSchema } from './config.ts';
import { buildInfo } from '../shared/version.ts';
import { proxyAnswers } from './upgrade/health.ts';
import { EDGE_VERSION_ANNOTATION, UPGRADE_STATUS_ANNOTATION, UPGRADE_TARGET_ANNOTATION } from '../shared/upgrade/contract.ts';

let upstream: Server | undefined;
let agent: RunningAgent | undefined;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  await agent?.close();
  agent = undefined;
  await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
  upstream = undefined;
  for (const c of cleanups.splice(0)) c();
});

/** A fake apiserver: /readyz is ok; `routes` answer the rest. */
async function fakeApiserver(routes: Record<string, (url: URL, headers: Record<string, string | string[] | undefined>) => { status?: number; body: string | Buffer; type?: string; encoding?: string }>): Promise<string> {
  upstream = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/readyz') return void res.end('ok');
    const route = routes[url.pathname];
    if (!route) {
      res.writeHead(404, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
    }
    const a = route(url, req.headers);
    res.writeHead(a.status ?? 200, { 'content-type': a.type ?? 'application/json', ...(a.encoding ? { 'content-encoding': a.encoding } : {}) });
    res.end(a.body);
  });
  await new Promise<void>((r) => upstream!.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
}

async function start(server: string, dataDir = mkdtempSync(join(tmpdir(), 'tether-agent-')), listen = '127.0.0.1:0', extra: Record<string, unknown> = {}) {
  const config = edgeConfigSchema.parse({ servers: [server], listen, adminListen: '127.0.0.1:0', dataDir, insecurePlainHttp: true, ...extra });
  agent = await startAgent({ config, nodeName: 'edge-test', log: createMemoryLogger('error'), reconnectJitterMs: 0 });
  const proxy = `http://127.0.0.1:${agent.proxy.address.split(':').pop()}`;
  const admin = `http://${agent.admin.address}`;
  // The first probe decides whether the upstream is healthy.
  for (let i = 0; i < 100 && !agent.status().online; i++) await new Promise((r) => setTimeout(r, 20));
  return { proxy, admin, dataDir };
}

const kubelet = { 'user-agent': 'kubelet/v1.34.4 (linux/amd64) kubernetes/abc' };

describe('malformed requests', () => {
  const MALFORMED = ['/api/v1/pods?limit=abc', '/api/v1/pods?labelSelector=a%20in%20(', '/api/v1/pods?fieldSelector=spec.bogus%3Dx', '/api/v1/namespaces/a/pods?resourceVersionMatch=Sometimes&resourceVersion=1', '/api/v1/pods?x=%zz'];

  test('online, they go upstream unchanged and the apiserver answers them', async () => {
    const seen: string[] = [];
    const answer = (u: URL) => {
      seen.push(u.pathname + u.search);
      return { status: 400, body: JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'BadRequest', code: 400, message: 'from upstream' }) };
    };
    const { proxy } = await start(await fakeApiserver({ '/api/v1/pods': answer, '/api/v1/namespaces/a/pods': answer }));
    for (const path of MALFORMED) {
      const r = await fetch(proxy + path, { headers: kubelet });
      expect(r.status).toBe(400);
      expect(((await r.json()) as { message: string }).message).toBe('from upstream');
    }
    expect(seen).toEqual(MALFORMED);
  });

  test('offline, they get a Kubernetes Status (400 or 422) from the agent, and the agent keeps serving', async () => {
    const server = await fakeApiserver({ '/version': () => ({ body: '{"gitVersion":"v1.34.4"}' }) });
    const { proxy } = await start(server);
    await new Promise<void>((r) => upstream!.close(() => r()));
    upstream!.closeAllConnections?.();
    upstream = undefined;
    // The first request finds the upstream gone (connection refused: declared dead at once).
    for (const path of MALFORMED) {
      const r = await fetch(proxy + path, { headers: kubelet });
      expect([400, 422]).toContain(r.status);
      const body = (await r.json()) as { kind: string; reason: string; message: string };
      expect(body.kind).toBe('Status');
      expect(['BadRequest', 'Invalid']).toContain(body.reason);
      expect(body.message.length).toBeGreaterThan(0);
    }
    expect(agent!.status().online).toBe(false);
    expect((await fetch(`${proxy}/api/v1/pods`, { headers: kubelet })).headers.get('content-type')).toContain('application/json');
  });
});

describe('identity', () => {
  test("only a loopback listener lends the node's identity to requests without credentials", async () => {
    const seen: string[] = [];
    const server = await fakeApiserver({
      '/version': (_u, h) => {
        // The agent's own discovery refresh (user agent tether-edge) is not a client request.
        if (!String(h['user-agent']).startsWith('tether-edge')) seen.push(String(h.authorization ?? 'none'));
        return { body: '{"gitVersion":"v1.34.4"}' };
      },
    });
    const { proxy } = await start(server, undefined, '0.0.0.0:0');
    const anonymous = await fetch(`${proxy}/version`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { reason: string }).reason).toBe('Unauthorized');
    const withToken = await fetch(`${proxy}/version`, { headers: { authorization: 'Bearer pod-token' } });
    expect(withToken.status).toBe(200);
    expect(seen).toEqual(['Bearer pod-token']); // passed through unchanged; the anonymous request never left
  });
});

describe('compression', () => {
  const bigList = JSON.stringify({
    kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '9' },
    items: Array.from({ length: 200 }, (_, i) => ({ metadata: { name: `p-${i}`, namespace: 'd', resourceVersion: '9', labels: { app: 'same-for-all' } }, spec: { nodeName: 'edge-test' } })),
  });
  const asked: string[] = [];
  const gzipping = () =>
    fakeApiserver({
      '/api/v1/pods': (_u, h) => {
        asked.push(String(h['accept-encoding'] ?? ''));
        return String(h['accept-encoding'] ?? '').includes('gzip') ? { body: gzipSync(bigList), encoding: 'gzip' } : { body: bigList };
      },
    });
  /** A raw GET that does not decode, to see what the proxy put on the wire to the client. */
  const rawGet = (url: string, headers: Record<string, string>) =>
    new Promise<{ encoding?: string; body: Buffer }>((resolve, reject) => {
      const req = request(url, { headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ encoding: res.headers['content-encoding'], body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end();
    });
  const metricValue = async (admin: string, series: string) => {
    const text = await (await fetch(`${admin}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(series + ' '));
    return Number(line?.split(' ').pop() ?? NaN);
  };

  test('a recorded answer is asked for gzip and decoded for the cache; the gzip-accepting kubelet gets a correct answer', async () => {
    asked.length = 0;
    const { proxy, admin } = await start(await gzipping());
    const r = await fetch(`${proxy}/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-test`, { headers: { ...kubelet, 'accept-encoding': 'gzip' } });
    expect(((await r.json()) as { items: unknown[] }).items).toHaveLength(200);
    expect(asked).toEqual(['gzip']);
    await until(() => Promise.resolve(agent!.status().store.objects['v1/pods'] ?? 0), (n) => n === 200);
    // The link carried the compressed answer: what the agent counts is far below the JSON's size.
    const received = await metricValue(admin, 'tether_upstream_bytes_total{direction="received",kind="request"}');
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(bigList.length / 4);
    expect(agent!.status().link?.total.received.request).toBe(received);
  });

  test('a client that did not ask for gzip gets the decoded answer though the upstream was asked for gzip', async () => {
    asked.length = 0;
    const { proxy } = await start(await gzipping());
    const r = await rawGet(`${proxy}/api/v1/pods`, { 'user-agent': 'curl/8.5' });
    expect(asked).toEqual(['gzip']);
    expect(r.encoding).toBeUndefined();
    expect(JSON.parse(r.body.toString('utf8')).items).toHaveLength(200);
  });

  test('an uncached client that asked for gzip gets the gzip answer passed through', async () => {
    asked.length = 0;
    const { proxy } = await start(await gzipping());
    const r = await rawGet(`${proxy}/api/v1/pods`, { 'user-agent': 'curl/8.5', 'accept-encoding': 'gzip' });
    expect(r.encoding).toBe('gzip');
    expect(r.body.length).toBeLessThan(bigList.length / 4);
    expect(JSON.parse(gunzipSync(r.body).toString('utf8')).items).toHaveLength(200);
  });
});

describe('an upstream answering garbage', () => {
  test('is passed through unchanged, not cached, and reported in /readyz and status', async () => {
    const garbage = '{"kind":"PodList","items":[{"metadata": garbage';
    const server = await fakeApiserver({ '/api/v1/pods': () => ({ body: garbage }), '/version': () => ({ body: '{"gitVersion":"v1.34.4"}' }) });
    const { proxy, admin } = await start(server);
    const r = await fetch(`${proxy}/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-test`, { headers: kubelet });
    expect(await r.text()).toBe(garbage);
    const readyz = await until(() => fetch(`${admin}/readyz`), (x) => x.status === 503);
    expect(await readyz.text()).toContain('[-]upstream-data failed: 1 upstream answer(s) could not be decoded');
    const st = agent!.status();
    expect(st.problems[0]).toContain('could not be decoded, last for list v1/pods');
    expect(st.store.objects).toEqual({});
    expect((await fetch(`${proxy}/version`)).status).toBe(200);
    expect(await (await fetch(`${admin}/metrics`)).text()).toContain('tether_upstream_decode_errors_total{what="list"} 1');
  });
});

describe('a corrupted store file', () => {
  test('leaves the agent serving online pass-through, with the store reported failed', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tether-agent-'));
    writeFileSync(join(dataDir, 'tether.db'), Buffer.alloc(8192, 0x5a));
    const server = await fakeApiserver({ '/api/v1/namespaces/default/pods/web': () => ({ body: '{"kind":"Pod","metadata":{"name":"web","namespace":"default","resourceVersion":"5"}}' }) });
    const { proxy, admin } = await start(server, dataDir);
    const r = await fetch(`${proxy}/api/v1/namespaces/default/pods/web`, { headers: kubelet });
    expect(((await r.json()) as { metadata: { name: string } }).metadata.name).toBe('web');
    const readyz = await fetch(`${admin}/readyz`);
    expect(readyz.status).toBe(503);
    expect(await readyz.text()).toContain('[-]store failed: open store: read header:');
    const st = agent!.status();
    expect(st.store.ok).toBe(false);
    expect(st.store.problem).toContain('is not a readable Tether store');
  });
});

describe('little free space', () => {
  test('fails the store check of /readyz before SQLite runs out of disk', async () => {
    const server = await fakeApiserver({});
    const { admin } = await start(server, undefined, undefined, { storeMinFreeBytes: Number.MAX_SAFE_INTEGER });
    const readyz = await fetch(`${admin}/readyz`);
    expect(readyz.status).toBe(503);
    expect(await readyz.text()).toMatch(/\[-\]store failed: .*MiB free on the filesystem/);
    expect(agent!.status().store.ok).toBe(false);
  });
});

const isRoot = process.getuid?.() === 0;
describe.skipIf(!isRoot)('a full disk', () => {
  test('keeps answering online, reports the store failing, and recovers when space returns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
    cleanups.push(() => execFileSync('umount', ['-l', dir]));
    const dataDir = join(dir, 'store');
    mkdirSync(dataDir);
    const pods = (n: number) =>
      JSON.stringify({
        kind: 'PodList',
        apiVersion: 'v1',
        metadata: { resourceVersion: '100' },
        items: Array.from({ length: n }, (_, i) => ({ metadata: { name: `p${i}`, namespace: 'default', resourceVersion: String(i + 1), annotations: { pad: 'x'.repeat(2000) } }, spec: { nodeName: 'edge-test' } })),
      });
    let size = 5;
    const server = await fakeApiserver({ '/api/v1/pods': () => ({ body: pods(size) }) });
    // A 1 MiB disk is always below the default free-space floor: here only write failures count.
    const { proxy, admin } = await start(server, dataDir, undefined, { storeMinFreeBytes: 0 });
    const list = async () => fetch(`${proxy}/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-test`, { headers: kubelet }).then((r) => r.json() as Promise<{ items: unknown[] }>);
    expect((await list()).items).toHaveLength(5);
    await until(() => Promise.resolve(agent!.status().store.objects['v1/pods'] ?? 0), (n) => n === 5);
    // Fill the disk, then ask for a list too big to store.
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${join(dir, 'filler')}`, 'bs=64k'], { stdio: 'ignore' });
    } catch {
      // dd stops when the disk is full
    }
    size = 600;
    expect((await list()).items).toHaveLength(600); // the client still gets its answer
    const readyz = await until(() => fetch(`${admin}/readyz`), (x) => x.status === 503);
    expect(await readyz.text()).toMatch(/\[-\]store failed: .*(full|disk)/i);
    expect(agent!.status().store.ok).toBe(false);
    // Space returns: the next recording succeeds and the report clears.
    execFileSync('rm', ['-f', join(dir, 'filler')]);
    size = 6;
    expect((await list()).items).toHaveLength(6);
    await until(() => fetch(`${admin}/readyz`), (x) => x.status === 200);
    expect(agent!.status().store.objects['v1/pods']).toBe(6);
  });
});

async function until<T>(f: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('over-the-air upgrades', () => {
  const TARGET = JSON.stringify({ upgrade: 'fleet', uid: 'u1', version: '99.0.0', baseURL: 'https://releases.test/tether/99.0.0' });
  const theNode = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'edge-test', resourceVersion: '5', annotations: { [UPGRADE_TARGET_ANNOTATION]: TARGET } } };

  /** An apiserver with the agent's Node: LIST and WATCH of nodes, and PATCHes of it (recorded). */
  async function nodeApiserver() {
    const patches: { ua: string; type: string; body: { metadata: { annotations: Record<string, string> } } }[] = [];
    const watches: { ua: string; url: string }[] = [];
    upstream = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/readyz') return void res.end('ok');
      const json = (o: unknown) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(o));
      };
      if (url.pathname === '/api/v1/nodes' && url.searchParams.get('watch') === 'true') {
        watches.push({ ua: String(req.headers['user-agent']), url: url.pathname + url.search });
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.write(`${JSON.stringify({ type: 'ADDED', object: theNode })}\n`);
      }
      if (url.pathname === '/api/v1/nodes') return json({ kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: '5' }, items: [theNode] });
      if (url.pathname === '/api/v1/nodes/edge-test' && req.method === 'PATCH') {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          patches.push({ ua: String(req.headers['user-agent']), type: String(req.headers['content-type']), body: JSON.parse(Buffer.concat(chunks).toString()) });
          json(theNode);
        });
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
    });
    await new Promise<void>((r) => upstream!.listen(0, '127.0.0.1', () => r()));
    return { server: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, patches, watches };
  }

  async function startWith(server: string, upgrade: Parameters<typeof startAgent>[0]['upgrade'], extra: Record<string, unknown> = {}) {
    const dataDir = mkdtempSync(join(tmpdir(), 'tether-agent-upgrade-'));
    const config = edgeConfigSchema.parse({ servers: [server], listen: '127.0.0.1:0', adminListen: '127.0.0.1:0', dataDir, insecurePlainHttp: true, ...extra });
    agent = await startAgent({ config, nodeName: 'edge-test', log: createMemoryLogger('error'), reconnectJitterMs: 0, upgrade });
    for (let i = 0; i < 100 && !agent.status().online; i++) await new Promise((r) => setTimeout(r, 20));
    return `http://127.0.0.1:${agent.proxy.address.split(':').pop()}`;
  }

  const statusOf = (p: { body: { metadata: { annotations: Record<string, string> } } }) => {
    const s = p.body.metadata.annotations[UPGRADE_STATUS_ANNOTATION];
    return s ? (JSON.parse(s) as { phase: string; reason?: string; uid: string }) : undefined;
  };

  test("learns the target from the store's copy of its Node (the kubelet's LIST), with no request of its own; reports the version and the refusal", async () => {
    const api = await nodeApiserver();
    const proxy = await startWith(api.server, { restart: () => {}, fallbackAfterMs: 600_000 });
    const r = await fetch(`${proxy}/api/v1/nodes?fieldSelector=metadata.name%3Dedge-test`, { headers: kubelet });
    expect(r.status).toBe(200);
    await until(() => Promise.resolve(api.patches.length), (n) => n >= 2);
    expect(api.patches.every((p) => p.ua.startsWith('tether-edge/') && p.type === 'application/merge-patch+json')).toBe(true);
    expect(api.patches.map((p) => p.body.metadata.annotations[EDGE_VERSION_ANNOTATION]).filter(Boolean)).toEqual([buildInfo.version]);
    // No release key is pinned in this configuration: refused before anything is fetched.
    expect(api.patches.map(statusOf).filter(Boolean)).toEqual([expect.objectContaining({ phase: 'Failed', uid: 'u1', reason: 'no release key pinned (tether-edge join --release-key)' })]);
    expect(agent!.status().upgrade).toMatchObject({ running: buildInfo.version, last: { phase: 'Failed' } });
    expect(api.watches).toEqual([]);
  });

  test('with no recorded copy, watches its own Node (one watch, fieldSelector metadata.name) and acts on it', async () => {
    const api = await nodeApiserver();
    await startWith(api.server, { restart: () => {}, fallbackAfterMs: 0 });
    await until(() => Promise.resolve(api.patches.filter(statusOf).length), (n) => n >= 1);
    expect(api.watches).toEqual([{ ua: `tether-edge/${buildInfo.version}`, url: '/api/v1/nodes?fieldSelector=metadata.name%3Dedge-test&watch=true&allowWatchBookmarks=true' }]);
    expect(statusOf(api.patches.find(statusOf)!)).toMatchObject({ phase: 'Failed', uid: 'u1' });
  });

  test('turned off (upgrade: false, or upgrade.enabled false): no report, no watch', async () => {
    for (const [opt, extra] of [[false, {}], [{ restart: () => {}, fallbackAfterMs: 0 }, { upgrade: { enabled: false } }]] as const) {
      const api = await nodeApiserver();
      const proxy = await startWith(api.server, opt, extra);
      expect((await fetch(`${proxy}/api/v1/nodes?fieldSelector=metadata.name%3Dedge-test`, { headers: kubelet })).status).toBe(200);
      // The same request above is what made the upgrader report within milliseconds in the first test.
      await new Promise((r) => setTimeout(r, 300));
      expect(api.patches).toEqual([]);
      expect(api.watches).toEqual([]);
      expect(agent!.status().upgrade).toEqual({ running: buildInfo.version });
      await agent!.close();
      agent = undefined;
      await new Promise<void>((r) => upstream!.close(() => r()));
      upstream = undefined;
    }
  });
});

test("a trial's health check reaches the TLS proxy without a client certificate (it answers 401: serving)", async () => {
  const server = await fakeApiserver({});
  await start(server, undefined, '127.0.0.1:0', { insecurePlainHttp: false });
  expect(agent!.proxy.url).toStartWith('https://');
  expect(await proxyAnswers(agent!.proxy.url)).toBe(true);
  const url = agent!.proxy.url;
  await agent!.close();
  agent = undefined;
  expect(await proxyAnswers(url)).toBe(false);
});
