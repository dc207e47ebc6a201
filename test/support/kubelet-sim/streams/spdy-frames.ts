/**
 * SPDY/3 frame layouts (draft 3 with the 3.1 session flow control; see README.md for the byte
 * diagrams). Pure and synchronous: this file splits a byte stream into frames and turns frames
 * into bytes. Header blocks travel compressed on the wire; spdy-codec.ts runs them through the
 * session's two zlib contexts, so here a header-carrying frame is encoded from, and decoded to,
 * an already (de)compressed block.
 */
import { ErrorCode, TetherError } from '../../../../shared/errors.ts';

export const spdyVersion = 3;
/** Initial stream and session window of SPDY/3.1 when no SETTINGS say otherwise. */
export const defaultWindow = 65536;
export const maxFrameLength = 0xffffff;

export const ControlType = {
  SynStream: 1,
  SynReply: 2,
  RstStream: 3,
  Settings: 4,
  Ping: 6,
  GoAway: 7,
  Headers: 8,
  WindowUpdate: 9,
} as const;

export const RstStatus = {
  ProtocolError: 1,
  InvalidStream: 2,
  RefusedStream: 3,
  UnsupportedVersion: 4,
  Cancel: 5,
  InternalError: 6,
  FlowControlError: 7,
  StreamInUse: 8,
  StreamAlreadyClosed: 9,
  FrameTooLarge: 11,
} as const;

export const GoAwayStatus = { Ok: 0, ProtocolError: 1, InternalError: 2 } as const;
export const SettingId = { MaxConcurrentStreams: 4, InitialWindowSize: 7 } as const;

const flagFin = 0x01;
const flagUnidirectional = 0x02;
const flagClearSettings = 0x01;

/** Header names are lower case; several values of one name travel NUL-separated. */
export type HeaderMap = Record<string, string[]>;

export interface SettingEntry {
  id: number;
  flags: number;
  value: number;
}

export type Frame =
  | { type: 'data'; streamId: number; fin: boolean; data: Buffer }
  | {
      type: 'syn_stream';
      streamId: number;
      associatedId: number;
      priority: number;
      fin: boolean;
      unidirectional: boolean;
      headers: HeaderMap;
    }
  | { type: 'syn_reply'; streamId: number; fin: boolean; headers: HeaderMap }
  | { type: 'headers'; streamId: number; fin: boolean; headers: HeaderMap }
  | { type: 'rst_stream'; streamId: number; status: number }
  | { type: 'settings'; clear: boolean; entries: SettingEntry[] }
  | { type: 'ping'; id: number }
  | { type: 'goaway'; lastGoodStreamId: number; status: number }
  | { type: 'window_update'; streamId: number; delta: number }
  | { type: 'unknown'; controlType: number; flags: number; payload: Buffer };

/** One frame as cut from the byte stream: 8-byte header parsed, payload untouched. */
export type RawFrame =
  | { control: false; streamId: number; flags: number; payload: Buffer }
  | { control: true; version: number; controlType: number; flags: number; payload: Buffer };

function protocolError(what: string): TetherError {
  return new TetherError(ErrorCode.BadRequest, `decode SPDY frame: ${what}`);
}

/** Cuts frames out of a byte stream that arrives in arbitrary chunks. */
export class FrameParser {
  private chunks: Buffer[] = [];
  private length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  get buffered(): number {
    return this.length;
  }

  next(): RawFrame | undefined {
    if (this.length < 8) return undefined;
    const head = this.peek(8);
    const payloadLength = head.readUInt32BE(4) & 0xffffff;
    if (this.length < 8 + payloadLength) return undefined;
    const bytes = this.take(8 + payloadLength);
    const first = bytes.readUInt32BE(0);
    const flags = bytes[4] ?? 0;
    const payload = bytes.subarray(8);
    if (first & 0x80000000) {
      return { control: true, version: (first >>> 16) & 0x7fff, controlType: first & 0xffff, flags, payload };
    }
    return { control: false, streamId: first & 0x7fffffff, flags, payload };
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= n) return first.subarray(0, n);
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined.subarray(0, n);
  }

  private take(n: number): Buffer {
    const first = this.chunks[0];
    let out: Buffer;
    if (first && first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const joined = Buffer.concat(this.chunks);
      out = joined.subarray(0, n);
      this.chunks = joined.length > n ? [joined.subarray(n)] : [];
    }
    this.length -= n;
    return out;
  }
}

