/**
 * One SPDY stream as a Node Duplex. Writing sends DATA frames (split to the peer's window when
 * the session enforces flow control), `end()` sends an empty DATA frame with FIN, reading yields
 * the peer's DATA payloads and ends at the peer's FIN. Both halves close independently
 * (`allowHalfOpen`); a stream destroyed before both halves closed sends RST_STREAM(CANCEL).
 * A RST_STREAM from the peer ends the readable side and destroys the stream without an error;
 * `resetStatus` then says why.
 *
 * Backpressure: when the readable buffer is full, the stream asks the session to stop reading
 * the socket (the peers kube-apiserver and client-go use never send WINDOW_UPDATE, so pausing the
 * connection is the only backpressure they feel) and holds back the WINDOW_UPDATE for those bytes
 * until the consumer reads again.
 */
import { Duplex } from 'node:stream';
import { RstStatus, type HeaderMap } from './spdy-frames.ts';

/** What a stream needs from its session (implemented by SpdySession). */
export interface StreamOwner {
  sendData(stream: SpdyStream, data: Buffer, fin: boolean): Promise<void>;
  sendReset(stream: SpdyStream, status: number): void;
  consumed(stream: SpdyStream, bytes: number): void;
  setReadBlocked(stream: SpdyStream, blocked: boolean): void;
  forget(stream: SpdyStream): void;
}

const empty = Buffer.alloc(0);

export class SpdyStream extends Duplex {
  /** Bytes the peer still accepts on this stream (may go negative after SETTINGS shrink it). */
  sendWindow: number;
  /** Status of the RST_STREAM that ended the stream, from either side. */
  resetStatus: number | undefined;
  remoteFin = false;
  localFin = false;
  replyHeaders: HeaderMap | undefined;
  /** Bytes consumed since the last WINDOW_UPDATE for this stream. */
  recvUnacked = 0;
  /** Resolves once the frame that opened or accepted the stream is queued; DATA waits for it. */
  ready: Promise<void> = Promise.resolve();
  /** True while the session has not yet queued the SYN_REPLY of an accepted stream. */
  opening = false;
  private held = 0;
  private replyError: Error | undefined;
  private replyWaiters: Array<{ resolve: (h: HeaderMap) => void; reject: (e: Error) => void }> = [];

  constructor(
    readonly id: number,
    /** Headers of the SYN_STREAM that opened the stream. */
    readonly headers: HeaderMap,
    private readonly owner: StreamOwner,
    initialWindow: number,
  ) {
    super({ allowHalfOpen: true });
    this.sendWindow = initialWindow;
  }

  /** The SYN_REPLY headers of a stream this side opened; rejects if it was reset or closed first. */
  get replied(): Promise<HeaderMap> {
    if (this.replyHeaders) return Promise.resolve(this.replyHeaders);
    if (this.replyError) return Promise.reject(this.replyError);
    return new Promise((resolve, reject) => this.replyWaiters.push({ resolve, reject }));
  }

  private settleReply(headers: HeaderMap | undefined, error: Error): void {
    if (this.replyHeaders || this.replyError) return;
    if (headers) this.replyHeaders = headers;
    else this.replyError = error;
    const waiters = this.replyWaiters;
    this.replyWaiters = [];
    for (const w of waiters) {
      if (headers) w.resolve(headers);
      else w.reject(error);
    }
  }

  /** First value of a SYN_STREAM header (names are lower case). */
  header(name: string): string | undefined {
    return this.headers[name.toLowerCase()]?.[0];
  }

  /** Ends the stream abruptly with RST_STREAM. */
  reset(status: number = RstStatus.Cancel): void {
    if (this.resetStatus === undefined && !(this.localFin && this.remoteFin)) {
      this.resetStatus = status;
      this.owner.sendReset(this, status);
    }
    this.destroy();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.owner.sendData(this, chunk, false).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.localFin = true;
    this.owner.sendData(this, empty, true).then(() => cb(), cb);
  }

  override _read(): void {
    if (this.held === 0) return;
    const bytes = this.held;
    this.held = 0;
    this.owner.consumed(this, bytes);
    this.owner.setReadBlocked(this, false);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.resetStatus === undefined && !(this.localFin && this.remoteFin)) {
      this.resetStatus = RstStatus.Cancel;
      this.owner.sendReset(this, RstStatus.Cancel);
    }
    this.settleReply(undefined, new Error(`stream ${this.id} closed before SYN_REPLY`));
    this.owner.setReadBlocked(this, false);
    this.owner.forget(this);
    cb(err);
  }

  // Called by the session for frames of this stream.

  onReply(headers: HeaderMap): void {
    this.settleReply(headers, new Error('unused'));
  }

  onData(data: Buffer): void {
    if (data.length === 0) return;
    if (this.push(data)) this.owner.consumed(this, data.length);
    else {
      this.held += data.length;
      this.owner.setReadBlocked(this, true);
    }
  }

  onRemoteFin(): void {
    if (this.remoteFin) return;
    this.remoteFin = true;
    this.push(null);
  }

  onReset(status: number): void {
    this.resetStatus = status;
    this.remoteFin = true;
    this.settleReply(undefined, new Error(`stream ${this.id} reset by peer (status ${status})`));
    this.push(null);
    this.destroy();
  }

  /** True when the stream has ended both ways, normally or by reset. */
  get finished(): boolean {
    return this.resetStatus !== undefined || (this.localFin && this.remoteFin);
  }
}
