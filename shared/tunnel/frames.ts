/**
 * The tunnel wire format: one binary frame per websocket message, between an edge agent and the
 * hub. This file is the whole definition; docs/tunnel-protocol.md describes it for operators.
 *
 * Protocol flow:
 *
 *   The agent dials the hub (outbound only): an HTTPS upgrade to a websocket offering the
 *   subprotocol "tether-tunnel.v<TUNNEL_PROTOCOL_VERSION>", authenticated by a TLS client
 *   certificate or a bearer token (ws-transport.ts). Then, one frame per binary message:
 *
 *   agent → hub   HELLO {node, addresses, version,      first frame, exactly once; offers
 *                        compression?: ["deflate"]}     compression
 *   hub → agent   WELCOME {session, compression?}       the hub accepted the HELLO (and chose a
 *                                                       compression, or none); or it sends
 *                                                       GOAWAY refused "<reason>" and closes
 *   hub → agent   OPEN #1 {host, port, window}          the hub opens odd stream ids, the agent
 *                                                       even ones; ids only grow, never reused
 *   agent → hub   OPEN_RESULT #1 {ok, window}           or {ok: false, code, reason}
 *   agent → hub   OPEN #2 {kube-apiserver, 0, compress} an api stream (the hub accepts it only if
 *                                                       it is built to); its bytes go as ZDATA
 *                                                       (compress "answers": only the hub's do)
 *   both ways     DATA #1 <bytes>                       never beyond the credit the receiver gave
 *   both ways     CREDIT #1 <n>                         the receiver's consumer read n more bytes
 *   both ways     CLOSE #1 FIN                          half-close: the sender sends no more DATA
 *   both ways     CLOSE #1 RESET "<reason>"             abort both directions; the id is dead
 *   both ways     PING <8 bytes>, PONG <the same>       every heartbeat interval; any frame received
 *                                                       counts as a sign of life
 *   both ways     DRAIN "<reason>"                      open no new streams; the session closes
 *                                                       when the last stream ends
 *   both ways     GOAWAY <code> "<reason>"              the session ends; the websocket closes next
 *
 *   Flow control is per stream and per direction: each side announces its receive window in OPEN
 *   or OPEN_RESULT; the sender's credit starts there, DATA spends it and CREDIT returns it once the
 *   receiver's consumer has read the bytes. A stream whose consumer is stuck stops only itself.
 *   Compressed streams (OPEN compress: true, on a session whose WELCOME chose deflate) send ZDATA
 *   instead of DATA, both ways, through one raw-deflate context per direction per session (kept
 *   across frames and streams; see _compress.ts); credit counts the uncompressed bytes. OPEN
 *   compress "answers" compresses only the acceptor → opener direction: the opener's bytes (requests
 *   that carry credentials) stay DATA and never share a deflate context with other streams (CRIME).
 *
 * Frame layout (integers big-endian):
 *
 *   0         1         2                   6                   10
 *   +---------+---------+-------------------+-------------------+---------------------------+
 *   | version |  type   |  stream id (u32)  |   length (u32)    |  payload (length bytes)   |
 *   +---------+---------+-------------------+-------------------+---------------------------+
 *
 *   version  TUNNEL_PROTOCOL_VERSION; any other value closes the session.
 *   stream   0 for control frames (HELLO … GOAWAY), ≥ 1 for stream frames (OPEN … CLOSE).
 *   length   must equal the bytes that follow and be ≤ MAX_FRAME_PAYLOAD.
 *
 * Payloads (JSON is UTF-8, validated with zod; unknown JSON fields are ignored, so adding an
 * optional field is a compatible change; anything else bumps the version):
 *
 *   0x01 HELLO        JSON {"node": DNS-1123 subdomain, "addresses": [host…] (≤ 64), "version": string,
 *                           "compression"?: [method…] (≤ 8, offered)}
 *   0x02 WELCOME      JSON {"session": string, "compression"?: method (chosen; absent = none)}
 *   0x03 PING         8 opaque bytes
 *   0x04 PONG         the 8 bytes of the PING it answers
 *   0x05 DRAIN        UTF-8 reason (≤ MAX_REASON_BYTES, may be empty)
 *   0x06 GOAWAY       u8 code, then UTF-8 reason (≤ MAX_REASON_BYTES); codes: 0 normal,
 *                     1 drained, 2 refused, 3 protocol, 4 heartbeat, 5 overloaded, 6 replaced
 *   0x10 OPEN         JSON {"host": string, "port": 0…65535 (0: a named service), "window": 1…MAX_WINDOW,
 *                           "compress"?: true (ZDATA both ways) | "answers" (ZDATA acceptor → opener only)
 *                                        | false (absent: DATA both ways)}
 *   0x11 OPEN_RESULT  JSON {"ok": true, "window": 1…MAX_WINDOW}
 *                        | {"ok": false, "code": "E_…", "reason": string (≤ MAX_REASON_BYTES)}
 *   0x12 DATA         1…MAX_FRAME_PAYLOAD bytes of the stream
 *   0x13 CREDIT       u32 increment, ≥ 1; the sender's credit may never exceed MAX_WINDOW
 *   0x14 CLOSE        u8 kind (0 FIN, 1 RESET), then UTF-8 reason (≤ MAX_REASON_BYTES)
 *   0x15 ZDATA        1…MAX_FRAME_PAYLOAD bytes: raw deflate of one chunk of a compressed stream,
 *                     ended by a sync flush; it inflates to at most MAX_FRAME_PAYLOAD bytes
 *
 * A frame that fails these checks is answered by its scope: a malformed stream frame resets that
 * stream (CLOSE RESET with the reason); a malformed control frame, an unknown type or a wrong
 * version closes the session (GOAWAY protocol), and so does any fault of compressed data (the
 * context is shared). Both are logged with the reason. So does a
 * stream frame before the handshake ends, DATA beyond the credit resets its stream, and frames
 * for a stream id that is already gone are ignored (they cross a RESET on the wire).
 */