/** Byte offset of the compressed header block in a control frame's payload, if it has one. */
export function headerBlockOffset(controlType: number): number | undefined {
  if (controlType === ControlType.SynStream) return 10;
  if (controlType === ControlType.SynReply || controlType === ControlType.Headers) return 4;
  return undefined;
}

export function encodeHeaderBlock(headers: HeaderMap): Buffer {
  const entries = Object.entries(headers);
  const parts: Buffer[] = [u32(entries.length)];
  for (const [name, values] of entries) {
    const n = Buffer.from(name.toLowerCase(), 'utf8');
    const v = Buffer.from(values.join('\0'), 'utf8');
    parts.push(u32(n.length), n, u32(v.length), v);
  }
  return Buffer.concat(parts);
}

export function decodeHeaderBlock(block: Buffer): HeaderMap {
  const headers: HeaderMap = {};
  let at = 0;
  const need = (n: number) => {
    if (at + n > block.length) throw protocolError('header block is truncated');
  };
  need(4);
  const count = block.readUInt32BE(at);
  at += 4;
  for (let i = 0; i < count; i++) {
    need(4);
    const nameLength = block.readUInt32BE(at);
    need(4 + nameLength + 4);
    const name = block.toString('utf8', at + 4, at + 4 + nameLength).toLowerCase();
    at += 4 + nameLength;
    const valueLength = block.readUInt32BE(at);
    need(4 + valueLength);
    const value = block.toString('utf8', at + 4, at + 4 + valueLength);
    at += 4 + valueLength;
    if (name === '') throw protocolError('empty header name');
    (headers[name] ??= []).push(...value.split('\0'));
  }
  if (at !== block.length) throw protocolError('bytes after the header block');
  return headers;
}

/**
 * Decodes a raw frame. `headerBlock` is the decompressed block of a SYN_STREAM, SYN_REPLY or
 * HEADERS frame (the caller inflates `payload.subarray(headerBlockOffset(type))`).
 */
export function decodeFrame(raw: RawFrame, headerBlock?: Buffer): Frame {
  const p = raw.payload;
  if (!raw.control) {
    if (raw.streamId === 0) throw protocolError('data frame on stream 0');
    return { type: 'data', streamId: raw.streamId, fin: (raw.flags & flagFin) !== 0, data: p };
  }
  if (raw.version !== spdyVersion) throw protocolError(`unsupported version ${raw.version}`);
  const fin = (raw.flags & flagFin) !== 0;
  const headers = () => {
    if (!headerBlock) throw protocolError('header block missing');
    return decodeHeaderBlock(headerBlock);
  };
  const minLength = (n: number) => {
    if (p.length < n) throw protocolError(`control frame ${raw.controlType} shorter than ${n} bytes`);
  };
  switch (raw.controlType) {
    case ControlType.SynStream:
      minLength(10);
      return {
        type: 'syn_stream',
        streamId: nonZero(p.readUInt32BE(0) & 0x7fffffff),
        associatedId: p.readUInt32BE(4) & 0x7fffffff,
        priority: (p[8] ?? 0) >>> 5,
        fin,
        unidirectional: (raw.flags & flagUnidirectional) !== 0,
        headers: headers(),
      };
    case ControlType.SynReply:
    case ControlType.Headers:
      minLength(4);
      return {
        type: raw.controlType === ControlType.SynReply ? 'syn_reply' : 'headers',
        streamId: nonZero(p.readUInt32BE(0) & 0x7fffffff),
        fin,
        headers: headers(),
      };
    case ControlType.RstStream:
      minLength(8);
      return { type: 'rst_stream', streamId: nonZero(p.readUInt32BE(0) & 0x7fffffff), status: p.readUInt32BE(4) };
    case ControlType.Settings: {
      minLength(4);
      const count = p.readUInt32BE(0);
      minLength(4 + count * 8);
      const entries: SettingEntry[] = [];
      for (let i = 0; i < count; i++) {
        const idWord = p.readUInt32BE(4 + i * 8);
        entries.push({ flags: idWord >>> 24, id: idWord & 0xffffff, value: p.readUInt32BE(8 + i * 8) });
      }
      return { type: 'settings', clear: (raw.flags & flagClearSettings) !== 0, entries };
    }
    case ControlType.Ping:
      minLength(4);
      return { type: 'ping', id: p.readUInt32BE(0) };
    case ControlType.GoAway:
      minLength(8);
      return { type: 'goaway', lastGoodStreamId: p.readUInt32BE(0) & 0x7fffffff, status: p.readUInt32BE(4) };
    case ControlType.WindowUpdate:
      minLength(8);
      return { type: 'window_update', streamId: p.readUInt32BE(0) & 0x7fffffff, delta: p.readUInt32BE(4) & 0x7fffffff };
    default:
      return { type: 'unknown', controlType: raw.controlType, flags: raw.flags, payload: p };
  }
}

