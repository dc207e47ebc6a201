/**
 * The via-hub contract: the hub agent (via-hub.ts) and the upstream pool over a real tunnel session
 * pair (memory transport), with a small node:http server on the hub side standing in for
 * tether-hub's forwarder (each accepted api stream is handed to it as a connection). Run under Bun
 * (via-hub.test.ts) and Node 20 (via-hub.node.contract.ts), since the two node:http differ in how
 * they treat a socket that is not a net.Socket. node:assert only.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { Duplex, PassThrough } from 'node:stream';
import { createMemoryLogger } from '../../shared/log.ts';
import { createTransportPair } from '../../shared/tunnel/memory-transport.ts';
import { createTunnelSession, type OpenInfo, type TunnelSession } from '../../shared/tunnel/session.ts';
import { openApiStreamOn } from '../tunnel/tunnel-agent.ts';
import { createUpstreamPool, type Upstream, type UpstreamPool, type UpstreamPoolOptions } from './pool.ts';
import { ApiStreamSocket, VIA_HUB_SERVER, createHubAgent, followSessions, type SessionEvents } from './via-hub.ts';

export type TestFn = (name: string, fn: () => Promise<void>) => void;

const hello = { node: 'edge-1', addresses: ['198.18.1.2'], version: 'test' };

function duplexPair(): [Duplex, Duplex] {
  const ab = new PassThrough();
  const ba = new PassThrough();
  return [Duplex.from({ readable: ba, writable: ab }), Duplex.from({ readable: ab, writable: ba })];
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * The hub side: tunnel sessions whose api streams go to one node:http server, and a tunnel agent
 * stand-in that keeps a current session and tells listeners about its life, as edge/tunnel/tunnel-agent.ts does.
 */
async function createRig(o: { ready?: boolean; pool?: Partial<UpstreamPoolOptions> } = {}) {
  const opens: OpenInfo[] = [];
  const watchers = new Set<http.ServerResponse>();
  let authorization: (string | undefined)[] = [];
  let ready = o.ready ?? true;
  const server = http.createServer((req, res) => {
    authorization.push(req.headers.authorization);
    if (req.url === '/readyz') {
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' });
      return res.end(ready ? 'ok' : 'hub: apiserver unreachable');
    }
    if (req.url?.startsWith('/watch')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"type":"ADDED","object":{"metadata":{"resourceVersion":"1"}}}\n');
      watchers.add(res);
      res.on('close', () => watchers.delete(res));
      return;
    }
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, url: req.url, body, pad: 'x'.repeat(2000) }));
    });
  });
  const listeners = new Set<(ev: { state: 'up' | 'draining' | 'down'; hub: string; reason?: string }) => void>();
  let current: TunnelSession | undefined;
  let hubSession: TunnelSession | undefined;
  const hubLog = createMemoryLogger('info');
  const connect = async (name: string) => {
    const [hubT, agentT] = createTransportPair();
    const hub = createTunnelSession({
      transport: hubT,
      role: 'hub',
      log: hubLog,
      onOpen: async (host, port, info) => {
        assert.equal(host, 'kube-apiserver');
        assert.equal(port, 0);
        opens.push(info);
        const [mine, theirs] = duplexPair();
        server.emit('connection', theirs);
        return mine;
      },
    });
    const agent = createTunnelSession({ transport: agentT, role: 'agent', log: createMemoryLogger('info'), hello, onOpen: async () => new PassThrough() });
    await Promise.all([hub.ready, agent.ready]);
    current = agent;
    hubSession = hub;
    void agent.closed.then((c) => {
      if (current !== agent) return;
      current = undefined;
      for (const l of listeners) l({ state: 'down', hub: name, reason: c.reason });
    });
    for (const l of listeners) l({ state: 'up', hub: name });
    return { hub, agent };
  };
  const events: SessionEvents = {
    onSession(l) {
      listeners.add(l);
      return () => void listeners.delete(l);
    },
  };
  const agent = createHubAgent(() => openApiStreamOn(current, 2000));
  await connect('hub-a');
  const pool: UpstreamPool = createUpstreamPool({
    servers: [VIA_HUB_SERVER],
    lbMode: 'priority',
    tls: {},
    log: createMemoryLogger('info'),
    retryMinMs: 20,
    retryMaxMs: 40,
    createAgent: () => agent,
    ...o.pool,
  });
  const unfollow = followSessions(pool, events);
  await pool.ready;
  return {
    opens,
    watchers,
    pool,
    get agent() {
      return pool.all()[0]!.agent as http.Agent;
    },
    get session() {
      return current;
    },
    get hubSession() {
      return hubSession;
    },
    authorization: () => authorization,
    resetAuthorization: () => (authorization = []),
    setReady: (v: boolean) => (ready = v),
    connect,
    async dispose() {
      unfollow();
      pool.close();
      current?.close('test done');
      hubSession?.close('test done');
      for (const w of watchers) w.destroy();
      server.close();
    },
  };
}

