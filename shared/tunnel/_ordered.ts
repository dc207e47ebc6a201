/**
 * Order across asynchronous compression, both ways.
 *
 * Send: frames leave in the order they were made. While no compression is pending a frame goes
 * straight to the transport; once one is pending, every later frame waits behind it, so ZDATA
 * keeps the deflate context's order and a stream's CLOSE never overtakes its data. Uncompressed
 * bytes waiting for deflation are reported (`pendingRaw`) so the scheduler counts them against
 * the transport limit.
 *
 * Receive: while a ZDATA inflates (`hold()`), later messages wait and are handed on strictly in
 * order after `release()`; a close of the connection waits behind them too. The wait is bounded
 * (`maxQueuedBytes`; past it `onOverflow`).
 */
import { encodeFrame } from './frames.ts';

export interface SendQueueOptions {
  transmit(bytes: Uint8Array): void;
  deflate(data: Uint8Array): Promise<Uint8Array>;
  /** A compression failed, or its output does not fit a frame: the session must end. */
  onError(stream: number, err: unknown): void;
  /** Queued frames went out (the scheduler may look again; a drain may complete). */
  onFlushed(): void;
}

export function createSendQueue(o: SendQueueOptions) {
  const q: { bytes: Uint8Array | undefined }[] = [];
  let pendingRaw = 0;
  let stopped = false;
  return {
    /** Send one encoded frame now, or after the compressions queued before it. */
    frame(bytes: Uint8Array): void {
      if (q.length > 0) q.push({ bytes });
      else o.transmit(bytes);
    },
    /** Deflate one chunk of a stream and send it as ZDATA, in order; resolves the wire size. */
    compressed(stream: number, data: Uint8Array, onWire: (wireBytes: number) => void): void {
      const entry: { bytes: Uint8Array | undefined } = { bytes: undefined };
      q.push(entry);
      pendingRaw += data.length;
      o.deflate(data).then(
        (z) => {
          if (stopped) return;
          pendingRaw -= data.length;
          try {
            entry.bytes = encodeFrame({ type: 'zdata', stream, data: z });
          } catch (e) {
            return o.onError(stream, e);
          }
          onWire(z.length);
          while (q[0]?.bytes && !stopped) o.transmit(q.shift()!.bytes!);
          o.onFlushed();
        },
        (e) => stopped || o.onError(stream, e),
      );
    },
    /** Uncompressed bytes waiting for deflation. */
    get pendingRaw() {
      return pendingRaw;
    },
    get length() {
      return q.length;
    },
    /** The session ended: drop everything, ignore compressions that finish later. */
    stop(): void {
      stopped = true;
      q.length = 0;
      pendingRaw = 0;
    },
  };
}

export interface ReceiveGateOptions {
  handle(data: Uint8Array): void;
  onClose(code: number, reason: string): void;
  maxQueuedBytes: number;
  onOverflow(queuedBytes: number): void;
}

export function createReceiveGate(o: ReceiveGateOptions) {
  const q: Uint8Array[] = [];
  let queuedBytes = 0;
  let held = false;
  let stopped = false;
  let closeAfter: [number, string] | undefined;
  return {
    message(data: Uint8Array): void {
      if (stopped) return;
      if (!held) return o.handle(data);
      q.push(data);
      queuedBytes += data.length;
      if (queuedBytes > o.maxQueuedBytes) o.onOverflow(queuedBytes);
    },
    close(code: number, reason: string): void {
      if (held) closeAfter = [code, reason];
      else o.onClose(code, reason);
    },
    /** Hold later messages (a ZDATA is inflating). */
    hold(): void {
      held = true;
    },
    /** Hand on what waited, in order, until something holds again. */
    release(): void {
      held = false;
      while (!held && !stopped && q.length > 0) {
        const next = q.shift()!;
        queuedBytes -= next.length;
        o.handle(next);
      }
      if (!held && !stopped && closeAfter) o.onClose(...closeAfter);
    },
    get length() {
      return q.length;
    },
    stop(): void {
      stopped = true;
      q.length = 0;
      queuedBytes = 0;
    },
  };
}
