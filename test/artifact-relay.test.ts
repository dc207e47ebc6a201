/**
 * The artifact relay (in test/: it takes the edge upgrader's download code to the hub) through the whole hub in process (cloud/hub.ts wiring): real tunnel agents
 * with node certificates fetch release files with the upgrader's download() and hubFetch() over
 * api streams; the hub reads the EdgeUpgrade from a lookup (the kube client is tested in
 * cloud/tunnel/artifact-upgrades.test.ts) and fetches from a local origin on 127.0.0.1 once.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { download, fetchSmall } from '../edge/upgrade/download.ts';
import { hubFetch, type HubFetcher } from '../edge/upgrade/hub-fetch.ts';
import { createMemoryLogger } from '../shared/log.ts';
import { Registry } from '../shared/metrics.ts';
import { hubConfigSchema } from '../cloud/config.ts';
import { startHub, type RunningHub } from '../cloud/hub.ts';
import type { ApiUpstream } from '../cloud/tunnel/api-forward.ts';
import type { UpgradeOrigin } from '../cloud/tunnel/artifact-upgrades.ts';
import { staticHubBackend } from '../cloud/tunnel/backend.ts';
import { createHubTestPki, type HubTestPki } from './support/pki.ts';
import { startTestAgent, type TunnelAgent } from './support/tunnel-agent.ts';
import { waitFor } from './support/wait.ts';

const BINARY = 'tether-edge-linux-x64';
const binary = randomBytes(700 * 1024);
const sha = createHash('sha256').update(binary).digest('hex');

let pki: HubTestPki;
let origin: http.Server;
let originURL: string;
let originHits: string[] = [];
let apiserver: https.Server;
let apiHits: string[] = [];
let upstream: ApiUpstream;
let work: string;
/** The node's own view of the release location: nothing listens there (connections refused). */
let unreachable: string;

const upgrades = new Map<string, UpgradeOrigin>();
let lookups = 0;

