/**
 * A tunnel session: many streams over one transport (a websocket), the same code on both ends.
 * The hub opens streams (odd ids) and the agent dials them; the agent may open streams too (even
 * ids) if the hub passes `onOpen`. The wire format is frames.ts; this file is the state machine.
 *
 * Contract:
 * - Handshake: the agent sends HELLO at once; the hub calls `onHello` (throw to refuse: GOAWAY
 *   refused, close) and answers WELCOME. Until then only PING/PONG/DRAIN/GOAWAY may arrive.
 *   `open()` during the handshake waits for it (within its timeout).
 * - Streams: `open()` resolves with a Duplex once the peer's `onOpen` returned a connection, and
 *   rejects with E_TUNNEL_DIAL (the peer's reason; `cause` is a TetherError with the peer's code,
 *   e.g. E_TUNNEL_DENIED), E_TUNNEL_TIMEOUT (no answer within `timeoutMs`), E_TUNNEL_CLOSED
 *   (session closed or draining) or E_TUNNEL_PROTOCOL. The Duplex half-closes with end(), resets
 *   with destroy(), and errors with E_TUNNEL_RESET when the peer resets, E_TUNNEL_CLOSED when the
 *   session ends, E_TUNNEL_PROTOCOL when the peer breaks the rules on it. Give it an 'error'
 *   listener (pipeline() does), as with any socket.
 * - Flow control (_stream.ts): per stream and direction; a stream's unread bytes never exceed its
 *   window. DATA leaves only while transport.bufferedAmount < maxBufferedAmount (_scheduler.ts).
 *   A peer that lets control frames pile up past the hard limit is disconnected ('overloaded').
 * - Heartbeats (_heartbeat.ts): PING every interval (skipped while traffic flows both ways); silence
 *   for the timeout closes the session.
 * - Compression: the agent's HELLO offers deflate, the hub's WELCOME picks it (option
 *   `compression`, default 'deflate'). A stream opened with `compress: true` on such a session
 *   carries ZDATA both ways (_compress.ts: one context per direction, shared by the session's
 *   compressed streams); `compress: 'answers'` only from the acceptor to the opener (the opener's
 *   bytes stay DATA: requests with credentials never share a context, CRIME). `onOpen` learns it
 *   from its third argument. Each direction is checked on its own: ZDATA where that direction is
 *   plain, or DATA where it is compressed, ends the session (protocol). Frames keep their order
 *   across the asynchronous deflate and inflate (_ordered.ts). Bad compressed input ends the
 *   session (protocol): the context is shared.
 * - DRAIN: either side's drain() refuses new streams both ways; the session closes ('drained')
 *   when no stream is left. close() ends everything at once. Either way `closed` resolves once,
 *   every stream and pending open fails, and no timer or transport listener stays armed.
 */
import type { Duplex } from 'node:stream';
import { ErrorCode, TetherError, messageOf } from '../errors.ts';
import { bridge } from './_bridge.ts';
import { createCodec } from './_compress.ts';
import { createReceiveGate, createSendQueue } from './_ordered.ts';
import { createHeartbeat } from './_heartbeat.ts';
import { openRefusal, refusalError, type PendingOpen } from './_open.ts';
import { createScheduler } from './_scheduler.ts';
import { StreamDuplex, TunnelStream, resetError } from './_stream.ts';
import { createStreamTable } from './_stream-table.ts';
import type { OpenInfo, SessionClosed, SessionCloseCode, SessionInternals, SessionState, TunnelSession, TunnelSessionOptions } from './types.ts';
import { decodeFrame, encodeFrame, hostSchema, MAX_FRAME_PAYLOAD, MAX_FRAME_SIZE, MAX_STREAM_ID, MAX_WINDOW, openPortSchema, type Frame, type GoAwayCode, type Hello, type OpenCompress, type StreamFrame } from './frames.ts';

export type { Hello } from './frames.ts';
export type { OpenInfo, OpenOptions, SessionClosed, SessionCloseCode, SessionInternals, SessionState, SessionStats, TunnelSession, TunnelSessionOptions, TunnelTransport } from './types.ts';

