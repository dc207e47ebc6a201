import { describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { createFrameCodec } from './spdy-codec.ts';
import { spdyDictionary } from './spdy-dictionary.ts';
import {
  decodeFrame,
  decodeHeaderBlock,
  encodeFrame,
  encodeHeaderBlock,
  FrameParser,
  type Frame,
  type RawFrame,
} from './spdy-frames.ts';

/**
 * Bytes written by moby/spdystream v0.5.0's spdy.Framer (the framer client-go and kube-apiserver
 * use): SYN_STREAMs 1, 3, 5, 7 with streamtype error, stdin, stdout, stderr sharing one zlib
 * context, DATA on stream 3 "hello" with FIN, PING 1, GOAWAY last-good 7.
 */
const goFramerBytes =
  '80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000ffff' +
  '800300010000001700000003000000000000c22e555c92929907000000ffff800300010000001900000005000000000000' +
  'c22ac5565c92925f5a02000000ffff800300010000001500000007000000000000c229975a5404000000ffff0000000301' +
  '00000568656c6c6f80030006000000040000000180030007000000080000000700000000';

function parseAll(bytes: Buffer, chunk = bytes.length): RawFrame[] {
  const parser = new FrameParser();
  const frames: RawFrame[] = [];
  for (let i = 0; i < bytes.length; i += chunk) {
    parser.push(bytes.subarray(i, i + chunk));
    for (let raw = parser.next(); raw; raw = parser.next()) frames.push(raw);
  }
  return frames;
}

describe('SPDY/3 dictionary', () => {
  test('is the 1423 bytes of the spec', () => {
    expect(spdyDictionary.length).toBe(1423);
    expect(createHash('sha256').update(spdyDictionary).digest('hex')).toBe(
      '51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02',
    );
  });
});

describe('frames without header blocks', () => {
  const frames: Array<[string, Frame]> = [
    ['data with FIN', { type: 'data', streamId: 5, fin: true, data: Buffer.from('payload') }],
    ['empty data on the highest stream id', { type: 'data', streamId: 0x7fffffff, fin: false, data: Buffer.alloc(0) }],
    ['RST_STREAM', { type: 'rst_stream', streamId: 9, status: 5 }],
    ['SETTINGS with flags', { type: 'settings', clear: true, entries: [{ id: 7, flags: 1, value: 1 << 20 }, { id: 4, flags: 0, value: 100 }] }],
    ['PING', { type: 'ping', id: 0xfffffffe }],
    ['GOAWAY', { type: 'goaway', lastGoodStreamId: 11, status: 2 }],
    ['session WINDOW_UPDATE', { type: 'window_update', streamId: 0, delta: 0x7fffffff }],
    ['stream WINDOW_UPDATE', { type: 'window_update', streamId: 3, delta: 32768 }],
  ];
  for (const [name, frame] of frames) {
    test(`${name} round-trips`, () => {
      const [raw, ...rest] = parseAll(encodeFrame(frame));
      expect(rest).toEqual([]);
      expect(decodeFrame(raw!)).toEqual(frame);
    });
  }

  test('a frame split into single bytes is reassembled', () => {
    const frame: Frame = { type: 'data', streamId: 3, fin: false, data: Buffer.from('split across reads') };
    const bytes = Buffer.concat([encodeFrame(frame), encodeFrame({ type: 'ping', id: 1 })]);
    const raws = parseAll(bytes, 1);
    expect(raws.map((r) => decodeFrame(r))).toEqual([frame, { type: 'ping', id: 1 }]);
  });

  test('control frames of another SPDY version are rejected', () => {
    const bytes = encodeFrame({ type: 'ping', id: 1 });
    bytes.writeUInt16BE(0x8002, 0);
    expect(() => decodeFrame(parseAll(bytes)[0]!)).toThrow('unsupported version 2');
  });

  test('data on stream 0 is rejected', () => {
    const bytes = encodeFrame({ type: 'data', streamId: 1, fin: false, data: Buffer.from('x') });
    bytes.writeUInt32BE(0, 0);
    expect(() => decodeFrame(parseAll(bytes)[0]!)).toThrow('stream 0');
  });
});

describe('header blocks', () => {
  test('several values of one name travel NUL-separated', () => {
    const block = encodeHeaderBlock({ streamtype: ['data'], accept: ['a', 'b'] });
    expect(block.includes(Buffer.from('a\0b'))).toBe(true);
    expect(decodeHeaderBlock(block)).toEqual({ streamtype: ['data'], accept: ['a', 'b'] });
  });

  test('names are lower-cased', () => {
    expect(decodeHeaderBlock(encodeHeaderBlock({ StreamType: ['error'] }))).toEqual({ streamtype: ['error'] });
  });

  test('a truncated block is rejected', () => {
    const block = encodeHeaderBlock({ port: ['80'] });
    expect(() => decodeHeaderBlock(block.subarray(0, block.length - 1))).toThrow('truncated');
  });
});

describe('header compression with one zlib context per direction', () => {
  const synStream = (streamId: number, type: string): Frame => ({
    type: 'syn_stream',
    streamId,
    associatedId: 0,
    priority: 0,
    fin: false,
    unidirectional: false,
    headers: { streamtype: [type], port: ['8080'], requestid: [String(streamId)] },
  });

  test('frames encoded in order decode in order, later blocks refer back to earlier ones', async () => {
    const writer = createFrameCodec();
    const reader = createFrameCodec();
    const frames: Frame[] = [
      synStream(1, 'error'),
      synStream(3, 'data'),
      { type: 'data', streamId: 3, fin: false, data: Buffer.from('between') },
      { type: 'syn_reply', streamId: 3, fin: false, headers: {} },
      synStream(5, 'error'),
      { type: 'headers', streamId: 5, fin: true, headers: { x: ['y'] } },
      synStream(7, 'data'),
    ];
    const encoded = await Promise.all(frames.map((f) => writer.encode(f)));
    // The same headers again cost far fewer bytes: the context remembers them.
    expect(encoded[4]!.length).toBeLessThan(encoded[0]!.length);
    const raws = parseAll(Buffer.concat(encoded), 7);
    const decoded = await Promise.all(raws.map((r) => reader.decode(r)));
    expect(decoded).toEqual(frames);
    writer.close();
    reader.close();
  });

  test('a later block cannot be read without the blocks before it', async () => {
    const writer = createFrameCodec();
    await writer.encode(synStream(1, 'error'));
    const second = await writer.encode(synStream(3, 'error'));
    const fresh = createFrameCodec();
    await expect(fresh.decode(parseAll(second)[0]!)).rejects.toThrow('decompress header block');
    writer.close();
    fresh.close();
  });

  test("moby/spdystream's framer output decodes frame by frame", async () => {
    const reader = createFrameCodec();
    const raws = parseAll(Buffer.from(goFramerBytes, 'hex'), 3);
    const frames = [];
    for (const raw of raws) frames.push(await reader.decode(raw));
    expect(frames).toEqual([
      { type: 'syn_stream', streamId: 1, associatedId: 0, priority: 0, fin: false, unidirectional: false, headers: { streamtype: ['error'] } },
      { type: 'syn_stream', streamId: 3, associatedId: 0, priority: 0, fin: false, unidirectional: false, headers: { streamtype: ['stdin'] } },
      { type: 'syn_stream', streamId: 5, associatedId: 0, priority: 0, fin: false, unidirectional: false, headers: { streamtype: ['stdout'] } },
      { type: 'syn_stream', streamId: 7, associatedId: 0, priority: 0, fin: false, unidirectional: false, headers: { streamtype: ['stderr'] } },
      { type: 'data', streamId: 3, fin: true, data: Buffer.from('hello') },
      { type: 'ping', id: 1 },
      { type: 'goaway', lastGoodStreamId: 7, status: 0 },
    ]);
    reader.close();
  });
});