function get(u: Upstream, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, u.url), { agent: u.agent, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export function runViaHubContract(test: TestFn): void {
  test('via hub: requests travel as compressed api streams and reuse them (keep-alive), bearer tokens kept', async () => {
    const rig = await createRig();
    try {
      const u = rig.pool.pick();
      assert.ok(u, 'the pool is healthy once its probe went through the hub');
      assert.equal(u.url.href, VIA_HUB_SERVER);
      const opensAfterProbe = rig.opens.length;
      assert.equal(opensAfterProbe, 1, 'the start probe opened one api stream');
      for (let i = 0; i < 5; i++) {
        const r = await get(u, `/api/v1/namespaces/default/pods/p${i}`, i % 2 ? { authorization: 'Bearer pod-token' } : {});
        assert.equal(r.status, 200);
        assert.equal(JSON.parse(r.body).url, `/api/v1/namespaces/default/pods/p${i}`);
      }
      assert.equal(rig.opens.length, 1, 'sequential requests reuse the idle api stream');
      assert.deepEqual(rig.authorization().slice(-5), [undefined, 'Bearer pod-token', undefined, 'Bearer pod-token', undefined]);
      assert.ok(rig.opens.every((o) => o.compress), 'api streams are opened compressed');
      const parallel = await Promise.all([0, 1, 2].map((i) => get(u, `/api/v1/nodes/n${i}`)));
      assert.deepEqual(parallel.map((r) => r.status), [200, 200, 200]);
      assert.equal(rig.opens.length, 3, 'three requests at once: the idle stream and two new ones');
      const st = rig.session!.stats();
      assert.ok(st.apiRawIn > 0 && st.apiWireIn > 0 && st.apiWireIn < st.apiRawIn, `compressed answers: raw ${st.apiRawIn}, wire ${st.apiWireIn}`);
    } finally {
      await rig.dispose();
    }
  });

  test('via hub: a watch streams through, line by line', async () => {
    const rig = await createRig();
    try {
      const u = rig.pool.pick()!;
      const lines: string[] = [];
      let ended = false;
      const req = http.request(new URL('/watch?resourceVersion=1', u.url), { agent: u.agent }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (c: string) => lines.push(...c.split('\n').filter(Boolean)));
        res.on('end', () => (ended = true));
      });
      req.on('error', () => {});
      req.end();
      await until(() => lines.length === 1, 'the first event');
      const [w] = [...rig.watchers];
      w!.write('{"type":"MODIFIED","object":{"metadata":{"resourceVersion":"2"}}}\n');
      await until(() => lines.length === 2, 'the second event, while the watch is open');
      assert.equal(ended, false);
      assert.match(lines[1]!, /"resourceVersion":"2"/);
      w!.end();
      await until(() => ended, 'the end of the watch');
    } finally {
      await rig.dispose();
    }
  });

  test('via hub: the session ends → unhealthy at once, watches aborted, idle streams gone, pick() undefined; a new session → probed at once, healthy', async () => {
    // Retries a minute apart: only the probe on the new session's arrival can make it healthy in time.
    const rig = await createRig({ pool: { retryMinMs: 60_000, retryMaxMs: 60_000, healthyAfter: 1 } });
    try {
      const first = rig.session!;
      const u = rig.pool.pick()!;
      assert.equal((await get(u, '/api')).status, 200);
      assert.ok(Object.values(rig.agent.freeSockets).flat().length > 0, 'an idle api stream is pooled');
      const watch = new AbortController();
      rig.pool.track(u, watch);
      const changes: boolean[] = [];
      rig.pool.onChange((ev) => changes.push(ev.healthy));
      const probes = u.probes;
      first.close('link cut');
      await until(() => !rig.pool.online, 'the pool hears the session ended');
      assert.equal(u.probes, probes, 'declared dead on the session end itself, not after a probe');
      assert.equal(rig.pool.pick(), undefined);
      assert.equal(rig.pool.online, false);
      assert.equal(watch.signal.aborted, true);
      assert.equal((watch.signal.reason as { code?: string }).code, 'E_UPSTREAM_UNAVAILABLE');
      assert.deepEqual(changes, [false]);
      assert.equal(Object.values(rig.agent.freeSockets).flat().length, 0, 'idle api streams are destroyed');
      // Without a session, a connection is refused at once (definitive for the pool).
      const err = await get(u, '/api').then(
        () => undefined,
        (e: { code?: string }) => e,
      );
      assert.equal(err?.code, 'ECONNREFUSED');
      await rig.connect('hub-b');
      await until(() => rig.pool.online, 'healthy again through the new session');
      assert.equal(rig.pool.pick(), u);
      assert.equal((await get(u, '/api/v1/nodes/edge-1')).status, 200);
    } finally {
      await rig.dispose();
    }
  });

  test('via hub: probes go through the hub, so a hub that cannot reach the apiserver makes the upstream unhealthy', async () => {
    const rig = await createRig({ ready: false });
    try {
      assert.equal(rig.pool.online, false);
      assert.match(rig.pool.all()[0]!.lastError ?? '', /answered 503/);
      rig.setReady(true);
      await until(() => rig.pool.online, 'healthy once the hub reaches the apiserver');
    } finally {
      await rig.dispose();
    }
  });

  test('via hub: setTimeout is an idle timeout (node:http relies on it for request and keep-alive timeouts): one timeout event, the socket left to its owner', async () => {
    const [mine, theirs] = duplexPair();
    theirs.on('error', () => {});
    const socket = new ApiStreamSocket(async () => mine);
    socket.on('error', () => {});
    await new Promise((r) => socket.once('connect', r));
    let timeouts = 0;
    // The idle timer is unref'd (as a socket's is; the tunnel's connection keeps the process up): hold the loop here.
    const hold = setInterval(() => {}, 1000);
    const fired = new Promise<void>((resolve) => socket.setTimeout(30, () => (timeouts++, resolve())));
    socket.write('ping');
    let got = '';
    theirs.on('data', (c: Buffer) => (got += c.toString()));
    await fired;
    clearInterval(hold);
    assert.equal(timeouts, 1);
    assert.equal(got, 'ping');
    assert.equal(socket.destroyed, false, 'a timeout only tells; the owner decides (node:http destroys)');
    socket.setTimeout(0);
    socket.destroy();
  });

  test('via hub: a request written before the stream is open is sent once it is; a peer reset fails the request', async () => {
    const rig = await createRig();
    try {
      const u = rig.pool.pick()!;
      rig.agent.destroy(); // no idle stream: the next request opens a new one and writes at once
      const body = JSON.stringify({ kind: 'Event', pad: 'y'.repeat(100_000) });
      const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(new URL('/api/v1/events', u.url), { agent: u.agent, method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
          let b = '';
          res.setEncoding('utf8');
          res.on('data', (c) => (b += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
        });
        req.on('error', reject);
        req.end(body);
      });
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.body).body, body);
      const broken = new Promise<unknown>((resolve) => {
        const req = http.request(new URL('/watch', u.url), { agent: u.agent }, (res) => {
          res.on('data', () => {
            for (const w of rig.watchers) w.socket?.destroy();
          });
          res.on('error', resolve);
          res.on('close', () => resolve('closed'));
        });
        req.on('error', resolve);
        req.end();
      });
      assert.ok(await broken, 'the request ended when the hub side reset the stream');
    } finally {
      await rig.dispose();
    }
  });
}