const internals = new WeakMap<TunnelSession, () => SessionInternals>();
/** The session's internal tables, for leak checks in tests and benchmarks. */
export function inspectSession(s: TunnelSession): SessionInternals {
  const f = internals.get(s);
  if (!f) throw new TetherError(ErrorCode.Internal, 'inspect session: not a tunnel session');
  return f();
}

/** The stream id of a Duplex from open() (for logs and per-stream metrics). */
export function streamIdOf(d: Duplex): number | undefined {
  return d instanceof StreamDuplex ? d.streamId : undefined;
}

const wsCloseCodes: Record<SessionCloseCode, number> = { normal: 1000, drained: 1000, replaced: 1000, refused: 1008, protocol: 1002, heartbeat: 1001, overloaded: 1013, transport: 1006 };

export function createTunnelSession(opts: TunnelSessionOptions): TunnelSession {
  const { transport, role } = opts;
  const id = opts.id ?? globalThis.crypto.randomUUID().slice(0, 8);
  const log = opts.log.child({ session: id, role });
  const now = opts.now ?? Date.now;
  const window = opts.initialWindow ?? 256 * 1024;
  const openTimeoutMs = opts.openTimeoutMs ?? 10_000;
  const maxStreams = opts.maxStreams ?? 4096;
  const maxBuffered = opts.maxBufferedAmount ?? 256 * 1024;
  const hardLimit = Math.max(4 * maxBuffered, maxBuffered + 1024 * 1024);
  const intervalMs = opts.heartbeatIntervalMs ?? 5_000;
  const timeoutMs = opts.heartbeatTimeoutMs ?? 15_000;
  const bad = (what: string) => new TetherError(ErrorCode.BadConfig, `create tunnel session: ${what}`);
  if (role === 'agent' && !opts.hello) throw bad('the agent role needs a hello');
  if (!(timeoutMs > intervalMs && intervalMs > 0)) throw bad(`heartbeat timeout (${timeoutMs} ms) must exceed the interval (${intervalMs} ms)`);
  if (!(Number.isInteger(window) && window >= 1 && window <= MAX_WINDOW)) throw bad(`initialWindow ${window} outside 1…${MAX_WINDOW}`);

  let state: SessionState = 'handshake';
  let peer: Hello | undefined = role === 'agent' ? opts.hello : undefined;
  let closeInfo: SessionClosed | undefined;
  let nextId = role === 'hub' ? 1 : 2;
  let lastPeerId = 0;
  let bytesIn = 0;
  let bytesOut = 0;
  let overloadPending = false;
  /** What this side is willing to use, and what the handshake chose. */
  const compressionWanted = opts.compression ?? 'deflate';
  let compression: 'deflate' | 'none' = 'none';
  const api = { rawIn: 0, rawOut: 0, wireIn: 0, wireOut: 0 };
  const codec = createCodec();

  let markReady!: () => void;
  let failReady!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => ((markReady = res), (failReady = rej)));
  ready.catch(() => {});
  let resolveClosed!: (c: SessionClosed) => void;
  const closed = new Promise<SessionClosed>((res) => (resolveClosed = res));

  /** Every frame but GOAWAY goes through the ordered queue (_ordered.ts). */
  const send = (frame: Frame) => {
    if (frame.type === 'goaway') return transmit(encodeFrame(frame));
    if (state !== 'closed') tx.frame(encodeFrame(frame));
  };
  const transmit = (bytes: Uint8Array) => {
    transport.send(bytes);
    heartbeat.sent();
    if (!overloadPending && transport.bufferedAmount > hardLimit) {
      overloadPending = true;
      queueMicrotask(() => end('overloaded', `the peer is not reading: ${transport.bufferedAmount} bytes queued`, 'local'));
    }
  };

  const tx = createSendQueue({
    transmit,
    deflate: (data) => codec.deflate(data),
    onError: (sid, e) => end('protocol', `compress stream ${sid}: ${messageOf(e)}`, 'local'),
    onFlushed: () => {
      scheduler.flush();
      drainedCheck();
    },
  });

  const scheduler = createScheduler({
    bufferedAmount: () => transport.bufferedAmount + tx.pendingRaw,
    maxBufferedAmount: maxBuffered,
    pollMs: transport.onDrain ? 50 : 1,
    sendData: (st, data) => {
      bytesOut += data.length;
      if (!st.compressOut) return send({ type: 'data', stream: st.id, data });
      api.rawOut += data.length;
      tx.compressed(st.id, data, (wire) => (api.wireOut += wire));
    },
  });

  const table = createStreamTable((st) => scheduler.forget(st));
  const settleOpen = table.settle;

  const host = {
    send,
    wantSend: (st: TunnelStream) => scheduler.want(st),
    release: (st: TunnelStream) => {
      table.release(st);
      log.debug('tunnel stream ended', { stream: st.id, destination: st.destination });
      drainedCheck();
    },
  };
  /** `compress` as in OPEN; `opener`: this side sent the OPEN (an 'answers' stream compresses what the acceptor sends). */
  const newStream = (sid: number, destination: string, peerWindow: number, compress: OpenCompress | false, opener: boolean) => {
    const compressOut = compress === true || (compress === 'answers' && !opener);
    const compressIn = compress === true || (compress === 'answers' && opener);
    const st = new TunnelStream(sid, destination, host, { window, peerWindow, writableHighWaterMark: 64 * 1024, compressOut, compressIn });
    table.addStream(st);
    return st;
  };

  const heartbeat = createHeartbeat({
    intervalMs,
    timeoutMs,
    now,
    ping: (data) => send({ type: 'ping', data }),
    onTimeout: (silent) => end('heartbeat', `heartbeat: nothing from the peer for ${silent} ms (timeout ${timeoutMs} ms)`, 'local'),
  });

  /** No new streams either way; opens still waiting for the handshake give up. */
  const enterDraining = () => {
    state = 'draining';
    failReady(new TetherError(ErrorCode.TunnelClosed, 'tunnel session: draining before the handshake finished'));
    for (const [sid, p] of table.unsent()) settleOpen(sid, p, new TetherError(ErrorCode.TunnelClosed, `open stream to ${p.host}:${p.port}: the tunnel session is draining`));
  };
  const liveCount = () => table.live;
  /** Drained once no stream is left and the send queue is out (a last ZDATA and FIN included). */
  const drainedCheck = () => {
    if (state === 'draining' && liveCount() === 0 && tx.length === 0) end('drained', 'drained: no streams left', 'local');
  };

  /** Reset one stream, whatever stage it is in, and tell the peer. */
  const resetStream = (sid: number, err: TetherError, reason: string) => {
    table.fail(sid, err);
    send({ type: 'close', stream: sid, reset: true, reason });
    drainedCheck();
  };

  const end = (code: GoAwayCode, reason: string, by: SessionClosed['by']) => {
    if (state === 'closed') return;
    state = 'closed';
    closeInfo = { reason, code: by === 'transport' ? 'transport' : code, by };
    heartbeat.stop();
    scheduler.stop();
    tx.stop();
    rx.stop();
    codec.close();
    if (by === 'local') {
      try {
        send({ type: 'goaway', code, reason });
      } catch {
        // the transport is already gone
      }
    }
    const err = new TetherError(ErrorCode.TunnelClosed, `tunnel session closed: ${reason}`);
    table.failAll(err);
    failReady(err);
    const fields = { code: closeInfo.code, by, reason, node: peer?.node };
    const quiet = closeInfo.code === 'normal' || closeInfo.code === 'drained' || closeInfo.code === 'replaced';
    if (quiet) log.info('tunnel session closed', fields);
    else log.warn('tunnel session closed', fields);
    if (by !== 'transport') transport.close(wsCloseCodes[code], reason);
    resolveClosed(closeInfo);
  };

  const protocolError = (reason: string) => {
    log.warn('tunnel frame rejected', { reason });
    end('protocol', `protocol error: ${reason}`, 'local');
  };
  const streamProtocolError = (sid: number, reason: string) => {
    log.warn('tunnel stream frame rejected', { stream: sid, reason });
    resetStream(sid, new TetherError(ErrorCode.TunnelProtocol, `tunnel stream ${sid}: protocol error: ${reason}`), `protocol error: ${reason}`);
  };

  const becomeOpen = () => {
    state = 'open';
    markReady();
    for (const [sid, p] of table.unsent()) sendOpen(sid, p);
  };
  const sendOpen = (sid: number, p: PendingOpen) => {
    p.sent = true;
    if (compression !== 'deflate') p.compress = false;
    send({ type: 'open', stream: sid, host: p.host, port: p.port, window, ...(p.compress ? { compress: p.compress } : {}) });
  };

  const onHelloFrame = (h: Hello, offered: readonly string[] | undefined) => {
    if (role !== 'hub' || peer) return protocolError(role === 'hub' ? 'second HELLO' : 'HELLO sent to an agent');
    peer = h;
    const chosen = compressionWanted === 'deflate' && offered?.includes('deflate') ? 'deflate' : 'none';
    Promise.resolve()
      .then(() => opts.onHello?.(h))
      .then(
        () => {
          if (state !== 'handshake') return;
          compression = chosen;
          send({ type: 'welcome', session: id, ...(chosen === 'deflate' ? { compression: chosen } : {}) });
          becomeOpen();
          log.info('tunnel session open', { node: h.node, addresses: h.addresses, version: h.version, compression });
        },
        (e) => {
          log.warn('tunnel agent refused', { node: h.node, reason: messageOf(e) });
          end('refused', messageOf(e), 'local');
        },
      );
  };

  const acceptOpen = (f: Extract<Frame, { type: 'open' }>) => {
    const sid = f.stream;
    const peerParity = role === 'hub' ? 0 : 1;
    if (sid % 2 !== peerParity || sid <= lastPeerId) return streamProtocolError(sid, `OPEN with stream id ${sid}, not a new id of the peer`);
    lastPeerId = sid;
    const destination = `${f.host}:${f.port}`;
    const refuse = (code: string, reason: string) => {
      log.info('tunnel stream refused', { stream: sid, destination, reason });
      send({ type: 'open-result', stream: sid, result: { ok: false, code, reason } });
    };
    if (state !== 'open') return refuse(ErrorCode.TunnelClosed, `the ${role} is ${state === 'draining' ? 'draining' : 'not ready'}: no new streams`);
    if (!opts.onOpen) return refuse(ErrorCode.TunnelDenied, `the ${role} accepts no streams`);
    if (liveCount() >= maxStreams) return refuse(ErrorCode.TunnelDial, `too many streams (limit ${maxStreams})`);
    table.startDial(sid, destination);
    const onOpen = opts.onOpen;
    const compress = compression === 'deflate' && f.compress ? f.compress : false;
    const info: OpenInfo = !compress ? { compress: false } : compress === true ? { compress: true } : { compress: true, direction: 'answers' };
    Promise.resolve()
      .then(() => onOpen(f.host, f.port, info))
      .then(
        (socket) => {
          if (!table.endDial(sid)) {
            socket.destroy(); // reset or session closed while dialing
            return;
          }
          const st = newStream(sid, destination, f.window, compress, false);
          send({ type: 'open-result', stream: sid, result: { ok: true, window } });
          log.debug('tunnel stream open', { stream: sid, destination, compress });
          bridge(st.duplex, socket, log, sid);
        },
        (e) => {
          if (!table.endDial(sid)) return;
          const r = openRefusal(e);
          refuse(r.code, r.reason);
          drainedCheck();
        },
      );
  };

  const onStreamFrame = (f: StreamFrame) => {
    if (f.type === 'open') return acceptOpen(f);
    const sid = f.stream;
    if (f.type === 'open-result') {
      const p = table.pendingOpen(sid);
      if (!p || !p.sent) {
        if (f.result.ok) send({ type: 'close', stream: sid, reset: true, reason: 'stream no longer wanted' });
        return;
      }
      if (!f.result.ok) return settleOpen(sid, p, refusalError(p, f.result)), drainedCheck();
      const st = newStream(sid, `${p.host}:${p.port}`, f.result.window, p.compress, true);
      log.debug('tunnel stream open', { stream: sid, destination: st.destination });
      return settleOpen(sid, p, st.duplex);
    }
    const st = table.stream(sid);
    if (f.type === 'close' && f.reset) {
      table.fail(sid, resetError(f.reason));
      return drainedCheck();
    }
    if (f.type === 'zdata') return onZData(sid, f.data, st);
    if (!st) return; // a late frame for a stream that is already gone
    if (f.type === 'data' && st.compressIn) return protocolError(`DATA on stream ${sid}, which is compressed (ZDATA expected)`);
    let violation: string | undefined;
    if (f.type === 'data') {
      bytesIn += f.data.length;
      violation = st.onData(f.data);
    } else if (f.type === 'credit') violation = st.onCredit(f.increment);
    else violation = st.onFin();
    if (violation) streamProtocolError(sid, violation);
  };

  /**
   * ZDATA: always inflated, even for a stream that is gone (the context is shared: skipping a
   * frame would corrupt the next). Later frames wait until it is done.
   */
  const onZData = (sid: number, data: Uint8Array, st: TunnelStream | undefined) => {
    if (compression !== 'deflate') return protocolError(`ZDATA on stream ${sid}, but the session negotiated no compression`);
    if (st && !st.compressIn) return protocolError(`ZDATA on stream ${sid}, which is not compressed${st.compressOut ? ' in this direction (compress "answers")' : ''}`);
    api.wireIn += data.length;
    rx.hold();
    codec.inflate(data, MAX_FRAME_PAYLOAD).then(
      (raw) => {
        if (state === 'closed') return;
        api.rawIn += raw.length;
        bytesIn += raw.length;
        const live = table.stream(sid);
        if (live && raw.length > 0) {
          const violation = live.onData(raw);
          if (violation) streamProtocolError(sid, violation);
        }
        rx.release();
      },
      (e) => protocolError(`ZDATA on stream ${sid}: ${messageOf(e)}`),
    );
  };

  const onFrame = (f: Frame) => {
    if ('stream' in f) {
      if (state === 'handshake') return protocolError(`${f.type} frame before the handshake finished`);
      return onStreamFrame(f);
    }
    switch (f.type) {
      case 'hello':
        return onHelloFrame(f.hello, f.compression);
      case 'welcome':
        if (role !== 'agent' || state !== 'handshake') return protocolError('unexpected WELCOME');
        if (f.compression !== undefined) {
          if (f.compression !== 'deflate' || compressionWanted !== 'deflate') return protocolError(`WELCOME chose compression "${f.compression}", which was not offered`);
          compression = 'deflate';
        }
        becomeOpen();
        return log.info('tunnel session open', { hubSession: f.session, compression });
      case 'ping':
        return send({ type: 'pong', data: f.data });
      case 'pong':
        return heartbeat.pong(f.data);
      case 'drain':
        if (state === 'closed' || state === 'draining') return;
        enterDraining();
        log.info('tunnel peer draining', { reason: f.reason });
        opts.onDrain?.(f.reason);
        return drainedCheck();
      case 'goaway':
        return end(f.code, `peer: ${f.reason}`, 'peer');
    }
  };

  const rx = createReceiveGate({
    handle: receive,
    onClose: (code, reason) => end('normal', `connection closed (${code}${reason ? ` ${reason}` : ''})`, 'transport'),
    maxQueuedBytes: hardLimit,
    onOverflow: (n) => end('overloaded', `${n} bytes received while inflating`, 'local'),
  });
  transport.onMessage((data) => {
    if (state === 'closed') return;
    heartbeat.heard();
    rx.message(data);
  });
  function receive(data: Uint8Array): void {
    const r = decodeFrame(data);
    if (!r.ok) return r.scope === 'session' ? protocolError(r.reason) : streamProtocolError(r.stream, r.reason);
    if (role === 'hub' && !peer && r.frame.type !== 'hello' && r.frame.type !== 'goaway') return protocolError(`expected HELLO first, got ${r.frame.type}`);
    onFrame(r.frame);
  }
  transport.onDrain?.(() => scheduler.flush());
  // Frames that arrived before the close are handled first (a GOAWAY may wait behind a ZDATA).
  transport.onClose((code, reason) => rx.close(code, reason));

  const session: TunnelSession = {
    id,
    get peer() {
      return peer;
    },
    get state() {
      return state;
    },
    get compression() {
      return compression;
    },
    ready,
    closed,
    open(hostname, port, o = {}) {
      const destination = `${hostname}:${port}`;
      const fail = (code: ErrorCode, what: string) => Promise.reject(new TetherError(code, `open stream to ${destination}: ${what}`));
      if (!hostSchema.safeParse(hostname).success || !openPortSchema.safeParse(port).success) return fail(ErrorCode.TunnelDial, 'not a valid host and port');
      if (state === 'closed') return fail(ErrorCode.TunnelClosed, `the tunnel session is closed (${closeInfo?.reason})`);
      if (state === 'draining') return fail(ErrorCode.TunnelClosed, 'the tunnel session is draining');
      if (o.signal?.aborted) return fail(ErrorCode.TunnelDial, 'aborted');
      if (nextId > MAX_STREAM_ID) {
        session.drain('stream ids exhausted');
        return fail(ErrorCode.TunnelClosed, 'stream ids exhausted; the session is draining');
      }
      const sid = nextId;
      nextId += 2;
      return new Promise<Duplex>((resolve, reject) => {
        const ms = o.timeoutMs ?? openTimeoutMs;
        const p: PendingOpen = {
          host: hostname,
          port,
          compress: o.compress === true || o.compress === 'answers' ? o.compress : false,
          sent: false,
          resolve,
          reject,
          dispose: () => {
            clearTimeout(timer);
            o.signal?.removeEventListener('abort', onAbort);
          },
        };
        const giveUp = (err: TetherError, reason: string) => {
          if (table.pendingOpen(sid) !== p) return;
          settleOpen(sid, p, err);
          if (p.sent) send({ type: 'close', stream: sid, reset: true, reason });
          drainedCheck();
        };
        const timer = setTimeout(() => giveUp(new TetherError(ErrorCode.TunnelTimeout, `open stream to ${destination}: no answer from the peer within ${ms} ms`), 'open timed out'), ms);
        timer.unref?.();
        const onAbort = () => giveUp(new TetherError(ErrorCode.TunnelDial, `open stream to ${destination}: aborted`, { cause: o.signal?.reason }), 'open aborted');
        o.signal?.addEventListener('abort', onAbort, { once: true });
        table.addPending(sid, p);
        if (state === 'open') sendOpen(sid, p);
      });
    },
    drain(reason = 'draining') {
      if (state === 'closed' || state === 'draining') return;
      enterDraining();
      log.info('tunnel session draining', { reason, streams: liveCount() });
      send({ type: 'drain', reason });
      drainedCheck();
    },
    close(reason, code = 'normal') {
      end(code, reason, 'local');
    },
    stats() {
      const queuedBytes: Record<number, number> = {};
      for (const st of table.streams()) queuedBytes[st.id] = st.queued;
      return { streams: liveCount(), bytesIn, bytesOut, queuedBytes, rttMs: heartbeat.rttMs, apiRawIn: api.rawIn, apiRawOut: api.rawOut, apiWireIn: api.wireIn, apiWireOut: api.wireOut };
    },
  };
  internals.set(session, () => ({
    state,
    ...table.counts,
    scheduled: scheduler.waiting,
    timers: heartbeat.timers + scheduler.timers + table.counts.pendingOpens,
    zlibContexts: codec.contexts,
    queuedFrames: tx.length + rx.length,
  }));

  if (role === 'agent') send({ type: 'hello', hello: opts.hello!, ...(compressionWanted === 'deflate' ? { compression: ['deflate'] } : {}) });
  log.debug('tunnel session started', { maxFrame: MAX_FRAME_SIZE, window });
  return session;
}