import { z } from 'zod';
import { ErrorCode, TetherError, messageOf } from '../errors.ts';
/** Bumped on any incompatible change of this file. */
export const TUNNEL_PROTOCOL_VERSION = 1;
/** The websocket subprotocol that carries this version. */
export const TUNNEL_SUBPROTOCOL = `tether-tunnel.v${TUNNEL_PROTOCOL_VERSION}`;
export const FRAME_HEADER_SIZE = 10;
/** The size limit on every frame's payload. */
export const MAX_FRAME_PAYLOAD = 64 * 1024;
export const MAX_FRAME_SIZE = FRAME_HEADER_SIZE + MAX_FRAME_PAYLOAD;
export const MAX_REASON_BYTES = 1024;
/** The largest receive window, and the largest credit a sender may hold. */
export const MAX_WINDOW = 0x7fffffff;
export const MAX_STREAM_ID = 0xffffffff;

export const FrameType = {
  Hello: 0x01,
  Welcome: 0x02,
  Ping: 0x03,
  Pong: 0x04,
  Drain: 0x05,
  GoAway: 0x06,
  Open: 0x10,
  OpenResult: 0x11,
  Data: 0x12,
  Credit: 0x13,
  Close: 0x14,
  ZData: 0x15,
} as const;

/** The compression methods this side knows, in order of preference (HELLO offers, WELCOME picks one). */
export const compressionMethods = ['deflate'] as const;
export type CompressionMethod = (typeof compressionMethods)[number];

/** Why a session ended; the u8 of GOAWAY. An unknown code from a newer peer reads as 'normal'. */
export const goAwayCodes = ['normal', 'drained', 'refused', 'protocol', 'heartbeat', 'overloaded', 'replaced'] as const;
export type GoAwayCode = (typeof goAwayCodes)[number];

/** OPEN's compression: true = ZDATA both ways, 'answers' = only acceptor → opener (absent: none). */
export type OpenCompress = true | 'answers';

export type OpenResult = { ok: true; window: number } | { ok: false; code: string; reason: string };

export type Frame =
  | { type: 'hello'; hello: Hello; compression?: string[] }
  | { type: 'welcome'; session: string; compression?: string }
  | { type: 'ping'; data: Uint8Array }
  | { type: 'pong'; data: Uint8Array }
  | { type: 'drain'; reason: string }
  | { type: 'goaway'; code: GoAwayCode; reason: string }
  | { type: 'open'; stream: number; host: string; port: number; window: number; compress?: OpenCompress }
  | { type: 'open-result'; stream: number; result: OpenResult }
  | { type: 'data'; stream: number; data: Uint8Array }
  | { type: 'zdata'; stream: number; data: Uint8Array }
  | { type: 'credit'; stream: number; increment: number }
  | { type: 'close'; stream: number; reset: boolean; reason: string };

export type StreamFrame = Extract<Frame, { stream: number }>;

export type DecodeResult =
  | { ok: true; frame: Frame }
  | { ok: false; scope: 'session'; reason: string }
  | { ok: false; scope: 'stream'; stream: number; reason: string };

/** host of OPEN and of HELLO addresses: an IP address (v6 without brackets) or a DNS name. */
export const hostSchema = z.string().min(1).max(253).regex(/^[A-Za-z0-9._:%-]+$/, 'not a host name or IP address');
export const portSchema = z.int().min(1).max(65535);
/** OPEN's port: a TCP port, or 0 for a named service of the peer (the api stream: host "kube-apiserver", port 0). */
export const openPortSchema = z.int().min(0).max(65535);
const windowSchema = z.int().min(1).max(MAX_WINDOW);
const reasonSchema = z.string().refine((s) => utf8.encode(s).length <= MAX_REASON_BYTES, `longer than ${MAX_REASON_BYTES} bytes`);