beforeAll(async () => {
  pki = await createHubTestPki();
  work = mkdtempSync(join(tmpdir(), 'tether-relay-'));
  origin = http.createServer((req, res) => {
    originHits.push(req.url!);
    const p = req.url!.replace(/^\/rel\/0\.2\.0\//, '');
    const body = p === BINARY ? binary : p === 'VERSION' ? Buffer.from('0.2.0\n') : undefined;
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': body.length, etag: '"r1"', 'last-modified': 'Tue, 01 Dec 2026 00:00:00 GMT' }).end(body);
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
  originURL = `http://127.0.0.1:${(origin.address() as AddressInfo).port}/rel/0.2.0`;
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
  unreachable = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/rel/0.2.0`;
  await new Promise<void>((r) => closed.close(() => r()));
  upgrades.set('up-1', { name: 'up-1', uid: 'uid-1', baseURL: originURL, insecure: true });
  upgrades.set('plain', { name: 'plain', uid: 'uid-2', baseURL: originURL, insecure: false });

  apiserver = https.createServer({ cert: readFileSync(pki.hub.certFile), key: readFileSync(pki.hub.keyFile) }, (req, res) => {
    apiHits.push(req.url!);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"kind":"Status"}');
  });
  await new Promise<void>((r) => apiserver.listen(0, '127.0.0.1', () => r()));
  const agent = new https.Agent({ keepAlive: true, ca: readFileSync(pki.caFile) });
  upstream = {
    server: new URL(`https://127.0.0.1:${(apiserver.address() as AddressInfo).port}/`),
    agent: () => agent,
    hubHeaders: async () => ({ authorization: 'Bearer hub' }),
    close: () => agent.destroy(),
  };
});
afterAll(() => {
  for (const s of [origin, apiserver]) {
    s.close();
    s.closeAllConnections?.();
  }
  pki.remove();
  rmSync(work, { recursive: true, force: true });
});

interface Site {
  hub: RunningHub;
  agents: TunnelAgent[];
  fetchers: HubFetcher[];
  close(): Promise<void>;
}

async function site(config: Record<string, unknown>, nodes = ['n1']): Promise<Site> {
  const hub = await startHub({
    config: hubConfigSchema.parse({
      replicaId: 'hub-0',
      listen: '127.0.0.1:0',
      connectListen: '127.0.0.1:0',
      tlsCertFile: pki.hub.certFile,
      tlsKeyFile: pki.hub.keyFile,
      clientCaFile: pki.caFile,
      artifactCacheDir: mkdtempSync(join(work, 'cache-')),
      ...config,
    }),
    backend: staticHubBackend({ n1: ['198.18.99.1'], n2: ['198.18.99.2'] }),
    log: createMemoryLogger('info'),
    registry: new Registry(),
    apiUpstream: upstream,
    artifactUpgrades: async (name) => (lookups++, upgrades.get(name)),
  });
  const agents: TunnelAgent[] = [];
  for (const node of nodes) {
    const creds = await pki.node(node);
    agents.push(
      startTestAgent({ hubUrls: [`wss://${hub.agentAddress}`], caFile: pki.caFile, creds, node }),
    );
  }
  await waitFor('agents connected', () => agents.every((a) => a.connected));
  const fetchers = agents.map((a) => hubFetch(a));
  return {
    hub,
    agents,
    fetchers,
    async close() {
      for (const f of fetchers) f.close();
      for (const a of agents) await a.close();
      await hub.close();
    },
  };
}

/** A raw GET through a node's tunnel: status, headers and body. */
async function get(f: HubFetcher, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  const r = await f(path, headers);
  const chunks: Buffer[] = [];
  for await (const c of r.body) chunks.push(c as Buffer);
  return { status: r.status, headers: r.headers, body: Buffer.concat(chunks) };
}

/** Any method through a node's api stream (hubFetch only GETs). */
function raw(a: TunnelAgent, method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  const agent = new http.Agent({ keepAlive: false });
  (agent as unknown as { createConnection: (o: unknown, cb: (e: Error | null, s?: unknown) => void) => void }).createConnection = (_o, cb) => {
    a.openApiStream({ compress: false }).then(
      (d) => cb(null, Object.assign(d, { setKeepAlive: () => d, setNoDelay: () => d, setTimeout: () => d, ref: () => d, unref: () => d })),
      (e) => cb(e),
    );
  };
  return new Promise((resolve, reject) => {
    const req = http.request({ host: 'kube-apiserver.tether', path, method, headers, agent }, (res) => (res.resume(), resolve({ status: res.statusCode!, headers: res.headers })));
    // A refused upgrade comes back as an ordinary answer, or as 'upgrade' if a runtime reads it so.
    req.on('upgrade', (res, socket) => (socket.destroy(), resolve({ status: res.statusCode!, headers: res.headers })));
    req.on('error', reject);
    req.end();
  });
}

const message = (body: Buffer) => (JSON.parse(body.toString()) as { message: string }).message;

describe('artifact relay', () => {
  test('a node that cannot reach baseURL downloads through its tunnel; two nodes cost the origin one GET', async () => {
    originHits = [];
    const s = await site({}, ['n1', 'n2']);
    try {
      const results = await Promise.all(
        s.fetchers.map((hub, i) => download({ baseURL: unreachable, file: BINARY, dir: join(work, `node-${i}`), upgrade: 'up-1', hub })),
      );
      for (const r of results) {
        expect(r.via).toBe('hub');
        expect(r.sha256).toBe(sha);
        expect(readFileSync(r.path).equals(binary)).toBe(true);
      }
      const version = await fetchSmall({ baseURL: unreachable, file: 'VERSION', upgrade: 'up-1', maxBytes: 64, hub: s.fetchers[0]! });
      expect(version).toEqual({ body: Buffer.from('0.2.0\n'), via: 'hub' });
      expect(originHits).toEqual([`/rel/0.2.0/${BINARY}`, '/rel/0.2.0/VERSION']);
      expect(apiHits).toEqual([]);
    } finally {
      await s.close();
    }
  });

  test("Range and If-Range are served from the hub's copy, with the origin's validators", async () => {
    const s = await site({});
    try {
      const f = s.fetchers[0]!;
      const path = `/tether/v1/artifacts/up-1/${BINARY}`;
      const whole = await get(f, path);
      expect(whole.status).toBe(200);
      expect(whole.headers.etag).toBe('"r1"');
      expect(whole.headers['last-modified']).toBe('Tue, 01 Dec 2026 00:00:00 GMT');
      const part = await get(f, path, { range: 'bytes=1000-', 'if-range': '"r1"' });
      expect(part.status).toBe(206);
      expect(part.headers['content-range']).toBe(`bytes 1000-${binary.length - 1}/${binary.length}`);
      expect(part.body.equals(binary.subarray(1000))).toBe(true);
      const byDate = await get(f, path, { range: 'bytes=10-19', 'if-range': 'Tue, 01 Dec 2026 00:00:00 GMT' });
      expect(byDate.status).toBe(206);
      expect(byDate.body.equals(binary.subarray(10, 20))).toBe(true);
      const changed = await get(f, path, { range: 'bytes=1000-', 'if-range': '"other"' });
      expect(changed.status).toBe(200);
      expect(changed.body.length).toBe(binary.length);
      const past = await get(f, path, { range: `bytes=${binary.length}-`, 'if-range': '"r1"' });
      expect(past.status).toBe(416);
      expect(past.headers['content-range']).toBe(`bytes */${binary.length}`);
    } finally {
      await s.close();
    }
  });

  test('a name outside the release files is refused (403), and so is a path that leaves the prefix (400), without a lookup or an origin GET', async () => {
    const s = await site({});
    originHits = [];
    lookups = 0;
    try {
      const f = s.fetchers[0]!;
      for (const file of ['tether-hub-linux-x64', 'install.sh', 'SHA256SUMS.bak', '.VERSION']) {
        const r = await get(f, `/tether/v1/artifacts/up-1/${file}`);
        expect(r.status).toBe(403);
        expect(message(r.body)).toBe(`tether-hub: ${file} is not a release file the hub relays (SHA256SUMS, SHA256SUMS.sig, VERSION, tether-edge-linux-<target>[.xz|.gz])`);
      }
      for (const path of ['/tether/v1/artifacts/up-1/../../api/v1/secrets', '/tether/v1/artifacts/up-1/%2e%2e%2fVERSION', '/tether/v1/artifacts/up-1', '/tether/v1/artifacts/Up_1/VERSION']) {
        const r = await get(f, path);
        expect(r.status).toBe(400);
        expect(message(r.body)).toContain('expected /tether/v1/artifacts/<edgeupgrade>/<file>');
      }
      const post = await raw(s.agents[0]!, 'POST', '/tether/v1/artifacts/up-1/VERSION');
      expect(post.status).toBe(405);
      expect(post.headers.allow).toBe('GET, HEAD');
      const upgrade = await raw(s.agents[0]!, 'GET', '/tether/v1/artifacts/up-1/VERSION', { connection: 'Upgrade', upgrade: 'SPDY/3.1' });
      expect(upgrade.status).toBe(400);
      expect(lookups).toBe(0);
      expect(originHits).toEqual([]);
      expect(apiHits).toEqual([]);
    } finally {
      await s.close();
    }
  });

  test('an unknown EdgeUpgrade is 404; an http baseURL without spec.insecure is 502; a file the origin lacks is 404', async () => {
    const s = await site({});
    originHits = [];
    try {
      const f = s.fetchers[0]!;
      const unknown = await get(f, '/tether/v1/artifacts/nope/VERSION');
      expect(unknown.status).toBe(404);
      expect(message(unknown.body)).toBe('tether-hub: EdgeUpgrade nope not found');
      const plain = await get(f, '/tether/v1/artifacts/plain/VERSION');
      expect(plain.status).toBe(502);
      expect(message(plain.body)).toBe('tether-hub: EdgeUpgrade plain: spec.baseURL must be https (http only with spec.insecure: true)');
      const missing = await get(f, '/tether/v1/artifacts/up-1/SHA256SUMS.sig');
      expect(missing.status).toBe(404);
      expect(message(missing.body)).toContain(`SHA256SUMS.sig of EdgeUpgrade up-1: GET ${originURL}/SHA256SUMS.sig: the origin answered 404`);
      expect(originHits).toEqual(['/rel/0.2.0/SHA256SUMS.sig']);
    } finally {
      await s.close();
    }
  });

  test('with apiStreams off the relay still answers; every other api-stream request is 403 and kube-apiserver sees nothing', async () => {
    const s = await site({ apiStreams: false });
    apiHits = [];
    try {
      const f = s.fetchers[0]!;
      const v = await get(f, '/tether/v1/artifacts/up-1/VERSION');
      expect(v.status).toBe(200);
      expect(v.body.toString()).toBe('0.2.0\n');
      const api = await get(f, '/api/v1/nodes/n1');
      expect(api.status).toBe(403);
      expect(message(api.body)).toContain('does not forward api streams to kube-apiserver (apiStreams: false)');
      const exec = await raw(s.agents[0]!, 'POST', '/api/v1/namespaces/default/pods/p/exec', { connection: 'Upgrade', upgrade: 'SPDY/3.1' });
      expect(exec.status).toBe(403);
      expect(apiHits).toEqual([]);
    } finally {
      await s.close();
    }
  });

  test('with apiStreams and artifactRelay both off the hub accepts no streams', async () => {
    const s = await site({ apiStreams: false, artifactRelay: false });
    try {
      const e = await s.agents[0]!.openApiStream().catch((x: unknown) => x);
      expect(String((e as Error).message)).toContain('accepts no streams');
    } finally {
      await s.close();
    }
  });

  test('a caller that is not an authenticated node gets no session, so no release file', async () => {
    const s = await site({});
    originHits = [];
    try {
      for (const creds of [undefined, await pki.client('someone'), await pki.foreign('system:node:n1', ['system:nodes'])]) {
        const status = await new Promise<number>((resolve, reject) => {
          const req = https.request(
            {
              host: '127.0.0.1',
              port: Number(s.hub.agentAddress.split(':').pop()),
              path: '/tether/v1/artifacts/up-1/VERSION',
              ca: readFileSync(pki.caFile),
              ...(creds ? { cert: readFileSync(creds.certFile), key: readFileSync(creds.keyFile) } : {}),
              agent: false,
            },
            (res) => (res.resume(), resolve(res.statusCode!)),
          );
          req.on('error', (e) => (/socket hang up|ECONNRESET|certificate|alert/i.test(e.message) ? resolve(0) : reject(e)));
          req.end();
        });
        // The agent listener serves nothing but the websocket upgrade at /tunnel, to anyone.
        expect(status).toBe(404);
      }
      const someone = await pki.client('someone');
      const stranger = startTestAgent({ hubUrls: [`wss://${s.hub.agentAddress}`], caFile: pki.caFile, creds: someone, node: 'n1' });
      try {
        await waitFor('refusal', () => !!stranger.status().lastError);
        const e = await fetchSmall({ baseURL: unreachable, file: 'VERSION', upgrade: 'up-1', maxBytes: 64, hub: hubFetch(stranger) }).catch((x: unknown) => x);
        expect((e as Error).message).toContain('no tunnel session to the hub');
      } finally {
        await stranger.close();
      }
      expect(originHits).toEqual([]);
    } finally {
      await s.close();
    }
  });
});
