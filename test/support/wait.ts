/** Waiting for a condition in tests and scripts: poll with a deadline, never a bare sleep. */

/** Polls `fn` until `ok` holds, up to `ms`; throws with the last value otherwise. */
export async function until<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, ms = 120_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: T | undefined;
  let lastErr: unknown;
  for (;;) {
    try {
      last = await fn();
      if (ok(last)) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}: last ${lastErr ? String(lastErr) : JSON.stringify(last)?.slice(0, 1500)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
