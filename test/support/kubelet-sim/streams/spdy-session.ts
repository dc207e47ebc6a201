/**
 * A SPDY/3.1 session over an upgraded socket, server or client side.
 *
 * Protocol flow (kubelet side): the peer opens streams with SYN_STREAM (odd ids from a client);
 * `onStream` decides, the session answers SYN_REPLY (empty headers, as the kubelet does) or
 * RST_STREAM(REFUSED_STREAM). Data flows as DATA frames, each direction ends with FIN or
 * RST_STREAM. PINGs from the peer are echoed. `close()` resets what is still open, sends GOAWAY
 * and ends the socket; a GOAWAY from the peer only stops new streams.
 *
 * Flow control: the session tracks the peer's windows (64 KiB per stream and per session unless
 * SETTINGS say otherwise) and acknowledges consumed data with WINDOW_UPDATE frames. moby/spdystream,
 * which kube-apiserver and client-go use, implements no flow control at all: it never sends
 * WINDOW_UPDATE. Enforcing the peer's window against it would stall every stream after 64 KiB, so in
 * mode 'auto' (the default) the window is enforced only once the peer has shown it does flow control
 * (sent a WINDOW_UPDATE, or SETTINGS with an initial window size). 'enforce' always enforces, 'off'
 * never. Windows the peer overruns are not held against it for the same reason.
 */
import type { Duplex } from 'node:stream';
import { messageOf } from '../../../../shared/errors.ts';
import type { Logger } from '../../../../shared/log.ts';
import { createFrameCodec } from './spdy-codec.ts';
import {
  defaultWindow,
  FrameParser,
  GoAwayStatus,
  RstStatus,
  SettingId,
  type Frame,
  type HeaderMap,
} from './spdy-frames.ts';
import { SpdyStream, type StreamOwner } from './spdy-stream.ts';

export type FlowControlMode = 'auto' | 'enforce' | 'off';

export interface SpdySessionOptions {
  role: 'server' | 'client';
  log: Logger;
  /** Called for each stream the peer opens; return false (or throw) to refuse it. */
  onStream?: (stream: SpdyStream) => boolean | void;
  flowControl?: FlowControlMode;
  /** Largest DATA payload sent in one frame. */
  maxDataFrame?: number;
}

export class SpdySession implements StreamOwner {
  readonly streams = new Map<number, SpdyStream>();
  readonly closed: Promise<void>;
  private readonly codec = createFrameCodec();
  private readonly parser = new FrameParser();
  private readonly log: Logger;
  private readonly mode: FlowControlMode;
  private readonly maxDataFrame: number;
  private peerFlowControl = false;
  private peerInitialWindow = defaultWindow;
  private sessionSendWindow = defaultWindow;
  private sessionUnacked = 0;
  private windowWaiters: Array<() => void> = [];
  private readBlockers = new Set<SpdyStream>();
  private pumping = false;
  private writeTail: Promise<void> = Promise.resolve();
  private nextStreamId: number;
  private lastPeerStreamId = 0;
  private nextPingId: number;
  private pings = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  private goneAway = false;
  private inputEnd: string | undefined;
  private ended = false;
  private resolveClosed!: () => void;

  constructor(
    private readonly socket: Duplex,
    private readonly opts: SpdySessionOptions,
  ) {
    this.log = opts.log;
    this.mode = opts.flowControl ?? 'auto';
    this.maxDataFrame = opts.maxDataFrame ?? 32 * 1024;
    this.nextStreamId = opts.role === 'client' ? 1 : 2;
    this.nextPingId = opts.role === 'client' ? 1 : 2;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    const tcp = socket as Duplex & { setNoDelay?: (v: boolean) => void; setTimeout?: (ms: number) => void };
    tcp.setNoDelay?.(true);
    tcp.setTimeout?.(0);
    socket.on('data', (chunk: Buffer) => {
      this.parser.push(chunk);
      void this.pump();
    });
    // Frames already received are still delivered after the peer hangs up.
    socket.on('end', () => this.inputDone('peer ended the connection'));
    socket.on('close', () => this.inputDone('connection closed'));
    socket.on('error', (err) => this.terminate(`connection error: ${err.message}`));
    socket.resume();
  }

  /** Feeds bytes that arrived with the upgrade request, before the socket's own data. */
  start(head?: Buffer): void {
    if (head && head.length > 0) {
      this.parser.push(head);
      void this.pump();
    }
  }

  get isClosed(): boolean {
    return this.ended;
  }

