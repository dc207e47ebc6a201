/**
 * Fuzz: the frame decoder takes whatever a hostile peer sends, and so does the inflation of ZDATA. Valid frames of every type are
 * mutated (and pure noise is thrown in); the decoder must never throw, must answer every bad
 * frame with a bounded reason and the right scope, and every frame it accepts must encode back to
 * bytes that decode to the same frame.
 */
import { expect, test } from 'bun:test';
import { PassThrough } from 'node:stream';
import { constants, deflateRawSync } from 'node:zlib';
import { createMemoryLogger } from '../log.ts';
import { createRandom, fuzzPlan, heapAfterGc, mutate, sampleFrame, type Random } from '../../test/support/fuzz.ts';
import { decodeFrame, encodeFrame, FRAME_HEADER_SIZE, MAX_FRAME_PAYLOAD } from './frames.ts';
import { createTransportPair } from './memory-transport.ts';
import { waitFor } from '../../test/support/wait.ts';
import { createTunnelSession, inspectSession } from './session.ts';

/** JSON payloads with hostile keys and shapes, wrapped in a valid header. */
function hostileJson(r: Random): Uint8Array {
  const bodies = [
    '{"__proto__":{"node":"x"},"node":"edge-1","addresses":[],"version":"1"}',
    '{"constructor":{"prototype":{"polluted":true}},"host":"a","port":1,"window":1}',
    '{"node":"edge-1","addresses":' + JSON.stringify(Array.from({ length: 65 }, (_, i) => `10.0.0.${i}`)) + ',"version":"1"}',
    '{"ok":false,"code":"E_X","reason":"' + 'x'.repeat(2000) + '"}',
    '[' .repeat(5000),
    '{"host":"' + 'a'.repeat(300) + '","port":80,"window":1}',
    '{"host":"a b","port":0,"window":-1}',
    '"\\ud800"',
    '{"host":"kube-apiserver","port":0,"window":1,"compress":1}',
    '{"host":"kube-apiserver","port":0,"window":1,"compress":"Answers"}',
    '{"node":"edge-1","addresses":[],"version":"1","compression":' + JSON.stringify(Array(9).fill('deflate')) + '}',
    '{"session":"s","compression":"Deflate"}',
  ];
  const body = new TextEncoder().encode(r.pick(bodies));
  const frame = new Uint8Array(FRAME_HEADER_SIZE + body.length);
  const type = r.pick([0x01, 0x02, 0x10, 0x11]);
  frame[0] = 1;
  frame[1] = type;
  new DataView(frame.buffer).setUint32(2, type >= 0x10 ? 1 + r.int(9) : 0);
  new DataView(frame.buffer).setUint32(6, body.length);
  frame.set(body, FRAME_HEADER_SIZE);
  return frame;
}

test('the frame decoder never throws, scopes every refusal, and re-encodes what it accepts', () => {
  const { seeds, casesPerSeed } = fuzzPlan('frame decoder', 6000);
  const heapBefore = heapAfterGc();
  let accepted = 0;
  let refused = 0;
  for (const seed of seeds) {
    const r = createRandom(seed);
    for (let i = 0; i < casesPerSeed; i++) {
      const kind = r.int(10);
      const input = kind === 0 ? r.bytes(r.int(64)) : kind === 1 ? hostileJson(r) : mutate(r, encodeFrame(sampleFrame(r)), MAX_FRAME_PAYLOAD + 64);
      let d: ReturnType<typeof decodeFrame>;
      try {
        d = decodeFrame(input);
      } catch (e) {
        throw new Error(`seed ${seed} case ${i}: decodeFrame threw ${String(e)} on ${Buffer.from(input.subarray(0, 64)).toString('hex')}`);
      }
      if (d.ok) {
        accepted++;
        const again = decodeFrame(encodeFrame(d.frame));
        expect(again).toEqual({ ok: true, frame: d.frame });
        expect(Object.getPrototypeOf(d.frame)).toBe(Object.prototype);
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      } else {
        refused++;
        expect(typeof d.reason).toBe('string');
        expect(d.reason.length).toBeGreaterThan(0);
        expect(d.reason.length).toBeLessThan(4096);
        if (d.scope === 'stream') expect(d.stream).toBeGreaterThan(0);
      }
    }
  }
  expect(accepted).toBeGreaterThan(0);
  expect(refused).toBeGreaterThan(0);
  expect(heapAfterGc() - heapBefore).toBeLessThan(64 * 1024 * 1024);
}, 120_000);

test('a hub session fed mutated ZDATA never throws: it delivers the bytes or ends with protocol', async () => {
  const { seeds, casesPerSeed } = fuzzPlan('ZDATA inflation', 300);
  const unexpected: unknown[] = [];
  const onError = (e: unknown) => unexpected.push(e);
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  const outcomes = { delivered: 0, protocol: 0 };
  try {
    for (const seed of seeds) {
      const r = createRandom(seed);
      for (let i = 0; i < casesPerSeed; i++) {
        const [hubT, agentT] = createTransportPair();
        const got: Buffer[] = [];
        const hub = createTunnelSession({
          transport: hubT,
          role: 'hub',
          log: createMemoryLogger('error'),
          onOpen: async () => {
            const sink = new PassThrough();
            sink.on('data', (c: Buffer) => got.push(c));
            return sink;
          },
        });
        let ponged = false;
        agentT.onMessage((d) => void (d[1] === 0x04 && (ponged = true)));
        agentT.onClose(() => {});
        const send = (f: Parameters<typeof encodeFrame>[0]) => agentT.send(encodeFrame(f));
        send({ type: 'hello', hello: { node: 'edge-1', addresses: [], version: 'fuzz' }, compression: ['deflate'] });
        await hub.ready;
        send({ type: 'open', stream: 2, host: 'kube-apiserver', port: 0, window: 1 << 20, compress: true });
        await waitFor('the stream is accepted', () => inspectSession(hub).streams === 1);
        const plain = Buffer.from(JSON.stringify({ kind: 'Lease', n: r.int(1e6) }).repeat(1 + r.int(40)));
        const valid = deflateRawSync(plain, { finishFlush: constants.Z_SYNC_FLUSH });
        const data = r.int(8) === 0 ? valid : mutate(r, valid, MAX_FRAME_PAYLOAD).subarray(0, MAX_FRAME_PAYLOAD);
        send({ type: 'zdata', stream: 2, data: data.length > 0 ? data : new Uint8Array([0]) });
        send({ type: 'ping', data: new Uint8Array(8) });
        // The PONG comes only after the ZDATA before it was inflated (frames are handled in order).
        await waitFor('the ZDATA and the PING behind it are handled', () => hub.state === 'closed' || ponged);
        if (hub.state === 'closed') {
          const c = await hub.closed;
          expect(c.code).toBe('protocol');
          outcomes.protocol++;
        } else {
          expect(Buffer.concat(got).length).toBeLessThanOrEqual(MAX_FRAME_PAYLOAD);
          outcomes.delivered++;
          hub.close('done');
        }
        expect(inspectSession(hub).zlibContexts).toBe(0);
      }
    }
  } finally {
    process.off('uncaughtException', onError);
    process.off('unhandledRejection', onError);
  }
  expect(unexpected).toEqual([]);
  expect(outcomes.delivered).toBeGreaterThan(0);
  expect(outcomes.protocol).toBeGreaterThan(0);
}, 120_000);
