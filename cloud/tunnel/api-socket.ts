/**
 * The two ends of one api stream inside the hub: `outer` goes to the tunnel session (its
 * `onOpen` returns it and the session pipes the stream to it), `inner` is handed to the
 * forwarder's node:http server with `server.emit('connection', inner)` as if it were a TCP socket.
 *
 * Contract:
 * - Bytes written to one end are read from the other, in order. Backpressure holds: a write's
 *   callback waits until the other end's reader asked for more, so a slow agent stops the
 *   apiserver's answer (through node:http's `res.write()` returning false) and a slow apiserver
 *   stops the agent's upload (through the session's withheld credit).
 * - end() on one end is EOF on the other (half-close: both ends allow it); destroy() on one end
 *   destroys the other (an error passes on as the other end's error).
 * - `inner` has what node:http calls on a socket: no-op `setKeepAlive`, `setNoDelay`, `ref`,
 *   `unref`, a `setTimeout` that only remembers the value (the session's heartbeat, not an idle
 *   timer, decides whether the link is alive), and `remoteAddress` naming the node (for logs).
 */
import { Duplex } from 'node:stream';

class PairEnd extends Duplex {
  other!: PairEnd;
  private pending: (() => void) | undefined;
  remoteAddress: string;
  remotePort = 0;
  localAddress = 'kube-apiserver';
  localPort = 0;
  timeout = 0;

  constructor(remoteAddress: string) {
    super({ allowHalfOpen: true });
    this.remoteAddress = remoteAddress;
  }

  override _read(): void {
    const resume = this.other.pending;
    this.other.pending = undefined;
    resume?.();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.other.destroyed) return cb(new Error('api stream closed'));
    if (this.other.push(chunk)) cb();
    else this.pending = () => cb();
  }

  override _final(cb: (e?: Error | null) => void): void {
    if (!this.other.destroyed) this.other.push(null);
    cb();
  }

  override _destroy(e: Error | null, cb: (e?: Error | null) => void): void {
    const resume = this.pending;
    this.pending = undefined;
    resume?.();
    if (!this.other.destroyed) this.other.destroy(e ?? undefined);
    cb(e);
  }

  setKeepAlive(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setTimeout(ms: number, cb?: () => void): this {
    this.timeout = ms;
    if (cb) this.once('timeout', cb);
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

export interface ApiSocketPair {
  /** The session's end. */
  outer: Duplex;
  /** node:http's end ("socket"). */
  inner: Duplex & { remoteAddress: string };
}

/** `peer` names the other side in `inner.remoteAddress` (e.g. "node/edge-1"). */
export function createApiSocketPair(peer: string): ApiSocketPair {
  const outer = new PairEnd('kube-apiserver');
  const inner = new PairEnd(peer);
  outer.other = inner;
  inner.other = outer;
  return { outer, inner };
}
