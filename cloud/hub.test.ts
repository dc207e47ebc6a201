/**
 * The hub in process with real agents (edge/tunnel) over TLS websockets and a real CONNECT client,
 * without a control plane: nodes come from a fixed list, Leases from memory. The end-to-end suites
 * (test/tunnel*.e2e.test.ts) do the same against kube-apiserver and kubectl.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test';
import { readFileSync } from 'node:fs';
import { connect as netConnect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { createMemoryLogger } from '../shared/log.ts';
import { Registry } from '../shared/metrics.ts';
import { hubConfigSchema } from './config.ts';
import { startHub, type RunningHub } from './hub.ts';
import { createMemoryLeases } from '../test/support/memory-leases.ts';
import { createHubTestPki, type HubTestPki } from '../test/support/pki.ts';
import { startTestAgent, type TunnelAgent } from '../test/support/tunnel-agent.ts';
import { staticHubBackend, type HubBackend } from './tunnel/backend.ts';
import { createLeaseView } from './tunnel/leases.ts';
import { dialTunnel } from '../shared/tunnel/ws-transport.ts';
import { until } from '../test/support/wait.ts';

// Each test makes certificates with the openssl CLI and starts hubs and agents: on a loaded 2-core
// machine that alone can pass bun's 5 s default (a budget, not an assertion about speed).
setDefaultTimeout(30_000);

const NODE_IP = '198.18.99.1';
/** A "cloud" destination for direct dials: the hub's network seam connects it to this test's servers on loopback. */
const CLOUD_IP = '198.18.200.9';
const directDialed: string[] = [];
const directConnect = (ip: string, port: number) => {
  directDialed.push(`${ip}:${port}`);
  // Nothing leaves the machine: the "cloud" address is this test's loopback, loopback stays loopback,
  // and any other address is a closed loopback port (a dial the policy should never have allowed fails).
  const known = ip === CLOUD_IP || ip.startsWith('127.');
  return netConnect({ host: '127.0.0.1', port: known ? port : 9, allowHalfOpen: true });
};
let pki: HubTestPki;
let echo: Server;
let echoPort = 0;
const cleanup: (() => Promise<unknown> | unknown)[] = [];

beforeAll(async () => {
  pki = await createHubTestPki();
  echo = createServer((s) => s.pipe(s).on('error', () => {}));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as { port: number }).port;
});
afterAll(() => {
  echo.close();
  pki.remove();
});
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function hub(opts: { replica?: string; backend?: HubBackend; config?: Record<string, unknown> } = {}) {
  const log = createMemoryLogger();
  const registry = new Registry();
  const config = hubConfigSchema.parse({
    replicaId: opts.replica ?? 'hub-0',
    listen: '127.0.0.1:0',
    connectListen: '127.0.0.1:0',
    tlsCertFile: pki.hub.certFile,
    tlsKeyFile: pki.hub.keyFile,
    clientCaFile: pki.caFile,
    connectUsers: ['kube-apiserver-egress'],
    scrapeUsers: ['prometheus'],
    directAllow: ['198.18.0.0/15', '127.0.0.0/8'],
    directDeny: [],
    shutdownGraceSeconds: 1,
    ...opts.config,
  });
  const h = await startHub({ config, backend: opts.backend ?? staticHubBackend({ n1: [NODE_IP], n2: ['198.18.99.2'] }), log, registry, directConnect });
  cleanup.push(() => h.close());
  return { h, log, registry };
}

async function agent(h: RunningHub | string[], creds: { certFile: string; keyFile: string } | undefined, opts: { node?: string; token?: string; addresses?: string[] } = {}) {
  const log = createMemoryLogger();
  const a = startTestAgent({
    hubUrls: Array.isArray(h) ? h : [`wss://${h.agentAddress}`],
    caFile: pki.caFile,
    creds,
    node: opts.node,
    addresses: opts.addresses ?? [NODE_IP],
    ports: [echoPort],
    token: opts.token,
    loopback: true,
    log,
  });
  cleanup.push(() => a.close());
  return { a, log };
}

const connected = (a: TunnelAgent) => until('agent connected', () => a.connected, (c) => c);

