/**
 * The compression contract: compressed api streams over any transport pair, under Bun
 * (compress.test.ts) and Node 20 (tunnel.node.contract.ts), since zlib differs between the two.
 * node:assert only.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Duplex, PassThrough } from 'node:stream';
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { createMemoryLogger } from '../log.ts';
import { decodeFrame, encodeFrame, type Frame } from './frames.ts';
import type { PairFactory } from '../../test/support/tunnel-pairs.ts';
import { readAll, writeAll } from '../../test/support/tunnel-session.ts';
import { waitFor } from '../../test/support/wait.ts';
import { createTunnelSession, inspectSession, type OpenInfo, type TunnelSession, type TunnelSessionOptions, type TunnelTransport } from './session.ts';
import type { TestFn } from './session.contract.ts';

const hello = { node: 'edge-1', addresses: ['198.18.1.2'], version: 'test' };
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Counts the bytes it gets and answers "got N bytes" after the writer's FIN. */
export const counter = () => {
  let n = 0;
  return new Duplex({
    read() {},
    write(c: Buffer, _e, cb) {
      n += c.length;
      cb();
    },
    final(cb) {
      this.push(`got ${n} bytes`);
      this.push(null);
      cb();
    },
  });
};

/** Half compressible text, half noise, so both deflate paths (matches, literals) run. */
export const mixedBytes = (n: number, seed: number) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i % 2048 < 1024 ? 0x61 + ((i >> 4) % 26) : (Math.imul(i + seed, 2654435761) >>> 24) & 0xff;
  return b;
};

export const lease = (i: number) =>
  JSON.stringify({
    kind: 'Lease',
    apiVersion: 'coordination.k8s.io/v1',
    metadata: { name: 'edge-1', namespace: 'kube-node-lease', uid: 'b6f1a3c2-5d4e-4f1a-9c8b-7e6d5c4b3a21', resourceVersion: String(100000 + i * 7) },
    spec: { holderIdentity: 'edge-1', leaseDurationSeconds: 40, renewTime: `2026-12-03T09:${String(i % 60).padStart(2, '0')}:00.123456Z` },
  });

interface ApiPair {
  hub: TunnelSession;
  agent: TunnelSession;
  infos: { host: string; port: number; info: OpenInfo }[];
}

/** A hub that accepts api streams (echo; the counter for host "count") and an agent. */
async function apiPair(factory: PairFactory, o: { hub?: Partial<TunnelSessionOptions>; agent?: Partial<TunnelSessionOptions> } = {}) {
  const pair = await factory.create();
  const infos: ApiPair['infos'] = [];
  const hub = createTunnelSession({
    transport: pair.hub,
    role: 'hub',
    log: createMemoryLogger('info'),
    onOpen: async (host, port, info) => {
      infos.push({ host, port, info });
      return host === 'count' ? counter() : new PassThrough();
    },
    ...o.hub,
  });
  const agent = createTunnelSession({ transport: pair.agent, role: 'agent', log: createMemoryLogger('info'), hello, onOpen: async () => new PassThrough(), ...o.agent });
  await Promise.all([hub.ready, agent.ready]);
  return {
    hub,
    agent,
    infos,
    dispose: async () => {
      hub.close('test done');
      agent.close('test done');
      await pair.dispose();
    },
  };
}

/** A raw peer: frames written by hand, frames received queued (and every type seen, kept). */
function rawPeer(t: TunnelTransport) {
  const got: Frame[] = [];
  const seen: Frame['type'][] = [];
  t.onMessage((d) => {
    const r = decodeFrame(d);
    if (r.ok) got.push(r.frame), seen.push(r.frame.type);
  });
  t.onClose(() => {});
  return {
    seen,
    send: (f: Frame) => t.send(encodeFrame(f)),
    next: async <T extends Frame['type']>(type: T) => {
      await waitFor(`a ${type} frame`, () => got.some((f) => f.type === type));
      return got.splice(got.findIndex((f) => f.type === type), 1)[0]! as Extract<Frame, { type: T }>;
    },
  };
}

/** A raw hub on `t` that has welcomed the agent with deflate. */
async function rawHub(t: TunnelTransport) {
  const peer = rawPeer(t);
  await peer.next('hello');
  peer.send({ type: 'welcome', session: 'raw', compression: 'deflate' });
  return peer;
}

