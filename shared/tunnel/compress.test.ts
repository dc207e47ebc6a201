/**
 * Compressed api streams: the agent opens `kube-apiserver:0` with `compress: true`, the hub
 * accepts it, and DATA travels as ZDATA through one deflate context per direction.
 */
import { describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { constants, deflateRawSync } from 'node:zlib';
import { createMemoryLogger } from '../log.ts';
import { encodeFrame, MAX_FRAME_PAYLOAD } from './frames.ts';
import { createTransportPair } from './memory-transport.ts';
import { counter, lease, mixedBytes, runCompressContract } from './compress.contract.ts';
import { memoryPairs, wsPairs } from '../../test/support/tunnel-pairs.ts';
import { readAll, writeAll } from '../../test/support/tunnel-session.ts';
import { waitFor } from '../../test/support/wait.ts';
import { createTunnelSession, inspectSession, streamIdOf, type OpenInfo, type TunnelSessionOptions } from './session.ts';

const hello = { node: 'edge-1', addresses: ['198.18.1.2'], version: 'test' };
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface Opts {
  hub?: Partial<TunnelSessionOptions>;
  agent?: Partial<TunnelSessionOptions>;
}

/** A hub that accepts api streams (echo, or the counter for host "count") and an agent. */
async function sessions(o: Opts = {}) {
  const [hubT, agentT] = createTransportPair();
  const infos: { host: string; port: number; info: OpenInfo }[] = [];
  const hub = createTunnelSession({
    transport: hubT,
    role: 'hub',
    log: createMemoryLogger('info'),
    onOpen: async (host, port, info) => {
      infos.push({ host, port, info });
      return host === 'count' ? counter() : new PassThrough();
    },
    ...o.hub,
  });
  const agent = createTunnelSession({ transport: agentT, role: 'agent', log: createMemoryLogger('info'), hello, onOpen: async () => new PassThrough(), ...o.agent });
  await Promise.all([hub.ready, agent.ready]);
  return { hub, agent, hubT, agentT, infos };
}

const bytes = mixedBytes;

runCompressContract(test, memoryPairs());
runCompressContract(test, wsPairs());

describe('compressed api streams', () => {
  test('negotiated by default; the hub accepts the agent-opened api stream and learns it is compressed', async () => {
    const s = await sessions();
    expect(s.agent.compression).toBe('deflate');
    expect(s.hub.compression).toBe('deflate');
    const d = await s.agent.open('kube-apiserver', 0, { compress: true });
    expect(streamIdOf(d)! % 2).toBe(0);
    expect(s.infos).toEqual([{ host: 'kube-apiserver', port: 0, info: { compress: true } }]);
    d.end('ping');
    expect((await readAll(d)).toString()).toBe('ping');
    const plain = await s.agent.open('kube-apiserver', 0);
    expect(s.infos[1]!.info).toEqual({ compress: false });
    plain.destroy();
    s.hub.close('done');
  });

  test('many interleaved streams with MiB bodies round-trip byte for byte, both directions', async () => {
    const s = await sessions();
    const sizes = [5 * 1024 * 1024, 1024 * 1024, 300_000, 65_536, 64_511, 1, 12_345, 2 * 1024 * 1024];
    const results = await Promise.all(
      sizes.map(async (n, k) => {
        const body = bytes(n, k);
        const d = await s.agent.open('kube-apiserver', 0, { compress: true });
        const [echoed] = await Promise.all([readAll(d), writeAll(d, body, 7_000 + k * 1_000, true)]);
        return sha(echoed) === sha(body);
      }),
    );
    expect(results).toEqual(sizes.map(() => true));
    const a = s.agent.stats();
    const h = s.hub.stats();
    const total = sizes.reduce((x, y) => x + y, 0);
    expect(a.apiRawOut).toBe(total);
    expect(a.apiRawIn).toBe(total);
    expect(h.apiRawIn).toBe(total);
    expect(a.apiWireOut).toBe(h.apiWireIn);
    expect(h.apiWireOut).toBe(a.apiWireIn);
    await waitFor('streams released', () => inspectSession(s.agent).streams === 0 && inspectSession(s.hub).streams === 0);
    expect(inspectSession(s.agent).zlibContexts).toBe(2);
    s.agent.close('done');
    await s.hub.closed;
    for (const x of [s.agent, s.hub]) expect(inspectSession(x)).toMatchObject({ zlibContexts: 0, queuedFrames: 0, streams: 0, timers: 0 });
  }, 60_000);

  test('FIN follows the data: the hub sees every byte before end', async () => {
    const s = await sessions();
    const body = bytes(3 * 1024 * 1024 + 17, 9);
    const d = await s.agent.open('count', 0, { compress: true });
    const [reply] = await Promise.all([readAll(d), writeAll(d, body, 100_000, true)]);
    expect(reply.toString()).toBe(`got ${body.length} bytes`);
    s.hub.close('done');
  });

  test('100 lease bodies on 100 streams share the context: wire bytes far below raw', async () => {
    const s = await sessions();
    for (let i = 0; i < 100; i++) {
      const d = await s.agent.open('kube-apiserver', 0, { compress: true });
      d.end(lease(i));
      expect((await readAll(d)).toString()).toBe(lease(i));
    }
    const a = s.agent.stats();
    // Measured: about 25× smaller (a lease renewal costs ~15 bytes once the context knows one);
    // one tenth of the raw size leaves room for zlib versions.
    expect(a.apiRawOut).toBe(Array.from({ length: 100 }, (_, i) => lease(i).length).reduce((x, y) => x + y, 0));
    expect(a.apiWireOut).toBeLessThan(a.apiRawOut / 10);
    expect(a.apiWireIn).toBeLessThan(a.apiRawIn / 10);
    s.hub.close('done');
  });

  test('a hub with compression none answers none: streams work uncompressed, no zlib context', async () => {
    const s = await sessions({ hub: { compression: 'none' } });
    expect(s.agent.compression).toBe('none');
    expect(s.hub.compression).toBe('none');
    const d = await s.agent.open('kube-apiserver', 0, { compress: true });
    expect(s.infos[0]!.info).toEqual({ compress: false });
    d.end('plain');
    expect((await readAll(d)).toString()).toBe('plain');
    expect(s.agent.stats()).toMatchObject({ apiRawOut: 0, apiWireOut: 0, apiRawIn: 0, apiWireIn: 0, bytesOut: 5 });
    expect(inspectSession(s.agent).zlibContexts).toBe(0);
    s.hub.close('done');
  });

  test('an agent with compression none offers nothing', async () => {
    const s = await sessions({ agent: { compression: 'none' } });
    expect(s.hub.compression).toBe('none');
    const d = await s.agent.open('kube-apiserver', 0, { compress: true });
    d.end('x');
    expect((await readAll(d)).toString()).toBe('x');
    s.hub.close('done');
  });

  test('the hub still refuses agent-opened streams when it has no onOpen', async () => {
    const [hubT, agentT] = createTransportPair();
    const hub = createTunnelSession({ transport: hubT, role: 'hub', log: createMemoryLogger('info') });
    const agent = createTunnelSession({ transport: agentT, role: 'agent', log: createMemoryLogger('info'), hello });
    await agent.ready;
    await expect(agent.open('kube-apiserver', 0, { compress: true })).rejects.toThrow(/accepts no streams/);
    hub.close('done');
  });
});

describe('compressed api streams: a hostile peer', () => {
  /** A compressed stream open on the hub, with no ZDATA yet (the hub's inflate context is fresh). */
  async function openQuiet() {
    const s = await sessions();
    const d = await s.agent.open('kube-apiserver', 0, { compress: true });
    d.on('error', () => {});
    return { ...s, sid: streamIdOf(d)! };
  }
  const zdata = (stream: number, data: Uint8Array) => encodeFrame({ type: 'zdata', stream, data });

  test('a decompression bomb (1 MiB of zeros in one frame) closes the session with protocol', async () => {
    const s = await openQuiet();
    const bomb = deflateRawSync(Buffer.alloc(1024 * 1024), { finishFlush: constants.Z_SYNC_FLUSH });
    expect(bomb.length).toBeLessThan(MAX_FRAME_PAYLOAD);
    s.hubT.inject(zdata(s.sid, bomb));
    const closed = await s.hub.closed;
    expect(closed.code).toBe('protocol');
    expect(closed.reason).toMatch(/output of one frame exceeds 65536 bytes/);
    expect((await s.agent.closed).code).toBe('protocol');
    expect(inspectSession(s.hub).zlibContexts).toBe(0);
  });

  test('corrupt deflate data closes the session with protocol', async () => {
    const s = await openQuiet();
    s.hubT.inject(zdata(s.sid, new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x00, 0x12, 0x34])));
    const closed = await s.hub.closed;
    expect(closed.code).toBe('protocol');
    expect(closed.reason).toMatch(/ZDATA on stream \d+: inflate:/);
  });

  test('ZDATA on a stream that is not compressed closes the session', async () => {
    const s = await sessions();
    const d = await s.agent.open('kube-apiserver', 0);
    d.on('error', () => {});
    s.hubT.inject(zdata(streamIdOf(d)!, deflateRawSync(Buffer.from('x'), { finishFlush: constants.Z_SYNC_FLUSH })));
    expect(await s.hub.closed).toMatchObject({ code: 'protocol', reason: expect.stringMatching(/which is not compressed/) });
  });

  test('ZDATA when the session negotiated no compression closes the session', async () => {
    const s = await sessions({ hub: { compression: 'none' } });
    s.hubT.inject(zdata(2, deflateRawSync(Buffer.from('x'), { finishFlush: constants.Z_SYNC_FLUSH })));
    expect(await s.hub.closed).toMatchObject({ code: 'protocol', reason: expect.stringMatching(/negotiated no compression/) });
  });

  test('plain DATA on a compressed stream closes the session', async () => {
    const s = await openQuiet();
    s.hubT.inject(encodeFrame({ type: 'data', stream: s.sid, data: new Uint8Array([1]) }));
    expect(await s.hub.closed).toMatchObject({ code: 'protocol', reason: expect.stringMatching(/which is compressed/) });
  });

  test('a WELCOME choosing a method the agent did not offer closes the session', async () => {
    const [hubT, agentT] = createTransportPair();
    hubT.onMessage(() => {});
    const agent = createTunnelSession({ transport: agentT, role: 'agent', log: createMemoryLogger('info'), hello, compression: 'none' });
    agentT.inject(encodeFrame({ type: 'welcome', session: 'x', compression: 'deflate' }));
    expect(await agent.closed).toMatchObject({ code: 'protocol', reason: expect.stringMatching(/not offered/) });
  });
});