/** CONNECT through a hub (TLS, client certificate); returns the status line and, on 200, the echo of `send`. */
async function connectThrough(address: string, target: string, who: { certFile: string; keyFile: string }, send = 'ping'): Promise<{ status: string; echoed?: string }> {
  const i = address.lastIndexOf(':');
  const s = tlsConnect({ host: address.slice(0, i), port: Number(address.slice(i + 1)), ca: readFileSync(pki.caFile), cert: readFileSync(who.certFile), key: readFileSync(who.keyFile) });
  s.on('error', () => {});
  s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  let text = '';
  s.setEncoding('utf8');
  return new Promise((resolve) => {
    s.on('data', (d: string) => {
      text += d;
      const at = text.indexOf('\r\n\r\n');
      if (at < 0) return;
      const status = text.split('\r\n')[0]!;
      if (!status.includes(' 200 ')) return (s.destroy(), resolve({ status }));
      if (text.length === at + 4) return void s.write(send);
      if (text.length >= at + 4 + send.length) {
        s.destroy();
        resolve({ status, echoed: text.slice(at + 4) });
      }
    });
    s.on('close', () => resolve({ status: text.split('\r\n')[0] ?? '' }));
  });
}

describe('agents', () => {
  test('an agent with its node certificate connects, and a CONNECT to its address reaches the destination through the tunnel', async () => {
    const { h, log } = await hub();
    const { a } = await agent(h, await pki.node('n1'));
    await connected(a);
    expect(h.nodes()).toEqual(['n1']);
    const r = await connectThrough(h.connectAddress!, `${NODE_IP}:${echoPort}`, await pki.client('kube-apiserver-egress'));
    expect(r).toEqual({ status: 'HTTP/1.1 200 Connection established', echoed: 'ping' });
    expect(log.lines.some((l) => l.msg === 'connect' && l.route === 'tunnel' && l.node === 'n1')).toBe(true);
  });

  test('an untrusted certificate is refused with 401 and the reason, and logged', async () => {
    const { h, log } = await hub();
    const { a } = await agent(h, await pki.foreign('system:node:n1', ['system:nodes']));
    await until('refusal', () => a.status().lastError, (e) => !!e);
    expect(a.status().lastError).toMatch(/refused: 401 Unauthorized: authenticate: client certificate system:node:n1 is not signed by a trusted CA/);
    expect(a.connected).toBe(false);
    expect(log.lines.some((l) => l.msg === 'agent refused' && String(l.reason).includes('not signed by a trusted CA'))).toBe(true);
  });

  test('a certificate of a user that is not a node is refused with 403', async () => {
    const { h } = await hub();
    const { a } = await agent(h, await pki.client('alice', ['developers']));
    await until('refusal', () => a.status().lastError, (e) => !!e);
    expect(a.status().lastError).toContain('refused: 403 Forbidden: authenticate agent: user alice (groups developers) is not a node');
  });

  test('an agent announcing another node than its certificate names, or a node with no Node object, is refused at HELLO', async () => {
    const { h, log } = await hub();
    const { a } = await agent(h, await pki.node('n2'), { node: 'n1' });
    await until('refusal', () => a.status().lastError, (e) => !!e);
    expect(a.status().lastError).toContain('refused the tunnel: peer: hello: the agent authenticated as node n2 but announced node n1; a node may register only its own name');
    expect(log.lines.some((l) => l.msg === 'agent refused at hello' && l.node === 'n2' && l.announced === 'n1')).toBe(true);
    const { a: ghost } = await agent(h, await pki.node('ghost'), { node: 'ghost' });
    await until('refusal', () => ghost.status().lastError, (e) => !!e);
    expect(ghost.status().lastError).toContain('hello: Node ghost does not exist');
    expect(h.nodes()).toEqual([]);
  });

  test('an agent may authenticate with a bearer token checked by TokenReview', async () => {
    const backend = { ...staticHubBackend({ n1: [NODE_IP] }), tokenReview: async (t: string) => (t === 'node-token' ? { user: 'system:node:n1', groups: ['system:nodes'] } : { error: 'unknown token' }) };
    const { h } = await hub({ backend });
    const { a } = await agent(h, undefined, { token: 'node-token' });
    await connected(a);
    expect(h.nodes()).toEqual(['n1']);
  });

  test('with the first hub URL down, the agent connects to the next one', async () => {
    const { h } = await hub();
    const { a } = await agent(['wss://127.0.0.1:1/tunnel', `wss://${h.agentAddress}/tunnel`], await pki.node('n1'));
    await connected(a);
    expect(a.status().hub).toBe(`wss://${h.agentAddress}/tunnel`);
  });

  test('a destination the agent does not allow is refused with 403 and the agent’s reason; metrics count it', async () => {
    const { h, registry } = await hub();
    const { a, log } = await agent(h, await pki.node('n1'));
    await connected(a);
    const r = await connectThrough(h.connectAddress!, `${NODE_IP}:22`, await pki.client('kube-apiserver-egress'));
    expect(r.status).toMatch(new RegExp(`^HTTP/1.1 403 open stream to ${NODE_IP}:22: node n1 refuses ${NODE_IP}:22: port 22 is not allowed \\(allowed: 10250, ${echoPort}\\)$`));
    expect(log.lines.some((l) => l.msg === 'tunnel stream refused' && l.port === 22)).toBe(true);
    const text = registry.render();
    expect(text).toContain('tether_hub_agents_connected 1');
    expect(text).toContain('tether_hub_dial_errors_total{reason="agent_refused"} 1');
  });
});