/** What an agent announces in HELLO. */
export interface Hello {
  /** The Node name (DNS-1123 subdomain). */
  node: string;
  /** The node's addresses (IPs or host names) a CONNECT may name; at most 64. */
  addresses: string[];
  /** The agent's version (for logs and compatibility decisions). */
  version: string;
}

const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const helloSchema: z.ZodType<Hello> = z.object({
  node: z.string().min(1).max(253).regex(dns1123Subdomain, 'not a valid node name (DNS-1123 subdomain)'),
  addresses: z.array(hostSchema).max(64),
  version: z.string().min(1).max(128).regex(/^[\x20-\x7e]+$/, 'not printable ASCII'),
});
const methodSchema = z.string().min(1).max(32).regex(/^[a-z0-9-]+$/);
const compressionOfferSchema = z.object({ compression: z.array(methodSchema).max(8).optional() });
const welcomeSchema = z.object({ session: z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/), compression: methodSchema.optional() });
const openSchema = z.object({ host: hostSchema, port: openPortSchema, window: windowSchema, compress: z.union([z.boolean(), z.literal('answers')]).optional() });
const openResultSchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), window: windowSchema }),
  z.object({ ok: z.literal(false), code: z.string().regex(/^E_[A-Z0-9_]{1,60}$/), reason: reasonSchema }),
]);

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

const typeNames: Record<number, Frame['type']> = {
  [FrameType.Hello]: 'hello',
  [FrameType.Welcome]: 'welcome',
  [FrameType.Ping]: 'ping',
  [FrameType.Pong]: 'pong',
  [FrameType.Drain]: 'drain',
  [FrameType.GoAway]: 'goaway',
  [FrameType.Open]: 'open',
  [FrameType.OpenResult]: 'open-result',
  [FrameType.Data]: 'data',
  [FrameType.Credit]: 'credit',
  [FrameType.Close]: 'close',
  [FrameType.ZData]: 'zdata',
};
const typeCodes = Object.fromEntries(Object.entries(typeNames).map(([k, v]) => [v, Number(k)])) as Record<Frame['type'], number>;
const isStreamType = (type: number) => type >= FrameType.Open;

/** Cut a reason to MAX_REASON_BYTES of UTF-8 without splitting a character. */
export function clampReason(reason: string, maxBytes = MAX_REASON_BYTES): string {
  if (utf8.encode(reason).length <= maxBytes) return reason;
  let out = '';
  let bytes = 0;
  for (const ch of reason) {
    const n = utf8.encode(ch).length;
    if (bytes + n > maxBytes - 3) break;
    out += ch;
    bytes += n;
  }
  return out + '...';
}

/** Encode one frame. Throws TetherError(E_TUNNEL_PROTOCOL) for a payload over the limit (a bug). */
export function encodeFrame(frame: Frame): Uint8Array {
  const payload = encodePayload(frame);
  if (payload.length > MAX_FRAME_PAYLOAD) {
    throw new TetherError(ErrorCode.TunnelProtocol, `encode ${frame.type} frame: payload of ${payload.length} bytes exceeds ${MAX_FRAME_PAYLOAD}`);
  }
  const out = new Uint8Array(FRAME_HEADER_SIZE + payload.length);
  const view = new DataView(out.buffer);
  out[0] = TUNNEL_PROTOCOL_VERSION;
  out[1] = typeCodes[frame.type];
  view.setUint32(2, 'stream' in frame ? frame.stream : 0);
  view.setUint32(6, payload.length);
  out.set(payload, FRAME_HEADER_SIZE);
  return out;
}

function encodePayload(frame: Frame): Uint8Array {
  switch (frame.type) {
    case 'hello':
      return json(frame.compression ? { ...frame.hello, compression: frame.compression } : frame.hello);
    case 'welcome':
      return json(frame.compression ? { session: frame.session, compression: frame.compression } : { session: frame.session });
    case 'ping':
    case 'pong':
      return frame.data;
    case 'drain':
      return utf8.encode(clampReason(frame.reason));
    case 'goaway':
      return withByte(goAwayCodes.indexOf(frame.code), frame.reason);
    case 'open':
      return json(frame.compress ? { host: frame.host, port: frame.port, window: frame.window, compress: frame.compress } : { host: frame.host, port: frame.port, window: frame.window });
    case 'open-result':
      return json(frame.result.ok ? frame.result : { ...frame.result, reason: clampReason(frame.result.reason) });
    case 'data':
    case 'zdata':
      return frame.data;
    case 'credit': {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, frame.increment);
      return b;
    }
    case 'close':
      return withByte(frame.reset ? 1 : 0, frame.reason);
  }
}