  /** Opens a stream (client role in tests); await `stream.replied` for the SYN_REPLY. */
  openStream(headers: HeaderMap): SpdyStream {
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = new SpdyStream(id, headers, this, this.peerInitialWindow);
    this.streams.set(id, stream);
    void this.write({ type: 'syn_stream', streamId: id, associatedId: 0, priority: 0, fin: false, unidirectional: false, headers });
    return stream;
  }

  ping(): Promise<void> {
    const id = this.nextPingId;
    this.nextPingId += 2;
    if (this.ended) return Promise.reject(new Error('ping: session closed'));
    return new Promise((resolve, reject) => {
      this.pings.set(id, { resolve, reject });
      void this.write({ type: 'ping', id });
    });
  }

  /** Resets open streams, sends GOAWAY and ends the socket once everything queued is written. */
  async close(): Promise<void> {
    if (this.ended) return;
    for (const stream of [...this.streams.values()]) stream.destroy();
    if (!this.goneAway) {
      this.goneAway = true;
      await this.write({ type: 'goaway', lastGoodStreamId: this.lastPeerStreamId, status: GoAwayStatus.Ok });
    }
    await this.writeTail;
    this.socket.end();
  }

  // StreamOwner

  async sendData(stream: SpdyStream, data: Buffer, fin: boolean): Promise<void> {
    await stream.ready;
    let offset = 0;
    do {
      if (this.ended || stream.resetStatus !== undefined) return;
      let n = Math.min(data.length - offset, this.maxDataFrame);
      if (n > 0 && this.enforcing) {
        while (!this.ended && stream.resetStatus === undefined && (stream.sendWindow <= 0 || this.sessionSendWindow <= 0)) {
          await new Promise<void>((resolve) => this.windowWaiters.push(resolve));
        }
        if (this.ended || stream.resetStatus !== undefined) return;
        n = Math.min(n, stream.sendWindow, this.sessionSendWindow);
      }
      const piece = data.subarray(offset, offset + n);
      offset += n;
      stream.sendWindow -= n;
      this.sessionSendWindow -= n;
      await this.write({ type: 'data', streamId: stream.id, fin: fin && offset >= data.length, data: piece });
    } while (offset < data.length);
  }

  sendReset(stream: SpdyStream, status: number): void {
    const frame: Frame = { type: 'rst_stream', streamId: stream.id, status };
    // A handler that resets a stream while accepting it: the RST goes after the SYN_REPLY.
    if (stream.opening) void stream.ready.then(() => this.write(frame));
    else void this.write(frame);
  }

  consumed(stream: SpdyStream, bytes: number): void {
    if (stream.finished || stream.remoteFin) return;
    stream.recvUnacked += bytes;
    if (stream.recvUnacked >= defaultWindow / 2) {
      void this.write({ type: 'window_update', streamId: stream.id, delta: stream.recvUnacked });
      stream.recvUnacked = 0;
    }
  }

  setReadBlocked(stream: SpdyStream, blocked: boolean): void {
    if (blocked) {
      this.readBlockers.add(stream);
      this.socket.pause();
    } else if (this.readBlockers.delete(stream) && this.readBlockers.size === 0) {
      this.socket.resume();
      void this.pump();
    }
  }

  forget(stream: SpdyStream): void {
    this.streams.delete(stream.id);
  }

  // Reading

