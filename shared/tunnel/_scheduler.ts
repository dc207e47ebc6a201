/**
 * The send scheduler: DATA leaves only while the transport's bufferedAmount is under its limit,
 * one frame per stream per turn (round robin), so a saturated stream cannot starve a small one
 * and the session never queues more than about limit + one frame in the socket. Control frames
 * do not pass through here. When the transport is full the scheduler waits for its drain event,
 * or polls when the transport has none.
 */
import type { TunnelStream } from './_stream.ts';

export interface SchedulerOptions {
  bufferedAmount: () => number;
  maxBufferedAmount: number;
  /** Send one DATA frame. */
  sendData: (st: TunnelStream, data: Uint8Array) => void;
  /** How long to wait before looking again while the transport is full. */
  pollMs: number;
}

export interface Scheduler {
  want(st: TunnelStream): void;
  /** Look again (the transport drained). */
  flush(): void;
  forget(st: TunnelStream): void;
  stop(): void;
  readonly waiting: number;
  readonly timers: number;
}

export function createScheduler(opts: SchedulerOptions): Scheduler {
  const ready = new Set<TunnelStream>();
  let flushing = false;
  let poll: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const room = () => opts.bufferedAmount() < opts.maxBufferedAmount;

  const flush = () => {
    if (flushing || stopped) return;
    flushing = true;
    try {
      while (room()) {
        const st = ready.values().next().value;
        if (!st) break;
        ready.delete(st);
        const next = st.sendable ? st.take() : undefined;
        if (!next) continue;
        opts.sendData(st, next.data);
        next.done?.(); // may queue the stream's next write (re-entering want())
        if (st.sendable) ready.add(st);
      }
    } finally {
      flushing = false;
    }
    if (ready.size > 0 && !poll && !stopped) {
      poll = setTimeout(() => {
        poll = undefined;
        flush();
      }, opts.pollMs);
      poll.unref?.();
    }
  };

  return {
    want(st) {
      ready.add(st);
      flush();
    },
    flush,
    forget(st) {
      ready.delete(st);
    },
    stop() {
      stopped = true;
      ready.clear();
      if (poll) clearTimeout(poll);
      poll = undefined;
    },
    get waiting() {
      return ready.size;
    },
    get timers() {
      return poll ? 1 : 0;
    },
  };
}