describe('CONNECT', () => {
  test('callers are authorized by name: Prometheus reaches edge nodes only, unknown users none', async () => {
    const { h } = await hub();
    const { a } = await agent(h, await pki.node('n1'));
    await connected(a);
    const prom = await pki.client('prometheus');
    expect((await connectThrough(h.connectAddress!, `${NODE_IP}:${echoPort}`, prom)).echoed).toBe('ping');
    expect((await connectThrough(h.connectAddress!, `127.0.0.1:${echoPort}`, prom)).status).toContain('403 127.0.0.1 is not an address of an edge node with a tunnel');
    expect((await connectThrough(h.connectAddress!, `127.0.0.1:${echoPort}`, await pki.client('mallory'))).status).toContain('403 user mallory may not use the CONNECT endpoint');
    expect((await connectThrough(h.connectAddress!, `${CLOUD_IP}:${echoPort}`, await pki.client('kube-apiserver-egress'))).echoed).toBe('ping');
    // Loopback is the hub's own, even with 127.0.0.0/8 in directAllow.
    expect((await connectThrough(h.connectAddress!, `127.0.0.1:${echoPort}`, await pki.client('kube-apiserver-egress'))).status).toContain('403 direct dial 127.0.0.1');
  });

  test('an absolute-form GET is passed on in origin form (Prometheus and http:// targets)', async () => {
    const seen: string[] = [];
    const web = createServer((s) => {
      s.once('data', (d) => {
        seen.push(String(d));
        s.end('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nmetrics!\n');
      });
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    cleanup.push(() => web.close());
    const { h } = await hub();
    const port = (web.address() as { port: number }).port;
    const who = await pki.client('kube-apiserver-egress');
    const i = h.connectAddress!.lastIndexOf(':');
    const s = tlsConnect({ host: '127.0.0.1', port: Number(h.connectAddress!.slice(i + 1)), ca: readFileSync(pki.caFile), cert: readFileSync(who.certFile), key: readFileSync(who.keyFile) });
    s.write(`GET http://${CLOUD_IP}:${port}/metrics?x=1 HTTP/1.1\r\nHost: ${CLOUD_IP}:${port}\r\nProxy-Connection: keep-alive\r\nAccept: text/plain\r\n\r\n`);
    let text = '';
    s.setEncoding('utf8').on('data', (d: string) => (text += d));
    await new Promise((r) => s.once('close', r));
    expect(text).toBe('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nmetrics!\n');
    expect(seen[0]).toBe(`GET /metrics?x=1 HTTP/1.1\r\nHost: ${CLOUD_IP}:${port}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n`);
  });

  test('the Unix socket takes CONNECT without TLS, as kube-apiserver sends it', async () => {
    const socketPath = join(pki.dir, 'connect.sock');
    const { h } = await hub({ config: { connectSocket: socketPath } });
    const { a } = await agent(h, await pki.node('n1'));
    await connected(a);
    const { connect } = await import('node:net');
    const s = connect(socketPath);
    s.write(`CONNECT ${NODE_IP}:${echoPort} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nearly bytes`);
    let text = '';
    s.setEncoding('utf8').on('data', (d: string) => (text += d));
    await until('echo', () => text, (t) => t.includes('early bytes'));
    s.destroy();
    expect(text).toBe('HTTP/1.1 200 Connection established\r\n\r\nearly bytes');
  });
});

describe('two replicas', () => {
  test('an agent with another credential cannot take a node over through the other replica while its Lease is live; the same credential can', async () => {
    const mem = createMemoryLeases();
    const backend = (): HubBackend => ({ ...staticHubBackend({ n1: [NODE_IP] }), leases: { api: mem.api, watch: (v) => mem.watch(v) } });
    const h0 = await hub({ replica: 'hub-0', backend: backend() });
    const h1 = await hub({ replica: 'hub-1', backend: backend() });
    const cert = await pki.node('n1');
    const { a } = await agent(h1.h, cert);
    await connected(a);
    await until('lease with credential', () => mem.get('tunnel-n1'), (l) => l?.holder === 'hub-1' && !!l.credential?.startsWith('cert:'));
    const { a: other } = await agent(h0.h, await pki.node('n1'));
    await until('refusal', () => other.status().lastError, (e) => !!e);
    expect(other.status().lastError).toContain('node n1 already has a live tunnel session on replica hub-1 authenticated with another credential');
    // At least once: the refused agent keeps retrying with backoff meanwhile.
    expect(metric(h0.registry.render(), /tether_hub_agent_replacements_total\{result="refused"\} (\d+)/)).toBeGreaterThanOrEqual(1);
    expect(mem.get('tunnel-n1')?.holder).toBe('hub-1');
    await other.close();
    const { a: same } = await agent(h0.h, cert);
    await connected(same);
    await until('taken over with the same credential', () => mem.get('tunnel-n1')?.holder, (x) => x === 'hub-0');
  });

  test('a CONNECT at the replica without the tunnel is forwarded once to the holder named in the Lease', async () => {
    const mem = createMemoryLeases();
    const backend = (): HubBackend => ({ ...staticHubBackend({ n1: [NODE_IP] }), leases: { api: mem.api, watch: (v) => mem.watch(v) } });
    const peer = { peerUsers: ['tether-hub'] };
    const h0 = await hub({ replica: 'hub-0', backend: backend(), config: peer });
    const h1 = await hub({ replica: 'hub-1', backend: backend(), config: peer });
    const { a } = await agent(h1.h, await pki.node('n1'));
    await connected(a);
    await until('lease', () => mem.get('tunnel-n1')?.holder, (x) => x === 'hub-1');
    expect(mem.get('tunnel-n1')?.address).toBe(h1.h.advertise);
    const r = await connectThrough(h0.h.connectAddress!, `${NODE_IP}:${echoPort}`, await pki.client('kube-apiserver-egress'));
    expect(r).toEqual({ status: 'HTTP/1.1 200 Connection established', echoed: 'ping' });
    expect(h0.log.lines.some((l) => l.msg === 'connect' && l.route === 'forward')).toBe(true);
    expect(h1.log.lines.some((l) => l.msg === 'connect' && l.route === 'tunnel' && l.forwardedBy === 'hub-0')).toBe(true);
    // The agent leaves: the released Lease marks n1 as an edge node without a tunnel.
    await a.close();
    await until('released', () => mem.get('tunnel-n1')?.holder, (x) => x === '');
    const view = createLeaseView();
    mem.watch(view);
    expect(view.known('n1')).toBe(true);
    const gone = await connectThrough(h0.h.connectAddress!, `${NODE_IP}:${echoPort}`, await pki.client('kube-apiserver-egress'));
    expect(gone.status).toBe('HTTP/1.1 503 node n1 has no tunnel connected');
  });
});

describe('trust between nodes', () => {
  test("an agent announcing another node's address and a Service name gets none of them: claims refused, logged, counted; CONNECTs to them never reach it", async () => {
    const { h, log, registry } = await hub();
    const { a, log: alog } = await agent(h, await pki.node('n1'), { addresses: [NODE_IP, '198.18.99.2', 'n2', 'webhook.kube-system.svc', '198.18.250.1'] });
    await connected(a);
    const refused = () => log.lines.filter((l) => l.msg === 'address claim refused').map((l) => [l.address, l.reason]);
    await until('claims refused', refused, (r) => r.length === 4);
    expect(refused()).toEqual([['198.18.99.2', 'other_node'], ['n2', 'other_node'], ['webhook.kube-system.svc', 'service'], ['198.18.250.1', 'not_in_node']]);
    const text = registry.render();
    expect(text).toContain('tether_hub_address_claims_refused_total{reason="other_node"} 2');
    expect(text).toContain('tether_hub_address_claims_refused_total{reason="service"} 1');
    const egress = await pki.client('kube-apiserver-egress');
    for (const target of [`198.18.99.2:${echoPort}`, `n2:${echoPort}`, `198.18.250.1:${echoPort}`]) {
      const r = await connectThrough(h.connectAddress!, target, egress);
      expect(r.status).not.toContain(' 200 ');
    }
    // Its own address still works, and nothing but that one stream was ever opened on the agent.
    expect((await connectThrough(h.connectAddress!, `${NODE_IP}:${echoPort}`, egress)).echoed).toBe('ping');
    expect(alog.lines.filter((l) => /stream/.test(String(l.msg)) && l.host && l.host !== NODE_IP)).toEqual([]);
  });

  test('a second session for a connected node is refused with another certificate, and replaces the first with the same one; both counted', async () => {
    const { h, log, registry } = await hub();
    const first = await pki.node('n1');
    const { a } = await agent(h, first);
    await connected(a);
    const { a: other } = await agent(h, await pki.node('n1'));
    await until('refusal', () => other.status().lastError, (e) => !!e);
    expect(other.status().lastError).toContain('node n1 already has a live tunnel session');
    expect(other.connected).toBe(false);
    expect(a.connected).toBe(true);
    expect(log.lines.some((l) => l.msg === 'agent session replacement refused' && l.node === 'n1')).toBe(true);
    expect(registry.render()).toContain('tether_hub_agent_replacements_total{result="refused"}');
    await other.close();
    const sessionOf = () => log.lines.filter((l) => l.msg === 'agent connected').map((l) => l.session);
    const before = sessionOf().length;
    const { a: again } = await agent(h, first);
    await connected(again);
    await until('replaced', () => log.lines.filter((l) => l.msg === 'agent session replaced').length, (n) => n >= 1);
    await a.close(); // the replaced agent backs off before it would try to take the tunnel back
    expect(sessionOf().length).toBeGreaterThanOrEqual(before + 1);
    expect(metric(registry.render(), /tether_hub_agent_replacements_total\{result="accepted"\} (\d+)/)).toBeGreaterThanOrEqual(1);
  });
});

/** Opens `n` raw TCP connections to host:port that never send a byte; resolves with them. */
async function idleSockets(address: string, n: number) {
  const i = address.lastIndexOf(':');
  return Promise.all(
    Array.from({ length: n }, () => new Promise<import('node:net').Socket>((resolve) => {
      const s = netConnect({ host: address.slice(0, i), port: Number(address.slice(i + 1)) });
      s.on('error', () => {});
      s.once('connect', () => resolve(s));
      s.once('close', () => resolve(s));
    })),
  );
}
const metric = (text: string, re: RegExp) => Number(re.exec(text)?.[1] ?? 0);

describe('listeners', () => {
  test('idle unauthenticated connections are closed by the handshake and header timeouts, on both listeners; counted', async () => {
    const { h, registry } = await hub({ config: { handshakeTimeoutMs: 150, headerTimeoutMs: 150 } });
    const raw = [...(await idleSockets(h.connectAddress!, 30)), ...(await idleSockets(h.agentAddress, 30))];
    cleanup.push(() => raw.forEach((s) => s.destroy()));
    await until('every idle socket closed by the hub', () => raw.filter((s) => !s.destroyed && !s.readableEnded).length, (n) => n === 0);
    // TLS done, then silence: the header timeout.
    const who = await pki.client('kube-apiserver-egress');
    const i = h.connectAddress!.lastIndexOf(':');
    const t = tlsConnect({ host: '127.0.0.1', port: Number(h.connectAddress!.slice(i + 1)), ca: readFileSync(pki.caFile), cert: readFileSync(who.certFile), key: readFileSync(who.keyFile) });
    t.on('error', () => {});
    await new Promise((r) => t.once('close', r));
    const text = registry.render();
    expect(metric(text, /tether_hub_listener_refusals_total\{listener="connect",reason="handshake_timeout"\} (\d+)/)).toBe(30);
    expect(metric(text, /tether_hub_listener_refusals_total\{listener="agent",reason="handshake_timeout"\} (\d+)/)).toBe(30);
    expect(metric(text, /tether_hub_listener_refusals_total\{listener="connect",reason="header_timeout"\} (\d+)/)).toBe(1);
    await until('listener gauges back to 0', () => registry.render(), (x) => x.includes('tether_hub_listener_connections{listener="connect"} 0') && x.includes('tether_hub_listener_connections{listener="agent"} 0'));
  });

  test('connections over the per-source pending limit and the total limit are closed at once; counted', async () => {
    const { h, registry } = await hub({ config: { maxPendingPerSource: 5, maxConnections: 8 } });
    const first = await idleSockets(h.connectAddress!, 12);
    cleanup.push(() => first.forEach((s) => s.destroy()));
    await until('the 7 over the limit closed', () => first.filter((s) => s.destroyed || s.readableEnded).length, (n) => n === 7);
    expect(metric(registry.render(), /tether_hub_listener_refusals_total\{listener="connect",reason="per_source_limit"\} (\d+)/)).toBe(7);
    // The total limit, on the agent listener of a hub with a high per-source limit.
    const big = await hub({ replica: 'hub-1', config: { maxPendingPerSource: 100, maxConnections: 8 } });
    const all = await idleSockets(big.h.agentAddress, 10);
    cleanup.push(() => all.forEach((s) => s.destroy()));
    await until('2 over the total closed', () => all.filter((s) => s.destroyed || s.readableEnded).length, (n) => n === 2);
    expect(metric(big.registry.render(), /tether_hub_listener_refusals_total\{listener="agent",reason="total_limit"\} (\d+)/)).toBe(2);
    // An authenticated connection does not count against its source: CONNECTs still work beside 5 pending ones.
    const { a } = await agent(h, await pki.node('n1'));
    await connected(a);
  });

  test('an authenticated agent that upgrades but never sends its HELLO is closed by the header timeout', async () => {
    const { h, registry } = await hub({ config: { headerTimeoutMs: 200 } });
    const n1 = await pki.node('n1');
    const t = await dialTunnel(`wss://${h.agentAddress}/tunnel`, { ca: readFileSync(pki.caFile), cert: readFileSync(n1.certFile), key: readFileSync(n1.keyFile) });
    let closed = false;
    t.onClose(() => (closed = true));
    t.onMessage(() => {}); // answers nothing, sends nothing
    await until('closed by the hub', () => closed, (c) => c);
    expect(registry.render()).toContain('tether_hub_listener_refusals_total{listener="agent",reason="header_timeout"} 1');
    expect(h.nodes()).toEqual([]);
  });

  test('a refused CONNECT client that keeps its side open is disconnected soon after the refusal', async () => {
    const { h, registry } = await hub();
    const who = await pki.client('mallory');
    const i = h.connectAddress!.lastIndexOf(':');
    const t = tlsConnect({ host: '127.0.0.1', port: Number(h.connectAddress!.slice(i + 1)), ca: readFileSync(pki.caFile), cert: readFileSync(who.certFile), key: readFileSync(who.keyFile), allowHalfOpen: true });
    t.on('error', () => {});
    let text = '';
    t.setEncoding('utf8').on('data', (d: string) => (text += d));
    t.write(`CONNECT ${NODE_IP}:${echoPort} HTTP/1.1\r\n\r\n`);
    cleanup.push(() => t.destroy());
    await new Promise((r) => t.once('end', r));
    // Our side stays open (half-open); the hub's side must go away anyway.
    expect(t.destroyed).toBe(false);
    await until('the hub closed its socket', () => registry.render(), (x) => x.includes('tether_hub_listener_connections{listener="connect"} 0'));
    expect(text).toStartWith('HTTP/1.1 403 user mallory may not use the CONNECT endpoint');
    expect(text).toContain('\r\n\r\nuser mallory may not use the CONNECT endpoint');
  });
});
