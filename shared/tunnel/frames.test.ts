import { describe, expect, test } from 'bun:test';
import { ErrorCode, isTetherError } from '../errors.ts';
import {
  clampReason,
  decodeFrame,
  encodeFrame,
  FRAME_HEADER_SIZE,
  FrameType,
  MAX_FRAME_PAYLOAD,
  MAX_REASON_BYTES,
  TUNNEL_PROTOCOL_VERSION,
  type DecodeResult,
  type Frame,
} from './frames.ts';

const hello = { node: 'edge-1.example', addresses: ['198.18.1.2', 'fe80::1%eth0', 'edge-1'], version: '0.1.0 (commit abc)' };

const samples: Frame[] = [
  { type: 'hello', hello },
  { type: 'hello', hello, compression: ['deflate', 'zstd'] },
  { type: 'welcome', session: 'a1b2c3d4' },
  { type: 'welcome', session: 'a1b2c3d4', compression: 'deflate' },
  { type: 'ping', data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]) },
  { type: 'pong', data: new Uint8Array([8, 7, 6, 5, 4, 3, 2, 1]) },
  { type: 'drain', reason: 'hub replica stopping' },
  { type: 'drain', reason: '' },
  { type: 'goaway', code: 'refused', reason: 'node edge-2 is not yours' },
  { type: 'goaway', code: 'replaced', reason: 'ünïcödé ✓' },
  { type: 'open', stream: 1, host: '198.18.1.2', port: 10250, window: 262144 },
  { type: 'open', stream: 0xffffffff, host: 'edge-1.local', port: 65535, window: 0x7fffffff },
  { type: 'open', stream: 2, host: 'kube-apiserver', port: 0, window: 262144, compress: true },
  { type: 'open', stream: 4, host: 'kube-apiserver', port: 0, window: 262144, compress: 'answers' },
  { type: 'open-result', stream: 1, result: { ok: true, window: 65536 } },
  { type: 'open-result', stream: 3, result: { ok: false, code: 'E_TUNNEL_DENIED', reason: 'destination 10.0.0.1:22 not allowed' } },
  { type: 'data', stream: 5, data: new Uint8Array([0, 255, 1, 254]) },
  { type: 'data', stream: 5, data: new Uint8Array(MAX_FRAME_PAYLOAD).fill(7) },
  { type: 'zdata', stream: 2, data: new Uint8Array([0x4a, 0x4c, 0x4a, 0x06, 0x00]) },
  { type: 'credit', stream: 5, increment: 131072 },
  { type: 'close', stream: 5, reset: false, reason: '' },
  { type: 'close', stream: 5, reset: true, reason: 'destination: read ECONNRESET' },
];

function frame(type: number, stream: number, payload: Uint8Array | string, opts: { version?: number; length?: number } = {}): Uint8Array {
  const p = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
  const out = new Uint8Array(FRAME_HEADER_SIZE + p.length);
  const v = new DataView(out.buffer);
  out[0] = opts.version ?? TUNNEL_PROTOCOL_VERSION;
  out[1] = type;
  v.setUint32(2, stream);
  v.setUint32(6, opts.length ?? p.length);
  out.set(p, FRAME_HEADER_SIZE);
  return out;
}

function rejected(r: DecodeResult, scope: 'session' | 'stream', reason: RegExp, stream?: number) {
  expect(r.ok).toBe(false);
  if (r.ok) return;
  expect(r.scope).toBe(scope);
  expect(r.reason).toMatch(reason);
  if (stream !== undefined && r.scope === 'stream') expect(r.stream).toBe(stream);
}