/** A raw agent on `t`, welcomed with deflate, with stream 2 open as compress 'answers'. */
async function rawAgentWithAnswersStream(t: TunnelTransport) {
  const peer = rawPeer(t);
  peer.send({ type: 'hello', hello, compression: ['deflate'] });
  assert.equal((await peer.next('welcome')).compression, 'deflate');
  peer.send({ type: 'open', stream: 2, host: 'kube-apiserver', port: 0, window: 1 << 20, compress: 'answers' });
  assert.equal((await peer.next('open-result')).result.ok, true);
  return peer;
}

const syncDeflate = (text: string) => deflateRawSync(Buffer.from(text), { finishFlush: constants.Z_SYNC_FLUSH });
const request = 'GET /api/v1/namespaces/kube-system/pods?watch=1 HTTP/1.1\r\nAuthorization: Bearer s3cr3t-token\r\n\r\n';

export function runCompressContract(test: TestFn, factory: PairFactory): void {
  const t = (name: string, fn: () => Promise<void>) => test(`${factory.name}: compression: ${name}`, fn);

  t('interleaved compressed streams round-trip MiB bodies byte for byte; the hub learns compress from OPEN', async () => {
    const s = await apiPair(factory);
    try {
      assert.equal(s.agent.compression, 'deflate');
      assert.equal(s.hub.compression, 'deflate');
      const sizes = [2 * 1024 * 1024, 300_000, 65_536, 64_511, 1, 12_345];
      const ok = await Promise.all(
        sizes.map(async (n, k) => {
          const body = mixedBytes(n, k);
          const d = await s.agent.open('kube-apiserver', 0, { compress: true });
          const [echoed] = await Promise.all([readAll(d), writeAll(d, body, 7_000 + k * 1_000, true)]);
          return sha(echoed) === sha(body);
        }),
      );
      assert.deepEqual(ok, sizes.map(() => true));
      assert.deepEqual(s.infos[0], { host: 'kube-apiserver', port: 0, info: { compress: true } });
      const total = sizes.reduce((x, y) => x + y, 0);
      const a = s.agent.stats();
      const h = s.hub.stats();
      assert.deepEqual([a.apiRawOut, a.apiRawIn, h.apiRawIn, h.apiRawOut], [total, total, total, total]);
      assert.equal(a.apiWireOut, h.apiWireIn);
      assert.equal(h.apiWireOut, a.apiWireIn);
      await waitFor('streams released', () => inspectSession(s.agent).streams === 0 && inspectSession(s.hub).streams === 0);
      assert.equal(inspectSession(s.agent).zlibContexts, 2);
      s.agent.close('done');
      await s.hub.closed;
      for (const x of [s.agent, s.hub]) assert.deepEqual([inspectSession(x).zlibContexts, inspectSession(x).queuedFrames], [0, 0]);
    } finally {
      await s.dispose();
    }
  });

  t('FIN follows the data: the hub reads every byte before end', async () => {
    const s = await apiPair(factory);
    try {
      const body = mixedBytes(1024 * 1024 + 17, 9);
      const d = await s.agent.open('count', 0, { compress: true });
      const [reply] = await Promise.all([readAll(d), writeAll(d, body, 100_000, true)]);
      assert.equal(reply.toString(), `got ${body.length} bytes`);
    } finally {
      await s.dispose();
    }
  });

  t('ZDATA for a stream reset mid-transfer is still inflated: the shared context stays in sync', async () => {
    const s = await apiPair(factory);
    try {
      for (let i = 0; i < 5; i++) {
        const doomed = await s.agent.open('kube-apiserver', 0, { compress: true });
        doomed.on('error', () => {});
        doomed.on('data', () => doomed.destroy()); // reset once the echo starts flowing back
        doomed.write(mixedBytes(600_000, i));
      }
      const d = await s.agent.open('kube-apiserver', 0, { compress: true });
      const body = mixedBytes(500_000, 42);
      const [echoed] = await Promise.all([readAll(d), writeAll(d, body, 30_000, true)]);
      assert.equal(sha(echoed), sha(body));
      await waitFor('streams released', () => inspectSession(s.agent).streams === 0 && inspectSession(s.hub).streams === 0);
      assert.equal(s.hub.state, 'open');
    } finally {
      await s.dispose();
    }
  });

  t('1,000 compressed open/close cycles leave no stream, queue or timer; close frees zlib', async () => {
    const s = await apiPair(factory);
    try {
      for (let i = 0; i < 1000; i++) {
        const d = await s.agent.open('kube-apiserver', 0, { compress: true });
        d.end(lease(i));
        await readAll(d);
      }
      await waitFor('streams released', () => inspectSession(s.agent).streams === 0 && inspectSession(s.hub).streams === 0);
      for (const x of [s.agent, s.hub]) {
        assert.deepEqual(inspectSession(x), { state: 'open', streams: 0, pendingOpens: 0, dials: 0, scheduled: 0, timers: 1, zlibContexts: 2, queuedFrames: 0 });
      }
      s.hub.close('done');
      await s.agent.closed;
      for (const x of [s.agent, s.hub]) assert.deepEqual([inspectSession(x).zlibContexts, inspectSession(x).timers], [0, 0]);
    } finally {
      await s.dispose();
    }
  });

  t('draining waits for the last compressed data and FIN before the session closes', async () => {
    const s = await apiPair(factory);
    try {
      const d = await s.agent.open('count', 0, { compress: true });
      s.agent.drain('agent stopping');
      const body = mixedBytes(200_000, 3);
      const [reply] = await Promise.all([readAll(d), writeAll(d, body, 50_000, true)]);
      assert.equal(reply.toString(), `got ${body.length} bytes`);
      assert.equal((await s.hub.closed).code, 'drained');
      assert.equal((await s.agent.closed).code, 'drained');
    } finally {
      await s.dispose();
    }
  });

  t('100 lease bodies on 100 streams share the context: wire under a tenth of raw', async () => {
    const s = await apiPair(factory);
    try {
      for (let i = 0; i < 100; i++) {
        const d = await s.agent.open('kube-apiserver', 0, { compress: true });
        d.end(lease(i));
        assert.equal((await readAll(d)).toString(), lease(i));
      }
      const a = s.agent.stats();
      // Measured about 25× smaller; a tenth leaves room for other zlib versions.
      assert.equal(a.apiRawOut, Array.from({ length: 100 }, (_, i) => lease(i).length).reduce((x, y) => x + y, 0));
      assert.ok(a.apiWireOut < a.apiRawOut / 10, `wire ${a.apiWireOut} vs raw ${a.apiRawOut}`);
      assert.ok(a.apiWireIn < a.apiRawIn / 10, `wire ${a.apiWireIn} vs raw ${a.apiRawIn}`);
    } finally {
      await s.dispose();
    }
  });

  t('a hub with compression none answers none; the stream works uncompressed', async () => {
    const s = await apiPair(factory, { hub: { compression: 'none' } });
    try {
      assert.equal(s.agent.compression, 'none');
      const d = await s.agent.open('kube-apiserver', 0, { compress: true });
      assert.deepEqual(s.infos[0]!.info, { compress: false });
      d.end('plain');
      assert.equal((await readAll(d)).toString(), 'plain');
      const a = s.agent.stats();
      assert.deepEqual([a.apiRawOut, a.apiWireOut, a.bytesOut], [0, 0, 5]);
      assert.equal(inspectSession(s.agent).zlibContexts, 0);
    } finally {
      await s.dispose();
    }
  });

  for (const [what, payload, reason] of [
    ['a decompression bomb (1 MiB of zeros in one frame)', deflateRawSync(Buffer.alloc(1024 * 1024), { finishFlush: constants.Z_SYNC_FLUSH }), /output of one frame exceeds 65536 bytes/],
    ['corrupt deflate data', Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00, 0x12, 0x34]), /inflate:/],
  ] as const) {
    t(`${what} from the agent closes the hub's session with protocol`, async () => {
      const pair = await factory.create();
      try {
        const hub = createTunnelSession({ transport: pair.hub, role: 'hub', log: createMemoryLogger('info'), onOpen: async () => new PassThrough() });
        const peer = rawPeer(pair.agent);
        peer.send({ type: 'hello', hello, compression: ['deflate'] });
        assert.equal(((await peer.next('welcome')) as Extract<Frame, { type: 'welcome' }>).compression, 'deflate');
        peer.send({ type: 'open', stream: 2, host: 'kube-apiserver', port: 0, window: 1 << 20, compress: true });
        await peer.next('open-result');
        peer.send({ type: 'zdata', stream: 2, data: payload });
        const closed = await hub.closed;
        assert.equal(closed.code, 'protocol');
        assert.match(closed.reason, reason);
        assert.equal(inspectSession(hub).zlibContexts, 0);
      } finally {
        await pair.dispose();
      }
    });
  }
  t("'answers' streams deliver both ways; only the acceptor's bytes are ZDATA, and only they are counted", async () => {
    const s = await apiPair(factory);
    try {
      const body = mixedBytes(1024 * 1024 + 5, 11);
      const d = await s.agent.open('kube-apiserver', 0, { compress: 'answers' });
      const [echoed] = await Promise.all([readAll(d), writeAll(d, body, 40_000, true)]);
      assert.equal(sha(echoed), sha(body));
      assert.deepEqual(s.infos[0], { host: 'kube-apiserver', port: 0, info: { compress: true, direction: 'answers' } });
      const a = s.agent.stats();
      const h = s.hub.stats();
      assert.deepEqual([a.apiRawOut, a.apiWireOut, h.apiRawIn, h.apiWireIn], [0, 0, 0, 0], 'the opener sent no ZDATA');
      assert.deepEqual([a.bytesOut, h.bytesIn, a.apiRawIn, h.apiRawOut], [body.length, body.length, body.length, body.length]);
      assert.ok(a.apiWireIn > 0 && a.apiWireIn === h.apiWireOut, `wire in ${a.apiWireIn}, hub wire out ${h.apiWireOut}`);
      await waitFor('streams released', () => inspectSession(s.agent).streams === 0 && inspectSession(s.hub).streams === 0);
      // One context each: the agent never deflated, the hub never inflated.
      assert.deepEqual([inspectSession(s.agent).zlibContexts, inspectSession(s.hub).zlibContexts], [1, 1]);
    } finally {
      await s.dispose();
    }
  });

  t("the hub may open an 'answers' stream too: the agent's onOpen learns it, the agent's answers are ZDATA", async () => {
    const pair = await factory.create();
    const infos: OpenInfo[] = [];
    const hub = createTunnelSession({ transport: pair.hub, role: 'hub', log: createMemoryLogger('info') });
    const agent = createTunnelSession({
      transport: pair.agent,
      role: 'agent',
      log: createMemoryLogger('info'),
      hello,
      onOpen: async (_h, _p, info) => (infos.push(info), new PassThrough()),
    });
    try {
      await Promise.all([hub.ready, agent.ready]);
      const body = mixedBytes(300_000, 5);
      const d = await hub.open('198.18.1.2', 10250, { compress: 'answers' });
      const [echoed] = await Promise.all([readAll(d), writeAll(d, body, 30_000, true)]);
      assert.equal(sha(echoed), sha(body));
      assert.deepEqual(infos, [{ compress: true, direction: 'answers' }]);
      const a = agent.stats();
      const h = hub.stats();
      assert.deepEqual([h.apiRawOut, a.apiRawIn, h.apiRawIn, a.apiRawOut], [0, 0, body.length, body.length]);
    } finally {
      hub.close('test done');
      agent.close('test done');
      await pair.dispose();
    }
  });

  t("on the wire, the opener's bytes are plain DATA and the acceptor's ZDATA (a raw hub reads what the agent sends)", async () => {
    const pair = await factory.create();
    const agent = createTunnelSession({ transport: pair.agent, role: 'agent', log: createMemoryLogger('info'), hello });
    try {
      const raw = await rawHub(pair.hub);
      await agent.ready;
      const opening = agent.open('kube-apiserver', 0, { compress: 'answers' });
      const open = await raw.next('open');
      assert.equal(open.compress, 'answers');
      raw.send({ type: 'open-result', stream: open.stream, result: { ok: true, window: 1 << 20 } });
      const d = await opening;
      d.write(request);
      const data = await raw.next('data');
      assert.equal(Buffer.from(data.data).toString(), request, 'the request, token included, crossed the wire as it was written');
      assert.ok(!raw.seen.includes('zdata'), 'the opener sent no ZDATA');
      const answer = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"type":"ADDED"}';
      raw.send({ type: 'zdata', stream: open.stream, data: syncDeflate(answer) });
      raw.send({ type: 'close', stream: open.stream, reset: false, reason: '' });
      d.end();
      assert.equal((await readAll(d)).toString(), answer);
      assert.deepEqual([agent.stats().apiRawIn, agent.stats().apiRawOut], [answer.length, 0]);
      assert.equal(inspectSession(agent).zlibContexts, 1);
    } finally {
      agent.close('test done');
      await pair.dispose();
    }
  });

  t("on the wire, the acceptor answers an 'answers' stream with ZDATA and reads the opener's plain DATA (a raw agent)", async () => {
    const pair = await factory.create();
    const got: string[] = [];
    const infos: OpenInfo[] = [];
    const hub = createTunnelSession({
      transport: pair.hub,
      role: 'hub',
      log: createMemoryLogger('info'),
      onOpen: async (_h, _p, info) => {
        infos.push(info);
        const echo = new PassThrough();
        echo.on('data', (c: Buffer) => got.push(c.toString()));
        return echo;
      },
    });
    try {
      const raw = await rawAgentWithAnswersStream(pair.agent);
      raw.send({ type: 'data', stream: 2, data: Buffer.from(request) });
      const z = await raw.next('zdata');
      assert.equal(inflateRawSync(z.data, { finishFlush: constants.Z_SYNC_FLUSH }).toString(), request);
      assert.ok(!raw.seen.includes('data'), 'the acceptor sent no plain DATA');
      assert.deepEqual(got, [request]);
      assert.deepEqual(infos, [{ compress: true, direction: 'answers' }]);
      assert.equal(hub.state, 'open');
    } finally {
      hub.close('test done');
      await pair.dispose();
    }
  });

  t("hostile: ZDATA from the opener on an 'answers' stream closes the acceptor's session with GOAWAY protocol", async () => {
    const pair = await factory.create();
    const hub = createTunnelSession({ transport: pair.hub, role: 'hub', log: createMemoryLogger('info'), onOpen: async () => new PassThrough() });
    try {
      const raw = await rawAgentWithAnswersStream(pair.agent);
      raw.send({ type: 'zdata', stream: 2, data: syncDeflate(request) });
      const closed = await hub.closed;
      assert.equal(closed.code, 'protocol');
      assert.match(closed.reason, /ZDATA on stream 2, which is not compressed in this direction/);
      assert.equal((await raw.next('goaway')).code, 'protocol');
      assert.equal(inspectSession(hub).zlibContexts, 0);
    } finally {
      await pair.dispose();
    }
  });

  t("hostile: plain DATA from the acceptor on an 'answers' stream closes the opener's session with GOAWAY protocol", async () => {
    const pair = await factory.create();
    const agent = createTunnelSession({ transport: pair.agent, role: 'agent', log: createMemoryLogger('info'), hello });
    try {
      const raw = await rawHub(pair.hub);
      await agent.ready;
      const opening = agent.open('kube-apiserver', 0, { compress: 'answers' });
      const open = await raw.next('open');
      raw.send({ type: 'open-result', stream: open.stream, result: { ok: true, window: 1 << 20 } });
      (await opening).on('error', () => {});
      raw.send({ type: 'data', stream: open.stream, data: Buffer.from('HTTP/1.1 200 OK\r\n\r\n') });
      const closed = await agent.closed;
      assert.equal(closed.code, 'protocol');
      assert.match(closed.reason, /DATA on stream \d+, which is compressed/);
      assert.equal((await raw.next('goaway')).code, 'protocol');
    } finally {
      await pair.dispose();
    }
  });

  t("'answers' on a session without compression is a plain stream", async () => {
    const s = await apiPair(factory, { hub: { compression: 'none' } });
    try {
      const d = await s.agent.open('kube-apiserver', 0, { compress: 'answers' });
      assert.deepEqual(s.infos[0]!.info, { compress: false });
      d.end('plain');
      assert.equal((await readAll(d)).toString(), 'plain');
      assert.deepEqual([s.agent.stats().apiRawIn, s.hub.stats().apiRawOut], [0, 0]);
    } finally {
      await s.dispose();
    }
  });
}