function nonZero(streamId: number): number {
  if (streamId === 0) throw protocolError('stream id 0');
  return streamId;
}

/** Encodes a frame; `compressedBlock` is the deflated header block of a header-carrying frame. */
export function encodeFrame(frame: Frame, compressedBlock?: Buffer): Buffer {
  const block = () => {
    if (!compressedBlock) throw new TetherError(ErrorCode.Internal, `encode SPDY ${frame.type}: header block missing`);
    return compressedBlock;
  };
  switch (frame.type) {
    case 'data': {
      if (frame.data.length > maxFrameLength) throw new TetherError(ErrorCode.Internal, 'encode SPDY data: too long');
      const head = Buffer.alloc(8);
      head.writeUInt32BE(frame.streamId & 0x7fffffff, 0);
      head.writeUInt32BE(((frame.fin ? flagFin : 0) << 24 | frame.data.length) >>> 0, 4);
      return Buffer.concat([head, frame.data]);
    }
    case 'syn_stream': {
      const fixed = Buffer.alloc(10);
      fixed.writeUInt32BE(frame.streamId, 0);
      fixed.writeUInt32BE(frame.associatedId, 4);
      fixed[8] = (frame.priority & 0x7) << 5;
      const flags = (frame.fin ? flagFin : 0) | (frame.unidirectional ? flagUnidirectional : 0);
      return control(ControlType.SynStream, flags, fixed, block());
    }
    case 'syn_reply':
      return control(ControlType.SynReply, frame.fin ? flagFin : 0, u32(frame.streamId), block());
    case 'headers':
      return control(ControlType.Headers, frame.fin ? flagFin : 0, u32(frame.streamId), block());
    case 'rst_stream':
      return control(ControlType.RstStream, 0, u32(frame.streamId), u32(frame.status));
    case 'settings': {
      const parts = [u32(frame.entries.length)];
      for (const e of frame.entries) parts.push(u32(((e.flags << 24) | (e.id & 0xffffff)) >>> 0), u32(e.value));
      return control(ControlType.Settings, frame.clear ? flagClearSettings : 0, ...parts);
    }
    case 'ping':
      return control(ControlType.Ping, 0, u32(frame.id));
    case 'goaway':
      return control(ControlType.GoAway, 0, u32(frame.lastGoodStreamId), u32(frame.status));
    case 'window_update':
      return control(ControlType.WindowUpdate, 0, u32(frame.streamId), u32(frame.delta));
    case 'unknown':
      return control(frame.controlType, frame.flags, frame.payload);
  }
}

function control(type: number, flags: number, ...parts: Buffer[]): Buffer {
  const length = parts.reduce((n, b) => n + b.length, 0);
  if (length > maxFrameLength) throw new TetherError(ErrorCode.Internal, `encode SPDY control frame ${type}: too long`);
  const head = Buffer.alloc(8);
  head.writeUInt32BE((0x80000000 | (spdyVersion << 16) | type) >>> 0, 0);
  head.writeUInt32BE(((flags << 24) | length) >>> 0, 4);
  return Buffer.concat([head, ...parts]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
