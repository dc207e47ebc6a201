/**
 * Jittered exponential backoff for reconnecting to the hub: the n-th delay is drawn from
 * [base/2, base) with base = min(maxMs, initialMs · 2^n), so a fleet of agents that lost the same
 * hub spreads its reconnects instead of arriving together, and no delay is ever zero.
 */
export interface Backoff {
  /** The next delay in milliseconds (and one more attempt counted). */
  next(): number;
  /** Back to the first delay (after a connection that worked). */
  reset(): void;
  readonly attempts: number;
}

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  random?: () => number;
}

export function createBackoff(opts: BackoffOptions = {}): Backoff {
  const initial = opts.initialMs ?? 500;
  const max = opts.maxMs ?? 30_000;
  const random = opts.random ?? Math.random;
  let attempts = 0;
  return {
    next() {
      const base = Math.min(max, initial * 2 ** Math.min(attempts, 30));
      attempts++;
      return Math.round(base / 2 + random() * (base / 2));
    },
    reset() {
      attempts = 0;
    },
    get attempts() {
      return attempts;
    },
  };
}
