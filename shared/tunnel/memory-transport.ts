/**
 * Two TunnelTransports joined in memory, for tests of the session and of code built on it.
 * Delivery is asynchronous and metered like a socket: each side's sent frames wait in a queue
 * (its bufferedAmount) and at most `bytesPerTick` leave per macrotask; then drain listeners run.
 * close() delivers what is queued, then the close, to both sides.
 */
import type { TunnelTransport } from './session.ts';

export interface MemoryTransport extends TunnelTransport {
  /** Deliver raw bytes to this side as if the peer had sent them (malformed frames in tests). */
  inject(bytes: Uint8Array): void;
  /** This side hangs: what it sends and what it is sent are dropped; nothing closes. */
  freeze(): void;
  /** The largest bufferedAmount seen right after a send. */
  readonly peakBufferedAmount: number;
  readonly closed: boolean;
  /** Listeners registered by the session (onMessage, onDrain, onClose). */
  readonly listeners: number;
  /** Every frame this side sent, when `record` is on. */
  readonly sent: Uint8Array[];
}

export interface PairOptions {
  /** Bytes delivered per macrotask in each direction. Default 256 KiB. */
  bytesPerTick?: number;
  /** Offer onDrain (default true); without it the session polls. */
  drainEvents?: boolean;
  record?: boolean;
}

export function createTransportPair(opts: PairOptions = {}): [MemoryTransport, MemoryTransport] {
  const a = side(opts);
  const b = side(opts);
  a.link(b);
  b.link(a);
  return [a.transport, b.transport];
}

type Item = Uint8Array | { close: [number, string] };
interface Side {
  transport: MemoryTransport;
  receive(d: Uint8Array): void;
  receiveClose(code: number, reason: string): void;
  link(o: Side): void;
}

function side(opts: PairOptions): Side {
  const perTick = opts.bytesPerTick ?? 256 * 1024;
  const queue: Item[] = [];
  let buffered = 0;
  let peak = 0;
  let scheduled = false;
  let frozen = false;
  let closed = false;
  let other!: Side;
  const messageFns: ((d: Uint8Array) => void)[] = [];
  const drainFns: (() => void)[] = [];
  const closeFns: ((code: number, reason: string) => void)[] = [];
  const sent: Uint8Array[] = [];

  const receive = (d: Uint8Array) => {
    if (!frozen && !closed) for (const f of messageFns) f(d);
  };
  const receiveClose = (code: number, reason: string) => {
    if (closed) return;
    closed = true;
    for (const f of closeFns) f(code, reason);
  };
  const pump = () => {
    scheduled = false;
    let budget = perTick;
    while (queue.length > 0 && budget > 0) {
      const item = queue.shift()!;
      if (item instanceof Uint8Array) {
        buffered -= item.length;
        budget -= item.length;
        other.receive(item);
      } else {
        other.receiveClose(...item.close);
        receiveClose(...item.close);
      }
    }
    if (queue.length > 0) schedule();
    for (const f of drainFns) f();
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(pump);
  };

  const transport: MemoryTransport = {
    send(frame) {
      if (closed || frozen) return;
      if (opts.record) sent.push(frame);
      queue.push(frame);
      buffered += frame.length;
      peak = Math.max(peak, buffered);
      schedule();
    },
    get bufferedAmount() {
      return buffered;
    },
    onMessage: (fn) => void messageFns.push(fn),
    onClose: (fn) => void closeFns.push(fn),
    close(code, reason) {
      if (closed || queue.some((i) => !(i instanceof Uint8Array))) return;
      queue.push({ close: [code, reason] });
      schedule();
    },
    inject: (bytes) => setImmediate(() => receive(bytes)),
    freeze: () => void (frozen = true),
    get peakBufferedAmount() {
      return peak;
    },
    get closed() {
      return closed;
    },
    get listeners() {
      return messageFns.length + drainFns.length + closeFns.length;
    },
    sent,
  };
  if (opts.drainEvents !== false) transport.onDrain = (fn) => void drainFns.push(fn);
  return {
    transport,
    receive,
    receiveClose,
    link(o: Side) {
      other = o;
    },
  };
}
