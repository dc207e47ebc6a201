/**
 * Joins two byte streams both ways (a CONNECT client and a tunnel stream, a direct socket, or a
 * peer replica) with backpressure from `pipe`: a side that stops reading stops the other side's
 * reads, and nothing is buffered beyond the streams' high-water marks.
 *
 * Ends and closes travel: the end of one side's data ends the other's writes (half-close); when
 * one side is closed for good, the other is ended, what it still has to say is discarded, and if
 * it has not finished `graceMs` later it is destroyed, so a hung peer never keeps a stream (and its file descriptor) forever; an error on
 * either side destroys both at once. `done` resolves once both sides are closed.
 */
import type { Duplex } from 'node:stream';

export interface PipeOptions {
  /** Called with each chunk's size: `up` from a to b, `down` from b to a. */
  onBytes?: (direction: 'up' | 'down', n: number) => void;
  graceMs?: number;
}

export function pipeBoth(a: Duplex, b: Duplex, opts: PipeOptions = {}): { done: Promise<void> } {
  const grace = opts.graceMs ?? 30_000;
  if (opts.onBytes) {
    const count = opts.onBytes;
    a.on('data', (c: Buffer) => count('up', c.length));
    b.on('data', (c: Buffer) => count('down', c.length));
  }
  a.pipe(b);
  b.pipe(a);
  const closed = (s: Duplex) => new Promise<void>((r) => (s.closed ? r() : s.once('close', () => r())));
  const follow = (from: Duplex, to: Duplex) => {
    from.on('error', () => to.destroy());
    from.once('close', () => {
      if (to.destroyed) return;
      // Nothing reads `to` any more (its pipe into `from` is gone): let its data drain away so it
      // can end, instead of sitting on a full buffer until the grace period.
      to.resume();
      to.end();
      const timer = setTimeout(() => to.destroy(), grace);
      timer.unref?.();
      to.once('close', () => clearTimeout(timer));
    });
  };
  follow(a, b);
  follow(b, a);
  return { done: Promise.all([closed(a), closed(b)]).then(() => undefined) };
}