const json = (v: unknown) => utf8.encode(JSON.stringify(v));
function withByte(byte: number, reason: string): Uint8Array {
  const text = utf8.encode(clampReason(reason));
  const b = new Uint8Array(1 + text.length);
  b[0] = byte;
  b.set(text, 1);
  return b;
}

/** Decode and validate one frame as it arrives from the socket. Never throws. */
export function decodeFrame(bytes: Uint8Array): DecodeResult {
  if (bytes.length < FRAME_HEADER_SIZE) return session(`truncated frame: ${bytes.length} bytes, the header alone is ${FRAME_HEADER_SIZE}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = bytes[0]!;
  if (version !== TUNNEL_PROTOCOL_VERSION) return session(`unsupported protocol version ${version} (this side speaks ${TUNNEL_PROTOCOL_VERSION})`);
  const code = bytes[1]!;
  const type = typeNames[code];
  if (!type) return session(`unknown frame type 0x${code.toString(16).padStart(2, '0')}`);
  const stream = view.getUint32(2);
  const length = view.getUint32(6);
  const streamFrame = isStreamType(code);
  if (streamFrame && stream === 0) return session(`${type} frame on stream 0`);
  if (!streamFrame && stream !== 0) return session(`${type} frame on stream ${stream} (control frames use stream 0)`);
  const fail = (reason: string): DecodeResult => (streamFrame ? { ok: false, scope: 'stream', stream, reason: `${type} frame: ${reason}` } : session(`${type} frame: ${reason}`));
  if (length > MAX_FRAME_PAYLOAD) return fail(`payload of ${length} bytes exceeds the limit of ${MAX_FRAME_PAYLOAD}`);
  const actual = bytes.length - FRAME_HEADER_SIZE;
  if (actual !== length) return fail(actual < length ? `truncated: ${actual} of ${length} payload bytes` : `${actual - length} bytes after the payload`);
  const payload = bytes.subarray(FRAME_HEADER_SIZE);
  try {
    const frame = decodePayload(type, stream, payload);
    return { ok: true, frame };
  } catch (e) {
    return fail(e instanceof z.ZodError ? z.prettifyError(e).replace(/\n\s*/g, '; ') : messageOf(e));
  }
}

function decodePayload(type: Frame['type'], stream: number, p: Uint8Array): Frame {
  switch (type) {
    case 'hello': {
      const body = parseJson(p);
      const { compression } = compressionOfferSchema.parse(body);
      return compression ? { type, hello: helloSchema.parse(body), compression } : { type, hello: helloSchema.parse(body) };
    }
    case 'welcome': {
      const w = welcomeSchema.parse(parseJson(p));
      return w.compression ? { type, session: w.session, compression: w.compression } : { type, session: w.session };
    }
    case 'ping':
    case 'pong':
      if (p.length !== 8) throw new Error(`payload is ${p.length} bytes, want 8`);
      return { type, data: p };
    case 'drain':
      return { type, reason: text(p) };
    case 'goaway': {
      if (p.length < 1) throw new Error('missing the code byte');
      return { type, code: goAwayCodes[p[0]!] ?? 'normal', reason: text(p.subarray(1)) };
    }
    case 'open': {
      const { compress, ...o } = openSchema.parse(parseJson(p));
      return compress ? { type, stream, ...o, compress } : { type, stream, ...o };
    }
    case 'open-result':
      return { type, stream, result: openResultSchema.parse(parseJson(p)) };
    case 'data':
    case 'zdata':
      if (p.length === 0) throw new Error('empty');
      return { type, stream, data: p };
    case 'credit': {
      if (p.length !== 4) throw new Error(`payload is ${p.length} bytes, want 4`);
      const increment = new DataView(p.buffer, p.byteOffset, 4).getUint32(0);
      if (increment === 0 || increment > MAX_WINDOW) throw new Error(`increment ${increment} outside 1…${MAX_WINDOW}`);
      return { type, stream, increment };
    }
    case 'close': {
      if (p.length < 1) throw new Error('missing the kind byte');
      if (p[0]! > 1) throw new Error(`unknown kind ${p[0]!}`);
      return { type, stream, reset: p[0] === 1, reason: text(p.subarray(1)) };
    }
  }
}

function parseJson(p: Uint8Array): unknown {
  try {
    return JSON.parse(strictUtf8.decode(p));
  } catch (e) {
    throw new Error(`bad JSON: ${messageOf(e)}`);
  }
}

function text(p: Uint8Array): string {
  if (p.length > MAX_REASON_BYTES) throw new Error(`reason of ${p.length} bytes exceeds ${MAX_REASON_BYTES}`);
  try {
    return strictUtf8.decode(p);
  } catch {
    throw new Error('reason is not UTF-8');
  }
}

const session = (reason: string): DecodeResult => ({ ok: false, scope: 'session', reason });
