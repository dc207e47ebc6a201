/**
 * One multiplexed stream: a Duplex plus its flow-control state. The session routes frames here
 * and sends what the stream asks for; the stream never touches the transport.
 *
 * Receive side: the peer may send `allowance` more bytes. DATA spends it and is pushed to the
 * readable side; once the consumer has read half a window (pushed − readableLength − credited ≥
 * window/2) we return that much as CREDIT. The readable buffer therefore never holds more than
 * the window, whatever the consumer does. Consumption is noticed in `read()`, which every way
 * of consuming a Readable goes through (pipe, 'data', async iteration, read()); a push that goes
 * straight to a flowing consumer is noticed right after the push.
 *
 * Send side: `_write` parks one chunk; the scheduler takes it in frames of at most
 * min(credit, MAX_FRAME_PAYLOAD) bytes and the write callback runs once the last byte is sent,
 * so writers see ordinary backpressure. `end()` sends FIN after the last DATA; `destroy()` sends
 * RESET unless the stream is already gone. The stream is released when FIN went both ways or on
 * any RESET.
 */
import { Duplex } from 'node:stream';
import { ErrorCode, TetherError, messageOf } from '../errors.ts';
import { MAX_FRAME_PAYLOAD, MAX_WINDOW, type Frame } from './frames.ts';

export interface StreamHost {
  /** Send a frame of this stream now (CREDIT, CLOSE): small, never held back. */
  send(frame: Frame): void;
  /** This stream has data and credit: queue it for the scheduler. */
  wantSend(st: TunnelStream): void;
  /** The stream is over (FIN both ways, or reset): forget its id. */
  release(st: TunnelStream): void;
}

export interface StreamOptions {
  /** Our receive window (what we told the peer in OPEN or OPEN_RESULT). */
  window: number;
  /** The peer's receive window: our initial credit. */
  peerWindow: number;
  writableHighWaterMark: number;
  /** What we send travels as ZDATA through the session's deflate context (else DATA). */
  compressOut: boolean;
  /** What the peer sends must arrive as ZDATA (else DATA); the session checks it. */
  compressIn: boolean;
}

/** The most stream bytes one ZDATA carries: deflate may grow incompressible input a little. */
export const ZDATA_MAX_RAW = MAX_FRAME_PAYLOAD - 1024;

export class StreamDuplex extends Duplex {
  constructor(
    private readonly st: TunnelStream,
    opts: ConstructorParameters<typeof Duplex>[0],
  ) {
    super(opts);
  }
  get streamId(): number {
    return this.st.id;
  }
  override read(size?: number): unknown {
    const chunk = super.read(size);
    this.st.grant();
    return chunk;
  }
}

export class TunnelStream {
  readonly duplex: Duplex;
  /** Bytes we may still send. */
  credit: number;
  released = false;
  readonly compressOut: boolean;
  readonly compressIn: boolean;
  private allowance: number;
  private pushed = 0;
  private credited = 0;
  private localFin = false;
  private remoteFin = false;
  private pending: { data: Uint8Array; offset: number; cb: (err?: Error | null) => void } | undefined;
  private readonly threshold: number;

  constructor(
    readonly id: number,
    readonly destination: string,
    private readonly host: StreamHost,
    opts: StreamOptions,
  ) {
    this.compressOut = opts.compressOut;
    this.compressIn = opts.compressIn;
    this.credit = opts.peerWindow;
    this.allowance = opts.window;
    this.threshold = Math.max(1, Math.floor(opts.window / 2));
    this.duplex = new StreamDuplex(this, {
      allowHalfOpen: true,
      readableHighWaterMark: opts.window,
      writableHighWaterMark: opts.writableHighWaterMark,
      read: () => this.grant(),
      write: (chunk: Uint8Array, _enc, cb) => {
        if (chunk.length === 0) return cb();
        this.pending = { data: chunk, offset: 0, cb };
        if (this.credit > 0) this.host.wantSend(this);
      },
      final: (cb) => {
        this.localFin = true;
        this.host.send({ type: 'close', stream: this.id, reset: false, reason: '' });
        this.releaseIfDone();
        cb();
      },
      destroy: (err, cb) => {
        this.pending = undefined;
        if (!this.released) {
          this.released = true;
          this.host.send({ type: 'close', stream: this.id, reset: true, reason: err ? messageOf(err) : 'closed' });
          this.host.release(this);
        }
        cb(err);
      },
    });
  }

  /** True when the scheduler can send a DATA frame now. */
  get sendable(): boolean {
    return this.pending !== undefined && this.credit > 0 && !this.released;
  }

  /** Take the next DATA payload; `done` (if set) must run after the frame is sent. */
  take(): { data: Uint8Array; done?: () => void } | undefined {
    const p = this.pending;
    if (!p || this.credit <= 0) return undefined;
    const n = Math.min(p.data.length - p.offset, this.credit, this.compressOut ? ZDATA_MAX_RAW : MAX_FRAME_PAYLOAD);
    const data = p.data.subarray(p.offset, p.offset + n);
    p.offset += n;
    this.credit -= n;
    if (p.offset < p.data.length) return { data };
    this.pending = undefined;
    return { data, done: () => p.cb() };
  }

  /** Bytes held on our side: received but unread, and written but unsent. */
  get queued(): number {
    return this.duplex.readableLength + this.duplex.writableLength;
  }

  /** DATA from the peer. Returns a violation to reset the stream for, or undefined. */
  onData(data: Uint8Array): string | undefined {
    if (this.remoteFin) return 'DATA after FIN';
    if (data.length > this.allowance) return `DATA of ${data.length} bytes beyond the window (credit left: ${this.allowance})`;
    this.allowance -= data.length;
    this.pushed += data.length;
    this.duplex.push(data);
    this.grant();
    return undefined;
  }

  onCredit(increment: number): string | undefined {
    if (this.credit + increment > MAX_WINDOW) return `CREDIT of ${increment} overflows the window`;
    this.credit += increment;
    if (this.pending) this.host.wantSend(this);
    return undefined;
  }

  onFin(): string | undefined {
    if (this.remoteFin) return 'second FIN';
    this.remoteFin = true;
    this.duplex.push(null);
    this.releaseIfDone();
    return undefined;
  }

  /** The stream ends with an error without telling the peer (it reset us, or the session ended). */
  fail(err: TetherError): void {
    if (this.released) return;
    this.released = true;
    this.pending = undefined;
    this.duplex.destroy(err);
  }

  /** Return the bytes the consumer has read as credit, half a window at a time. */
  grant(): void {
    if (this.remoteFin || this.released) return;
    const due = this.pushed - this.duplex.readableLength - this.credited;
    if (due < this.threshold) return;
    this.credited += due;
    this.allowance += due;
    this.host.send({ type: 'credit', stream: this.id, increment: due });
  }

  private releaseIfDone(): void {
    if (this.localFin && this.remoteFin && !this.released) {
      this.released = true;
      this.host.release(this);
    }
  }
}

export const resetError = (reason: string) => new TetherError(ErrorCode.TunnelReset, `stream reset by the peer: ${reason}`);
