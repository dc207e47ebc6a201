/**
 * The public types of a tunnel session (session.ts re-exports them): the transport a session
 * runs on, the session itself, its options and what it reports.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from '../log.ts';
import type { GoAwayCode, Hello } from './frames.ts';

export interface TunnelTransport {
  send(frame: Uint8Array): void;
  /** Bytes queued in the underlying socket (for backpressure). */
  readonly bufferedAmount: number;
  onMessage(fn: (data: Uint8Array) => void): void;
  /** Called when bufferedAmount has gone down (optional; otherwise the session polls). */
  onDrain?(fn: () => void): void;
  onClose(fn: (code: number, reason: string) => void): void;
  close(code: number, reason: string): void;
}

/** Why a session ended: a GOAWAY code, or 'transport' when the connection went away without one. */
export type SessionCloseCode = GoAwayCode | 'transport';
export interface SessionClosed {
  reason: string;
  code: SessionCloseCode;
  /** Who ended it: this side, the peer (GOAWAY), or the connection. */
  by: 'local' | 'peer' | 'transport';
}
export type SessionState = 'handshake' | 'open' | 'draining' | 'closed';

export interface TunnelSession {
  readonly id: string;
  /** The agent's HELLO once received (hub side) / sent (agent side). */
  readonly peer: Hello | undefined;
  readonly state: SessionState;
  /** Resolves when the handshake is done; rejects (E_TUNNEL_CLOSED) if the session ends first. */
  readonly ready: Promise<void>;
  /**
   * Open a stream to `host:port` on the peer (port 0: a named service of the peer, e.g. the api
   * stream `open('kube-apiserver', 0, { compress: true })`).
   */
  open(host: string, port: number, opts?: OpenOptions): Promise<Duplex>;
  /** The compression the handshake chose ('none' until it is done, or when either side has none). */
  readonly compression: 'deflate' | 'none';
  /** Graceful shutdown: tell the peer to open no new streams; close when the last stream ends. */
  drain(reason?: string): void;
  close(reason: string, code?: GoAwayCode): void;
  readonly closed: Promise<SessionClosed>;
  stats(): SessionStats;
}

export interface OpenOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  /**
   * Compress this stream's DATA (ZDATA frames through the session's shared deflate contexts) when
   * the session negotiated compression; silently uncompressed otherwise. `true`: both directions.
   * `'answers'`: only what the acceptor sends back; what this side writes (requests with their
   * credentials) stays plain DATA, so it never shares a deflate context with bytes another client
   * chose (CRIME). Default false.
   */
  compress?: boolean | 'answers';
}

/**
 * What the accepting side learns about a stream the peer opens (third argument of `onOpen`):
 * `compress` is true when any direction is compressed (the peer asked and the session negotiated
 * it). `direction: 'answers'` (set only then) says only what this side sends back is ZDATA and the
 * opener's bytes arrive as plain DATA; absent, both directions are compressed.
 */
export type OpenInfo = { compress: false } | { compress: true; direction?: 'answers' };

export interface SessionStats {
  /** Live streams, including opens not yet answered and dials in progress. */
  streams: number;
  /** DATA payload bytes received and sent. */
  bytesIn: number;
  bytesOut: number;
  /** Per live stream: bytes held on this side (unread + unsent). */
  queuedBytes: Record<number, number>;
  /** Round-trip time of the last answered PING. */
  rttMs: number | undefined;
  /**
   * The api counters count ZDATA only: a direction that is not compressed (every direction of a
   * plain stream, the opener's bytes of an 'answers' stream) is not counted in them at all, only
   * in bytesIn/bytesOut.
   *
   * Stream bytes received as ZDATA, after inflation (counted in bytesIn too).
   */
  apiRawIn: number;
  /** Stream bytes sent as ZDATA, before deflation (counted in bytesOut too). */
  apiRawOut: number;
  /** ZDATA payload bytes received (what crossed the wire). */
  apiWireIn: number;
  /** ZDATA payload bytes sent (what crossed the wire). */
  apiWireOut: number;
}

export interface TunnelSessionOptions {
  transport: TunnelTransport;
  role: 'hub' | 'agent';
  log: Logger;
  /** Agent: sent first. */
  hello?: Hello;
  /** Hub: validate the agent's HELLO (throw to refuse: the session closes with that reason). */
  onHello?: (h: Hello) => void | Promise<void>;
  /** Accepting side: dial an allowed destination, or throw a TetherError whose message becomes the refusal reason. */
  onOpen?: (host: string, port: number, info: OpenInfo) => Promise<Duplex>;
  /** The peer sent DRAIN (e.g. the hub replica is stopping: reconnect elsewhere). */
  onDrain?: (reason: string) => void;
  /** Default 5000 ms. */
  heartbeatIntervalMs?: number;
  /** Default 15000 ms; must exceed the interval. */
  heartbeatTimeoutMs?: number;
  /** Receive window per stream, bytes. Default 256 KiB. */
  initialWindow?: number;
  /** open() timeout when the caller gives none. Default 10000 ms. */
  openTimeoutMs?: number;
  /** Live streams accepted from the peer at most. Default 4096. */
  maxStreams?: number;
  /** DATA is held back while the transport has this much queued. Default 256 KiB. */
  maxBufferedAmount?: number;
  /**
   * Compression of streams opened with `compress: true` or `'answers'`. The agent offers it in HELLO, the hub
   * picks it in WELCOME when both have it. Default 'deflate' on both roles.
   */
  compression?: 'deflate' | 'none';
  now?: () => number;
  /** Session id for logs; default random. */
  id?: string;
}

export interface SessionInternals {
  state: SessionState;
  streams: number;
  pendingOpens: number;
  dials: number;
  scheduled: number;
  timers: number;
  /** zlib contexts open, 0…2: each direction's is created by its first ZDATA and freed at close. */
  zlibContexts: number;
  /** Frames waiting behind a pending compression (send) or inflation (receive). */
  queuedFrames: number;
}