  private get enforcing(): boolean {
    return this.mode === 'enforce' || (this.mode === 'auto' && this.peerFlowControl);
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.ended && this.readBlockers.size === 0) {
        const raw = this.parser.next();
        if (!raw) break;
        this.handle(await this.codec.decode(raw));
      }
    } catch (err) {
      this.log.warn('spdy protocol error', { err: messageOf(err) });
      void this.write({ type: 'goaway', lastGoodStreamId: this.lastPeerStreamId, status: GoAwayStatus.ProtocolError });
      this.goneAway = true;
      await this.writeTail;
      this.terminate(`protocol error: ${messageOf(err)}`);
    } finally {
      this.pumping = false;
    }
    if (this.inputEnd !== undefined && this.readBlockers.size === 0) this.terminate(this.inputEnd);
  }

  private inputDone(reason: string): void {
    this.inputEnd ??= reason;
    void this.pump();
  }

  private handle(frame: Frame): void {
    switch (frame.type) {
      case 'syn_stream':
        return this.accept(frame.streamId, frame.headers, frame.fin);
      case 'syn_reply':
      case 'headers': {
        const stream = this.streams.get(frame.streamId);
        if (frame.type === 'syn_reply') stream?.onReply(frame.headers);
        if (frame.fin) stream?.onRemoteFin();
        return;
      }
      case 'data':
        return this.onData(frame.streamId, frame.data, frame.fin);
      case 'rst_stream':
        this.streams.get(frame.streamId)?.onReset(frame.status);
        return;
      case 'settings':
        for (const entry of frame.entries) {
          if (entry.id !== SettingId.InitialWindowSize) continue;
          const delta = entry.value - this.peerInitialWindow;
          this.peerInitialWindow = entry.value;
          for (const stream of this.streams.values()) stream.sendWindow += delta;
          this.peerFlowControl = true;
        }
        return this.wakeWindowWaiters();
      case 'window_update':
        if (frame.streamId === 0) this.sessionSendWindow += frame.delta;
        else {
          const stream = this.streams.get(frame.streamId);
          if (stream) stream.sendWindow += frame.delta;
        }
        this.peerFlowControl = true;
        return this.wakeWindowWaiters();
      case 'ping':
        if ((frame.id & 1) === (this.nextPingId & 1)) {
          this.pings.get(frame.id)?.resolve();
          this.pings.delete(frame.id);
        } else void this.write(frame);
        return;
      case 'goaway':
        this.goneAway = true;
        this.log.debug('spdy goaway from peer', { lastGoodStreamId: frame.lastGoodStreamId, status: frame.status });
        return;
      case 'unknown':
        this.log.debug('spdy unknown control frame ignored', { type: frame.controlType });
        return;
    }
  }

  private accept(id: number, headers: HeaderMap, fin: boolean): void {
    const peerParity = this.opts.role === 'server' ? 1 : 0;
    if ((id & 1) !== peerParity || id <= this.lastPeerStreamId) {
      void this.write({ type: 'rst_stream', streamId: id, status: RstStatus.ProtocolError });
      return;
    }
    this.lastPeerStreamId = id;
    if (this.goneAway) {
      void this.write({ type: 'rst_stream', streamId: id, status: RstStatus.RefusedStream });
      return;
    }
    const stream = new SpdyStream(id, headers, this, this.peerInitialWindow);
    this.streams.set(id, stream);
    let replyQueued!: () => void;
    stream.opening = true;
    stream.ready = new Promise((resolve) => (replyQueued = () => {
      stream.opening = false;
      resolve();
    }));
    let accepted: boolean | void = true;
    try {
      accepted = this.opts.onStream ? this.opts.onStream(stream) : false;
    } catch (err) {
      this.log.warn('spdy stream handler failed', { streamId: id, err: messageOf(err) });
      accepted = false;
    }
    if (accepted === false) {
      stream.reset(RstStatus.RefusedStream);
      replyQueued();
      return;
    }
    void this.write({ type: 'syn_reply', streamId: id, fin: false, headers: {} });
    replyQueued();
    if (fin) stream.onRemoteFin();
  }

  private onData(streamId: number, data: Buffer, fin: boolean): void {
    this.sessionUnacked += data.length;
    if (this.sessionUnacked >= defaultWindow / 2) {
      void this.write({ type: 'window_update', streamId: 0, delta: this.sessionUnacked });
      this.sessionUnacked = 0;
    }
    const stream = this.streams.get(streamId);
    if (!stream) {
      this.log.debug('spdy data for unknown stream ignored', { streamId, bytes: data.length });
      return;
    }
    if (stream.remoteFin) {
      stream.reset(RstStatus.StreamAlreadyClosed);
      return;
    }
    stream.onData(data);
    if (fin) stream.onRemoteFin();
  }

  // Writing

  private write(frame: Frame): Promise<void> {
    if (this.ended) return Promise.resolve();
    const encoded = this.codec.encode(frame);
    const next = this.writeTail.then(async () => {
      const bytes = await encoded;
      if (this.ended || !this.socket.writable) return;
      if (!this.socket.write(bytes)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            this.socket.off('drain', done);
            this.socket.off('close', done);
            resolve();
          };
          this.socket.on('drain', done);
          this.socket.on('close', done);
        });
      }
    });
    this.writeTail = next.catch((err) => {
      this.log.error('spdy write failed', { err: messageOf(err) });
      this.socket.destroy();
    });
    return this.writeTail;
  }

  private wakeWindowWaiters(): void {
    const waiters = this.windowWaiters;
    this.windowWaiters = [];
    for (const wake of waiters) wake();
  }

  private terminate(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.log.debug('spdy session ended', { reason });
    // Readers still get what was received; writes from now on go nowhere.
    for (const stream of [...this.streams.values()]) {
      stream.onRemoteFin();
      if (!stream.writableEnded) stream.end();
    }
    this.streams.clear();
    this.wakeWindowWaiters();
    for (const ping of this.pings.values()) ping.reject(new Error(`ping: ${reason}`));
    this.pings.clear();
    this.codec.close();
    if (!this.socket.destroyed) this.socket.destroy();
    this.resolveClosed();
  }
}