describe('frames: round trips', () => {
  for (const f of samples) {
    test(`${f.type}${'stream' in f ? ` #${f.stream}` : ''} (sample ${samples.indexOf(f)}) decodes to what was encoded`, () => {
      const bytes = encodeFrame(f);
      expect(bytes[0]).toBe(TUNNEL_PROTOCOL_VERSION);
      const r = decodeFrame(bytes);
      expect(r).toEqual({ ok: true, frame: f });
    });
  }

  test('the header is version, type, stream id and length, big-endian', () => {
    const bytes = encodeFrame({ type: 'credit', stream: 0x01020304, increment: 0x0a0b0c0d });
    expect([...bytes]).toEqual([TUNNEL_PROTOCOL_VERSION, FrameType.Credit, 1, 2, 3, 4, 0, 0, 0, 4, 0x0a, 0x0b, 0x0c, 0x0d]);
  });

  test('a frame decoded from a slice of a larger buffer reads its own bytes', () => {
    const inner = encodeFrame({ type: 'data', stream: 9, data: new Uint8Array([42, 43]) });
    const big = new Uint8Array(100);
    big.set(inner, 37);
    expect(decodeFrame(big.subarray(37, 37 + inner.length))).toEqual({ ok: true, frame: { type: 'data', stream: 9, data: new Uint8Array([42, 43]) } });
  });

  test('unknown JSON fields are ignored (a compatible addition)', () => {
    const r = decodeFrame(frame(FrameType.Open, 7, JSON.stringify({ host: 'a', port: 1, window: 10, priority: 'high' })));
    expect(r).toEqual({ ok: true, frame: { type: 'open', stream: 7, host: 'a', port: 1, window: 10 } });
  });

  test('an unknown GOAWAY code from a newer peer reads as normal', () => {
    const r = decodeFrame(frame(FrameType.GoAway, 0, new Uint8Array([200, 0x68, 0x69])));
    expect(r).toEqual({ ok: true, frame: { type: 'goaway', code: 'normal', reason: 'hi' } });
  });

  test('encoding cuts long reasons to the limit without splitting a character', () => {
    const long = 'é'.repeat(2000);
    const r = decodeFrame(encodeFrame({ type: 'close', stream: 1, reset: true, reason: long }));
    expect(r.ok).toBe(true);
    if (r.ok && r.frame.type === 'close') {
      expect(new TextEncoder().encode(r.frame.reason).length).toBeLessThanOrEqual(MAX_REASON_BYTES);
      expect(r.frame.reason.endsWith('é...')).toBe(true);
    }
    expect(clampReason('short')).toBe('short');
  });

  test('encoding a payload over the limit throws E_TUNNEL_PROTOCOL', () => {
    let thrown: unknown;
    try {
      encodeFrame({ type: 'data', stream: 1, data: new Uint8Array(MAX_FRAME_PAYLOAD + 1) });
    } catch (e) {
      thrown = e;
    }
    expect(isTetherError(thrown, ErrorCode.TunnelProtocol)).toBe(true);
    expect((thrown as Error).message).toMatch(/^encode data frame: payload of 65537 bytes exceeds 65536/);
  });
});

