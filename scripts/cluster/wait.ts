/**
 * Polling with a deadline, for readiness checks. A poll also ends early when `abort` rejects
 * (a component exited), so a crash is reported at once with its cause instead of as a timeout.
 */
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';

export interface PollOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Rejects to end the poll early with that error. */
  abort?: Promise<never>;
}

/** Calls `check` until it returns true; errors thrown by `check` count as "not yet". */
export async function pollUntil(what: string, check: () => Promise<boolean>, opts: PollOptions): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  const interval = opts.intervalMs ?? 250;
  let aborted = false;
  let abortError: unknown;
  const abort = opts.abort?.catch((e: unknown): false => {
    aborted = true;
    abortError = e;
    return false;
  });
  const race = <T>(p: Promise<T>): Promise<T | false> => {
    p.catch(() => {}); // a check still running when abort wins must not become unhandled
    return abort ? Promise.race([p, abort]) : p;
  };
  let last = '';
  for (;;) {
    try {
      if ((await race(check())) === true) return;
      last = '';
    } catch (e) {
      last = messageOf(e);
    }
    if (aborted) throw abortError;
    if (Date.now() > deadline) {
      throw new TetherError(
        ErrorCode.UpstreamUnavailable,
        `wait for ${what}: not ready after ${opts.timeoutMs} ms${last ? ` (last error: ${last})` : ''}`,
      );
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await race(new Promise<void>((r) => (timer = setTimeout(r, interval))));
    clearTimeout(timer);
    if (aborted) throw abortError;
  }
}
