/**
 * Fuzz: the hub's two listeners, in process, with a connected agent. Inputs are mutated from a
 * corpus of real requests (CONNECT, absolute-form GET, websocket upgrades) plus noise before TLS,
 * and, on the agent listener, authenticated websocket sessions fed mutated tunnel frames.
 *
 * Asserted: the hub never crashes and keeps serving; every HTTP answer other than a success has a
 * body of the length it announces; after the run the listeners hold no connection, the process
 * holds no more descriptors than before (small tolerance) and the heap is bounded.
 *
 * Nothing leaves loopback: direct dials go through the hub's network seam to a local server, the
 * agent dials its destinations on loopback.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { createMemoryLogger } from '../../shared/log.ts';
import { Registry } from '../../shared/metrics.ts';
import { createRandom, fuzzPlan, heapAfterGc, mutate, openFds, sampleFrame, type Random } from '../../test/support/fuzz.ts';
import { encodeFrame } from '../../shared/tunnel/frames.ts';
import { dialTunnel } from '../../shared/tunnel/ws-transport.ts';
import { hubConfigSchema } from '../config.ts';
import { startHub, type RunningHub } from '../hub.ts';
import { createHubTestPki, type HubTestPki } from '../../test/support/pki.ts';
import { startTestAgent, type TunnelAgent } from '../../test/support/tunnel-agent.ts';
import { staticHubBackend } from './backend.ts';
import { until } from '../../test/support/wait.ts';

const NODE_IP = '198.18.99.1';
let pki: HubTestPki;
let target: Server;
let port = 0;
let hub: RunningHub;
let registry: Registry;
let agent: TunnelAgent;
const files = { egress: { certFile: '', keyFile: '' }, node2: { certFile: '', keyFile: '' } };

const listenerConnections = (listener: 'agent' | 'connect') => () => Number(new RegExp(`tether_hub_listener_connections\\{listener="${listener}"\\} (\\d+)`).exec(registry.render())?.[1]);

beforeAll(async () => {
  pki = await createHubTestPki();
  // Every destination (direct dial or through the agent) ends here: an HTTP answer to whatever comes.
  target = createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'));
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  port = (target.address() as { port: number }).port;
  registry = new Registry();
  const config = hubConfigSchema.parse({
    replicaId: 'fuzz', listen: '127.0.0.1:0', connectListen: '127.0.0.1:0',
    tlsCertFile: pki.hub.certFile, tlsKeyFile: pki.hub.keyFile, clientCaFile: pki.caFile,
    connectUsers: ['kube-apiserver-egress'], directAllow: ['198.18.0.0/15'], directDeny: [],
    handshakeTimeoutMs: 300, headerTimeoutMs: 300, shutdownGraceSeconds: 0, logLevel: 'error',
  });
  hub = await startHub({
    config,
    backend: staticHubBackend({ n1: [NODE_IP], n2: ['198.18.99.2'] }),
    log: createMemoryLogger(),
    registry,
    directConnect: () => netConnect({ host: '127.0.0.1', port, allowHalfOpen: true }),
  });
  const n1 = await pki.node('n1');
  files.node2 = await pki.node('n2');
  files.egress = await pki.client('kube-apiserver-egress');
  agent = startTestAgent({
    hubUrls: [`wss://${hub.agentAddress}`], caFile: pki.caFile, creds: n1, node: 'n1', addresses: [NODE_IP], ports: [port],
    loopback: true, log: createMemoryLogger(),
  });
  await until('agent connected', () => agent.connected, (c) => c);
}, 60_000);

afterAll(async () => {
  await agent?.close();
  await hub?.close();
  target?.close();
  pki?.remove();
});

interface Answer {
  bytes: Buffer;
}

/** Sends `input` on a fresh connection (TLS with `who`, or raw TCP) and collects what comes back until the hub closes or a complete answer arrived. */
function exchange(address: string, input: Uint8Array, who?: { certFile: string; keyFile: string }): Promise<Answer> {
  const i = address.lastIndexOf(':');
  const opts = { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s: Socket = who
      ? tlsConnect({ ...opts, ca: readFileSync(pki.caFile), cert: readFileSync(who.certFile), key: readFileSync(who.keyFile) }, () => s.write(input))
      : netConnect(opts, () => s.write(input));
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ bytes: Buffer.concat(chunks) });
    };
    s.on('error', finish);
    s.on('close', finish);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      const all = Buffer.concat(chunks);
      const at = all.indexOf('\r\n\r\n');
      if (at < 0) return;
      const head = all.subarray(0, at).toString('latin1');
      if (/^HTTP\/1\.1 (101|200) /.test(head) && !/Content-Length/i.test(head)) return finish();
      const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
      if (all.length - at - 4 >= len) finish();
    });
  });
}

