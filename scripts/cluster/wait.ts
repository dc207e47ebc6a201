/**
 * Waiting for a condition: poll with a deadline, never a bare sleep. The one implementation for
 * the cluster scripts (readiness checks) and the tests (test/support/wait.ts re-exports it).
 *
 * A check that throws counts as "not yet"; when the deadline passes the error names what was
 * awaited and carries the last error or the last value seen. A poll also ends early when `abort`
 * rejects (a component exited), so a crash is reported at once with its cause instead of as a
 * timeout.
 */
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';

export interface PollOptions {
  timeoutMs: number;
  /** Default 250 ms. */
  intervalMs?: number;
  /** Rejects to end the poll early with that error. */
  abort?: Promise<never>;
}

/** Calls `fn` until `ok` holds for its value, and returns that value. */
export async function pollFor<T>(what: string, fn: () => T | Promise<T>, ok: (v: T) => boolean, opts: PollOptions): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  const interval = opts.intervalMs ?? 250;
  let aborted = false;
  let abortError: unknown;
  const abort = opts.abort?.catch((e: unknown): false => {
    aborted = true;
    abortError = e;
    return false;
  });
  const race = <R>(p: Promise<R>): Promise<R | false> => {
    p.catch(() => {}); // a check still running when abort wins must not become unhandled
    return abort ? Promise.race([p, abort]) : p;
  };
  let last = '';
  for (;;) {
    try {
      const v = await race(Promise.resolve(fn()));
      if (!aborted && ok(v as T)) return v as T;
      last = `last value: ${JSON.stringify(v)?.slice(0, 1500)}`;
    } catch (e) {
      last = `last error: ${messageOf(e)}`;
    }
    if (aborted) throw abortError;
    if (Date.now() > deadline) {
      throw new TetherError(ErrorCode.UpstreamUnavailable, `wait for ${what}: not ready after ${opts.timeoutMs} ms (${last})`);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await race(new Promise<void>((r) => (timer = setTimeout(r, interval))));
    clearTimeout(timer);
    if (aborted) throw abortError;
  }
}

/** Calls `check` until it returns true. */
export async function pollUntil(what: string, check: () => Promise<boolean>, opts: PollOptions): Promise<void> {
  await pollFor(what, check, (v) => v === true, opts);
}

/** Tests: polls `fn` every 200 ms until `ok` holds for its value, up to `ms`; returns the value. */
export function until<T>(what: string, fn: () => T | Promise<T>, ok: (v: T) => boolean, ms = 120_000): Promise<T> {
  return pollFor(what, fn, ok, { timeoutMs: ms, intervalMs: 200 });
}

/**
 * Tests: waits until an in-process condition holds (checked every `intervalMs`, default 5 ms:
 * such a check costs nothing and the event it awaits is usually a tick away).
 */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 15_000, intervalMs = 5): Promise<void> {
  await pollFor(what, cond, (v) => v === true, { timeoutMs: ms, intervalMs });
}
