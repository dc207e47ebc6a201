/**
 * The compression contract: compressed api streams over any transport pair, under Bun
 * (compress.test.ts) and Node 20 (tunnel.node.contract.ts), since zlib differs between the two.
 * node:assert only.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Duplex, PassThrough } from 'node:stream';
import { constants, deflateRawSync } from 'node:zlib';
import { createMemoryLogger } from '../log.ts';
import { decodeFrame, encodeFrame, type Frame } from './frames.ts';
import type { PairFactory } from './_test-pairs.ts';
import { readAll, until, writeAll } from './_test-session.ts';
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

/** A raw agent: frames written by hand, frames received queued. */
function rawPeer(t: TunnelTransport) {
  const got: Frame[] = [];
  t.onMessage((d) => {
    const r = decodeFrame(d);
    if (r.ok) got.push(r.frame);
  });
  t.onClose(() => {});
  return {
    send: (f: Frame) => t.send(encodeFrame(f)),
    next: async (type: Frame['type']) => {
      await until(() => got.some((f) => f.type === type), `a ${type} frame`);
      return got.splice(got.findIndex((f) => f.type === type), 1)[0]!;
    },
  };
}

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
      await until(() => inspectSession(s.agent).streams === 0 && inspectSession(s.hub).streams === 0, 'streams released');
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
      await until(() => inspectSession(s.agent).streams === 0 && inspectSession(s.hub).streams === 0, 'streams released');
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
      await until(() => inspectSession(s.agent).streams === 0 && inspectSession(s.hub).streams === 0, 'streams released');
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
}