describe('frames: malformed input', () => {
  test('truncated header closes the session', () => {
    rejected(decodeFrame(new Uint8Array([1, 0x12, 0, 0])), 'session', /truncated frame: 4 bytes/);
    rejected(decodeFrame(new Uint8Array(0)), 'session', /truncated frame: 0 bytes/);
  });

  test('wrong version closes the session', () => {
    rejected(decodeFrame(frame(FrameType.Data, 1, 'x', { version: 2 })), 'session', /unsupported protocol version 2 \(this side speaks 1\)/);
  });

  test('unknown type closes the session, even on a stream id', () => {
    rejected(decodeFrame(frame(0x7f, 3, 'x')), 'session', /unknown frame type 0x7f/);
  });

  test('a control frame on a stream id, or a stream frame on stream 0, closes the session', () => {
    rejected(decodeFrame(frame(FrameType.Ping, 1, new Uint8Array(8))), 'session', /ping frame on stream 1/);
    rejected(decodeFrame(frame(FrameType.Data, 0, 'x')), 'session', /data frame on stream 0/);
  });

  test('truncated payload: a stream frame resets its stream, a control frame closes the session', () => {
    const data = frame(FrameType.Data, 5, 'abcdef');
    rejected(decodeFrame(data.subarray(0, data.length - 2)), 'stream', /data frame: truncated: 4 of 6 payload bytes/, 5);
    const ping = frame(FrameType.Ping, 0, new Uint8Array(8));
    rejected(decodeFrame(ping.subarray(0, ping.length - 1)), 'session', /ping frame: truncated: 7 of 8/);
  });

  test('bytes after the payload are malformed', () => {
    rejected(decodeFrame(frame(FrameType.Credit, 3, new Uint8Array([0, 0, 0, 1, 9]), { length: 4 })), 'stream', /1 bytes after the payload/, 3);
  });

  test('oversized: a length over the limit is rejected before anything is read', () => {
    rejected(decodeFrame(frame(FrameType.Data, 9, 'x', { length: MAX_FRAME_PAYLOAD + 1 })), 'stream', /payload of 65537 bytes exceeds the limit of 65536/, 9);
    rejected(decodeFrame(frame(FrameType.Data, 9, new Uint8Array(MAX_FRAME_PAYLOAD + 1))), 'stream', /exceeds the limit/, 9);
    rejected(decodeFrame(frame(FrameType.Hello, 0, new Uint8Array(MAX_FRAME_PAYLOAD + 10))), 'session', /hello frame: payload of 65546 bytes exceeds/);
  });

  test('bad JSON in OPEN resets that stream; in HELLO it closes the session', () => {
    rejected(decodeFrame(frame(FrameType.Open, 11, '{"host": "a", "port": 1,')), 'stream', /open frame: bad JSON/, 11);
    rejected(decodeFrame(frame(FrameType.Hello, 0, 'not json')), 'session', /hello frame: bad JSON/);
    rejected(decodeFrame(frame(FrameType.Hello, 0, new Uint8Array([0x7b, 0xff, 0x7d]))), 'session', /hello frame: bad JSON/);
  });

  test('JSON of the wrong shape is rejected with the field named', () => {
    rejected(decodeFrame(frame(FrameType.Open, 1, JSON.stringify({ host: 'a b', port: 1, window: 1 }))), 'stream', /host/);
    rejected(decodeFrame(frame(FrameType.Open, 1, JSON.stringify({ host: 'a', port: 65536, window: 1 }))), 'stream', /port/);
    rejected(decodeFrame(frame(FrameType.Open, 1, JSON.stringify({ host: 'a', port: -1, window: 1 }))), 'stream', /port/);
    rejected(decodeFrame(frame(FrameType.Open, 1, JSON.stringify({ host: 'a', port: 1, window: 1, compress: 'yes' }))), 'stream', /compress/);
    rejected(decodeFrame(frame(FrameType.Open, 1, JSON.stringify({ host: 'a', port: 1, window: 1, compress: 'requests' }))), 'stream', /compress/);
    rejected(decodeFrame(frame(FrameType.Hello, 0, JSON.stringify({ ...hello, compression: 'deflate' }))), 'session', /compression/);
    rejected(decodeFrame(frame(FrameType.Welcome, 0, JSON.stringify({ session: 'a', compression: ['deflate'] }))), 'session', /compression/);
    rejected(decodeFrame(frame(FrameType.Open, 1, JSON.stringify({ host: 'a', port: 1.5, window: 1 }))), 'stream', /port/);
    rejected(decodeFrame(frame(FrameType.Open, 1, JSON.stringify({ host: 'a', port: 1, window: 0 }))), 'stream', /window/);
    rejected(decodeFrame(frame(FrameType.Hello, 0, JSON.stringify({ ...hello, node: 'Edge_1' }))), 'session', /node name/);
    rejected(decodeFrame(frame(FrameType.Hello, 0, JSON.stringify({ ...hello, addresses: Array(65).fill('a') }))), 'session', /addresses/);
    rejected(decodeFrame(frame(FrameType.Hello, 0, JSON.stringify({ node: 'a', addresses: [] }))), 'session', /version/);
    rejected(decodeFrame(frame(FrameType.OpenResult, 1, JSON.stringify({ ok: false, code: 'lowercase', reason: 'x' }))), 'stream', /code/);
    rejected(decodeFrame(frame(FrameType.OpenResult, 1, JSON.stringify({ ok: 'yes' }))), 'stream', /ok/);
    rejected(decodeFrame(frame(FrameType.Welcome, 0, JSON.stringify({ session: '' }))), 'session', /session/);
  });

  test('binary payloads of the wrong size or value are rejected', () => {
    rejected(decodeFrame(frame(FrameType.Data, 1, new Uint8Array(0))), 'stream', /data frame: empty/, 1);
    rejected(decodeFrame(frame(FrameType.Credit, 1, new Uint8Array([0, 0, 0, 0]))), 'stream', /increment 0 outside/, 1);
    rejected(decodeFrame(frame(FrameType.Credit, 1, new Uint8Array([0x80, 0, 0, 0]))), 'stream', /increment 2147483648 outside/, 1);
    rejected(decodeFrame(frame(FrameType.Credit, 1, new Uint8Array([0, 1]))), 'stream', /payload is 2 bytes, want 4/, 1);
    rejected(decodeFrame(frame(FrameType.Close, 1, new Uint8Array([2]))), 'stream', /unknown kind 2/, 1);
    rejected(decodeFrame(frame(FrameType.Close, 1, new Uint8Array(0))), 'stream', /missing the kind byte/, 1);
    rejected(decodeFrame(frame(FrameType.Close, 1, new Uint8Array([1, 0xc3, 0x28]))), 'stream', /not UTF-8/, 1);
    rejected(decodeFrame(frame(FrameType.Ping, 0, new Uint8Array(4))), 'session', /payload is 4 bytes, want 8/);
    rejected(decodeFrame(frame(FrameType.GoAway, 0, new Uint8Array(0))), 'session', /missing the code byte/);
    rejected(decodeFrame(frame(FrameType.Drain, 0, 'x'.repeat(MAX_REASON_BYTES + 1))), 'session', /reason of 1025 bytes exceeds 1024/);
  });

  test('random bytes never throw', () => {
    let seed = 1;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    for (let i = 0; i < 5000; i++) {
      const b = new Uint8Array(rand() % 40);
      for (let j = 0; j < b.length; j++) b[j] = rand();
      if (b.length > 1 && i % 2 === 0) b[0] = TUNNEL_PROTOCOL_VERSION;
      const r = decodeFrame(b);
      expect(typeof r.ok).toBe('boolean');
    }
  });
});
