/**
 * A work queue with rate-limited retries, as client-go's workqueue: a key is queued at most once;
 * a key being processed is never handed to a second worker — if it is added meanwhile it is marked
 * dirty and queued again when the first worker is done; a failed key comes back after an
 * exponential per-key delay (base·2^failures, capped), and `forget` resets its count after success.
 *
 * The clock and timers come in as options so tests drive time themselves.
 */
export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface WorkQueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  timers?: Timers;
}

export interface WorkQueue {
  add(key: string): void;
  /** Queues `key` after `ms` (deduplicated with any earlier pending delay: the earliest wins). */
  addAfter(key: string, ms: number): void;
  /** Queues `key` after its exponential back-off delay and counts a failure. */
  addRateLimited(key: string): void;
  /** Resets the failure count of `key`. */
  forget(key: string): void;
  failures(key: string): number;
  /** Next key, waiting for one; undefined once shut down. The caller must call done(key). */
  get(): Promise<string | undefined>;
  done(key: string): void;
  /** Keys waiting (not counting delayed or in-flight ones). */
  length(): number;
  shutDown(): void;
  readonly isShutDown: boolean;
}

export function createWorkQueue(opts: WorkQueueOptions = {}): WorkQueue {
  const base = opts.baseDelayMs ?? 5;
  const max = opts.maxDelayMs ?? 300_000;
  const timers = opts.timers ?? realTimers;
  const queue: string[] = [];
  const dirty = new Set<string>();
  const processing = new Set<string>();
  const failureCount = new Map<string, number>();
  const delayed = new Map<string, { at: number; handle: unknown }>();
  const waiters: ((key: string | undefined) => void)[] = [];
  let shut = false;

  const add = (key: string) => {
    if (shut || dirty.has(key)) return;
    dirty.add(key);
    if (processing.has(key)) return;
    const w = waiters.shift();
    if (w) {
      dirty.delete(key);
      processing.add(key);
      w(key);
    } else queue.push(key);
  };

  const addAfter = (key: string, ms: number) => {
    if (shut) return;
    if (ms <= 0) return add(key);
    const at = timers.now() + ms;
    const prev = delayed.get(key);
    if (prev && prev.at <= at) return;
    if (prev) timers.clearTimeout(prev.handle);
    const handle = timers.setTimeout(() => {
      delayed.delete(key);
      add(key);
    }, ms);
    delayed.set(key, { at, handle });
  };

  return {
    add,
    addAfter,
    addRateLimited(key) {
      const n = failureCount.get(key) ?? 0;
      failureCount.set(key, n + 1);
      addAfter(key, Math.min(max, base * 2 ** Math.min(n, 40)));
    },
    forget: (key) => void failureCount.delete(key),
    failures: (key) => failureCount.get(key) ?? 0,
    get() {
      if (shut) return Promise.resolve(undefined);
      const key = queue.shift();
      if (key !== undefined) {
        dirty.delete(key);
        processing.add(key);
        return Promise.resolve(key);
      }
      return new Promise((resolve) => waiters.push(resolve));
    },
    done(key) {
      processing.delete(key);
      if (dirty.has(key)) {
        dirty.delete(key);
        add(key);
      }
    },
    length: () => queue.length,
    shutDown() {
      shut = true;
      for (const d of delayed.values()) timers.clearTimeout(d.handle);
      delayed.clear();
      queue.length = 0;
      dirty.clear();
      for (const w of waiters.splice(0)) w(undefined);
    },
    get isShutDown() {
      return shut;
    },
  };
}