/** Every HTTP answer starts with a status line; every refusal carries a body of the announced length (pipelined answers each). */
function checkHttp(a: Answer, context: string) {
  let text = a.bytes.toString('latin1');
  let checked = 0;
  while (text.length > 0) {
    const at = text.indexOf('\r\n\r\n');
    if (at < 0 && checked > 0) return; // a later pipelined answer, cut where the client stopped reading
    checked++;
    expect(text, context).toMatch(/^HTTP\/1\.1 [1-5][0-9]{2} /);
    expect(at, `${context}: a complete head`).toBeGreaterThan(0);
    const head = text.slice(0, at);
    const status = Number(head.slice(9, 12));
    if (status === 101 || (status === 200 && /Connection established/.test(head))) return;
    const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1]);
    expect(len, `${context}: Content-Length of ${head.split('\r\n')[0]}`).toBeGreaterThan(0);
    const rest = text.slice(at + 4);
    expect(rest.length, `${context}: the body`).toBeGreaterThanOrEqual(len);
    text = rest.slice(len);
  }
}

async function inBatches(n: number, size: number, run: (i: number) => Promise<void>) {
  for (let i = 0; i < n; i += size) await Promise.all(Array.from({ length: Math.min(size, n - i) }, (_, k) => run(i + k)));
}

const enc = (s: string) => new TextEncoder().encode(s);

test('the CONNECT listener survives mutated requests and noise; refusals have bodies; nothing leaks', async () => {
  const corpus = [
    `CONNECT ${NODE_IP}:${port} HTTP/1.1\r\nHost: ${NODE_IP}:${port}\r\n\r\nping`,
    `CONNECT 198.18.5.5:${port} HTTP/1.1\r\n\r\n`,
    `GET http://198.18.5.5:${port}/metrics HTTP/1.1\r\nHost: 198.18.5.5\r\nProxy-Connection: keep-alive\r\n\r\n`,
    'CONNECT 0:80 HTTP/1.1\r\n\r\n',
    'CONNECT [::]:80 HTTP/1.1\r\n\r\n',
    'CONNECT [::ffff:127.0.0.1]:80 HTTP/1.1\r\n\r\n',
    'CONNECT localhost:80 HTTP/1.1\r\nProxy-Authorization: Bearer abc\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
    `CONNECT n1:${port} HTTP/1.1\r\nX: ${'a'.repeat(200)}\r\n\r\n`,
  ].map(enc);
  const { seeds, casesPerSeed } = fuzzPlan('hub CONNECT listener', 2000);
  await exchange(hub.connectAddress!, corpus[0]!, files.egress);
  const fdsBefore = openFds();
  const heapBefore = heapAfterGc();
  for (const seed of seeds) {
    const r = createRandom(seed);
    const inputs = Array.from({ length: casesPerSeed }, () => {
      const raw = r.int(10) === 0;
      return { raw, bytes: raw ? r.bytes(1 + r.int(600)) : mutate(r, r.pick(corpus), 20_000) };
    });
    await inBatches(inputs.length, 32, async (i) => {
      const { raw, bytes } = inputs[i]!;
      const a = await exchange(hub.connectAddress!, bytes, raw ? undefined : files.egress);
      if (!raw) checkHttp(a, `seed ${seed} case ${i} (${JSON.stringify(Buffer.from(bytes.subarray(0, 80)).toString('latin1'))})`);
    });
  }
  await until('the CONNECT listener holds no connection', listenerConnections('connect'), (n) => n === 0);
  const still = await exchange(hub.connectAddress!, corpus[0]!, files.egress);
  expect(still.bytes.toString('latin1')).toStartWith('HTTP/1.1 200 Connection established');
  await until('descriptors back near where they were', openFds, (n) => n <= fdsBefore + 8);
  expect(heapAfterGc() - heapBefore).toBeLessThan(96 * 1024 * 1024);
}, 300_000);

