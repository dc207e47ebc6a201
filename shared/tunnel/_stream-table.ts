/**
 * A session's stream table: every stream id this side knows, in one of three stages.
 *
 *   pending   open() sent (or will send, after the handshake) an OPEN and waits for its result
 *   dialing   the peer's OPEN was accepted and `onOpen` is still dialing the destination
 *   streams   open both ways: a TunnelStream with its Duplex
 *
 * An id is in one stage at a time. Removing a stream tells the scheduler to forget it (`forget`);
 * the session decides when (frames, timers, close) and what to tell the peer.
 */
import type { Duplex } from 'node:stream';
import type { TetherError } from '../errors.ts';
import type { PendingOpen } from './_open.ts';
import type { TunnelStream } from './_stream.ts';

export interface StreamTable {
  stream(sid: number): TunnelStream | undefined;
  addStream(st: TunnelStream): void;
  /** A stream that ended on its own (both halves closed): out of the table. */
  release(st: TunnelStream): void;
  streams(): IterableIterator<TunnelStream>;

  pendingOpen(sid: number): PendingOpen | undefined;
  addPending(sid: number, p: PendingOpen): void;
  /** Opens whose OPEN has not gone out yet (waiting for the handshake). */
  unsent(): [number, PendingOpen][];
  /** Ends a pending open with a stream or an error; it leaves the table. */
  settle(sid: number, p: PendingOpen, outcome: Error | Duplex): void;

  startDial(sid: number, destination: string): void;
  /** False when the dial was already cancelled (reset, or the session closed). */
  endDial(sid: number): boolean;

  /** Fails `sid` in whatever stage it is in. */
  fail(sid: number, err: TetherError): void;
  /** Fails everything (the session closed); the scheduler is stopped, so nothing is forgotten one by one. */
  failAll(err: TetherError): void;

  /** Ids in any stage: what maxStreams and draining count. */
  readonly live: number;
  readonly counts: { streams: number; pendingOpens: number; dials: number };
}

export function createStreamTable(forget: (st: TunnelStream) => void): StreamTable {
  const streams = new Map<number, TunnelStream>();
  const pending = new Map<number, PendingOpen>();
  const dials = new Map<number, string>();
  const settle = (sid: number, p: PendingOpen, outcome: Error | Duplex) => {
    pending.delete(sid);
    p.dispose();
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome);
  };
  return {
    stream: (sid) => streams.get(sid),
    addStream: (st) => void streams.set(st.id, st),
    release(st) {
      streams.delete(st.id);
      forget(st);
    },
    streams: () => streams.values(),
    pendingOpen: (sid) => pending.get(sid),
    addPending: (sid, p) => void pending.set(sid, p),
    unsent: () => [...pending].filter(([, p]) => !p.sent),
    settle,
    startDial: (sid, destination) => void dials.set(sid, destination),
    endDial: (sid) => dials.delete(sid),
    fail(sid, err) {
      const st = streams.get(sid);
      if (st) {
        streams.delete(sid);
        forget(st);
        st.fail(err);
      }
      const p = pending.get(sid);
      if (p) settle(sid, p, err);
      dials.delete(sid);
    },
    failAll(err) {
      for (const [sid, p] of pending) settle(sid, p, err);
      dials.clear();
      const live = [...streams.values()];
      streams.clear();
      for (const st of live) st.fail(err);
    },
    get live() {
      return streams.size + pending.size + dials.size;
    },
    get counts() {
      return { streams: streams.size, pendingOpens: pending.size, dials: dials.size };
    },
  };
}