function upgradeHead(r: Random): string {
  const path = r.pick(['/tunnel', '/', '/tunnel?x=1', '/../tunnel']);
  const lines = [`GET ${path} HTTP/1.1`, 'Host: hub', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13'];
  if (r.int(3)) lines.push(`Sec-WebSocket-Protocol: ${r.pick(['tether-tunnel.v1', 'tether-tunnel.v9', ''])}`);
  if (r.int(4) === 0) lines.push('Authorization: Bearer made-up');
  return lines.join('\r\n') + '\r\n\r\n';
}

test('the agent listener survives mutated upgrades, noise and sessions of mutated frames; refusals have bodies; nothing leaks', async () => {
  const { seeds, casesPerSeed } = fuzzPlan('hub agent listener', 2000);
  const fdsBefore = openFds();
  const heapBefore = heapAfterGc();
  const tls = { ca: readFileSync(pki.caFile), cert: readFileSync(files.node2.certFile), key: readFileSync(files.node2.keyFile) };
  for (const seed of seeds) {
    const r = createRandom(seed);
    // Mutated upgrade requests and noise (most inputs).
    const heads = Array.from({ length: Math.floor(casesPerSeed * 0.8) }, () => {
      const raw = r.int(10) === 0;
      const who = r.int(3) === 0 ? files.egress : files.node2;
      return { raw, who, bytes: raw ? r.bytes(1 + r.int(600)) : mutate(r, enc(upgradeHead(r)), 20_000) };
    });
    await inBatches(heads.length, 32, async (i) => {
      const { raw, who, bytes } = heads[i]!;
      const a = await exchange(hub.agentAddress, bytes, raw ? undefined : who);
      if (!raw) checkHttp(a, `seed ${seed} upgrade ${i} (${JSON.stringify(Buffer.from(bytes.subarray(0, 80)).toString('latin1'))})`);
    });
    // Authenticated sessions: a HELLO (valid or mutated), then mutated frames; the hub answers or closes.
    const sessions = Math.ceil((casesPerSeed * 0.2) / 5);
    for (let k = 0; k < sessions; k++) {
      const t = await dialTunnel(`wss://${hub.agentAddress}/tunnel`, tls);
      const closed = new Promise<void>((res) => t.onClose(() => res()));
      t.onMessage(() => {});
      const hello = encodeFrame({ type: 'hello', hello: { node: 'n2', addresses: ['198.18.99.2'], version: 'fuzz' } });
      t.send(r.int(3) === 0 ? mutate(r, hello) : hello);
      for (let f = 0; f < 4; f++) t.send(r.int(4) === 0 ? encodeFrame(sampleFrame(r)) : mutate(r, encodeFrame(sampleFrame(r))));
      t.close(1000, 'fuzz done');
      await closed;
    }
  }
  // The agent's own connection is the one left.
  await until('the agent listener holds only the agent', listenerConnections('agent'), (n) => n === 1);
  expect(agent.connected).toBe(true);
  expect(hub.nodes()).toContain('n1');
  await until('descriptors back near where they were', openFds, (n) => n <= fdsBefore + 8);
  expect(heapAfterGc() - heapBefore).toBeLessThan(96 * 1024 * 1024);
}, 300_000);
