/**
 * The upstream through the hub (`upstreamViaHub`): the node's apiserver requests travel as api
 * streams of its tunnel session, and tether-hub forwards them to kube-apiserver as the node.
 *
 * Contract:
 * - `createHubAgent(open)` is an `http.Agent` (keep-alive, at most 4 idle connections, as tls.ts
 *   POOLING) whose connections are api streams: `createConnection` returns at once an
 *   `ApiStreamSocket` that calls `open()` (the tunnel agent's `openApiStream`) and pipes to the
 *   stream it gets. Writes made before the stream is open are buffered; it emits 'connect' once it
 *   is open, like a net.Socket. Each connection is one api stream; an idle keep-alive connection
 *   is an idle stream, so requests reuse streams as they would reuse TCP connections.
 * - Inside the stream the HTTP/1.1 is plain: TLS is the tunnel's, and the hub decides where the
 *   request really goes (VIA_HUB_SERVER is only a name; its Host header means nothing to the hub).
 * - When the stream cannot be opened because there is no session or the hub refused it
 *   (E_TUNNEL_CLOSED, E_TUNNEL_DIAL) the socket is destroyed with a "connection refused" error (code
 *   ECONNREFUSED, the tunnel's error as cause), which the upstream pool treats as definitive
 *   (pool.ts): the upstream is unhealthy at once. An open that timed out is passed on as it is
 *   (ambiguous: the pool probes before deciding).
 * - When the session ends, every api stream errors (E_TUNNEL_CLOSED) and so does its socket; the
 *   agent drops it from its pool like a dead TCP connection. Such an error is not definitive by
 *   itself (the stream may belong to a session the hub drained while a new one is up): the end of
 *   the current session reaches the pool from the tunnel agent's `onSession` (followSessions).
 * - `hubLinks(tunnel)` are the targets' links in this mode (targets.ts): the pool's agent (api
 *   streams compressed both ways), bearer requests on streams whose requests stay plain (a pod's
 *   token must never share a compression context with bytes another local client chose: CRIME)
 *   while their answers compress, answers that carry Secrets or tokens and upgrades on streams with
 *   no compression at all, and certificate renewal on the upstream's own agent.
 * - `setKeepAlive`, `setNoDelay`, `ref`, `unref` are no-ops (node:http calls them on its sockets;
 *   Bun reuses a socket for keep-alive only if they exist); `setTimeout(ms, cb?)` is a real idle
 *   timeout ('timeout' after ms without bytes either way), as node:http relies on it for request
 *   and keep-alive timeouts.
 *
 * node:http and node:stream only, so that it behaves the same under Bun and Node 20.
 */
import http from 'node:http';
import { Duplex } from 'node:stream';
import { ErrorCode, isTetherError, messageOf } from '../../shared/errors.ts';
import type { UpstreamLinks } from './targets.ts';
import { POOLING, dropIdleSockets } from './tls.ts';

/** The one upstream of the via-hub mode: a name, not an address (the hub chooses the apiserver). */
export const VIA_HUB_SERVER = 'http://kube-apiserver.tether/';

/** Opens one api stream on the current tunnel session (edge/tunnel/tunnel-agent.ts `openApiStream`). */
export type OpenApiStream = () => Promise<Duplex>;

/** A "connection refused" for the upstream pool: no session to open the stream on, or the hub refused it. */
export function refusedError(step: string, cause: unknown): Error & { code: string } {
  const text = messageOf(cause);
  return Object.assign(new Error(text.startsWith(`${step}: `) ? text : `${step}: ${text}`, { cause }), { code: 'ECONNREFUSED' });
}

function openFailure(e: unknown): Error {
  if (isTetherError(e, ErrorCode.TunnelClosed) || isTetherError(e, ErrorCode.TunnelDial)) return refusedError('open api stream', e);
  return e instanceof Error ? e : new Error(`open api stream: ${String(e)}`);
}

export class ApiStreamSocket extends Duplex {
  /** True until the api stream is open (net.Socket's meaning: node:http waits for 'connect'). */
  connecting = true;
  timeout = 0;
  private inner: Duplex | undefined;
  private pendingWrite: { chunk: Buffer; cb: (e?: Error | null) => void } | undefined;
  private pendingFinal: ((e?: Error | null) => void) | undefined;
  private innerEnded = false;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(open: OpenApiStream) {
    super();
    let opening: Promise<Duplex>;
    try {
      opening = open();
    } catch (e) {
      opening = Promise.reject(e);
    }
    opening.then(
      (d) => this.attach(d),
      (e) => this.destroy(openFailure(e)),
    );
  }

  private attach(d: Duplex): void {
    if (this.destroyed) {
      d.on('error', () => {});
      d.destroy();
      return;
    }
    this.inner = d;
    this.connecting = false;
    d.on('data', (c: Buffer) => {
      this.touch();
      if (!this.push(c)) d.pause();
    });
    d.on('end', () => {
      this.innerEnded = true;
      this.push(null);
    });
    d.on('error', (e) => this.destroy(e));
    d.on('close', () => {
      // The peer reset the stream or the session ended without an error on it: the connection is gone.
      if (!this.innerEnded && !this.destroyed) this.destroy(new Error('api stream closed'));
    });
    this.touch();
    this.emit('connect');
    const w = this.pendingWrite;
    this.pendingWrite = undefined;
    if (w) this.writeInner(w.chunk, w.cb);
    const f = this.pendingFinal;
    this.pendingFinal = undefined;
    if (f) this._final(f);
  }

  private writeInner(chunk: Buffer, cb: (e?: Error | null) => void): void {
    const d = this.inner!;
    if (d.destroyed) return cb(new Error('api stream closed'));
    this.touch();
    if (d.write(chunk)) cb();
    else d.once('drain', () => cb());
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.inner) this.writeInner(chunk, cb);
    else this.pendingWrite = { chunk, cb };
  }

  override _final(cb: (e?: Error | null) => void): void {
    if (!this.inner) {
      this.pendingFinal = cb;
      return;
    }
    if (this.inner.writable) this.inner.end();
    cb();
  }

  override _read(): void {
    if (this.inner?.isPaused()) this.inner.resume();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    clearTimeout(this.idleTimer);
    if (this.inner && !this.inner.destroyed) this.inner.destroy();
    cb(err);
  }

  private touch(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.timeout > 0 && !this.destroyed) {
      this.idleTimer = setTimeout(() => this.emit('timeout'), this.timeout);
      this.idleTimer.unref?.();
    }
  }

  setTimeout(ms: number, cb?: () => void): this {
    this.timeout = ms;
    if (cb) {
      if (ms === 0) this.off('timeout', cb);
      else this.once('timeout', cb);
    }
    this.touch();
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

class HubAgent extends http.Agent {
  constructor(private readonly openStream: OpenApiStream) {
    super(POOLING);
  }
  // node:http's Agent calls this for every new connection; a returned socket is used at once.
  override createConnection(): Duplex {
    return new ApiStreamSocket(this.openStream);
  }
}

export function createHubAgent(open: OpenApiStream): http.Agent {
  return new HubAgent(open);
}

/** What hubLinks needs of the tunnel agent (edge/tunnel/tunnel-agent.ts `openApiStream`). */
export interface ApiStreams {
  openApiStream(o?: { compress?: boolean | 'answers' }): Promise<Duplex>;
}

/** The upstream's connections through the hub, each kind on api streams of its own compression. */
export function hubLinks(tunnel: ApiStreams): UpstreamLinks {
  return {
    createAgent: () => createHubAgent(() => tunnel.openApiStream()),
    // The hub lends the node's identity only to requests without `Authorization: Bearer` and passes
    // the others on as they are; their requests stay plain, their answers (a kube-proxy's watch
    // events) compress.
    bearerAgent: () => createHubAgent(() => tunnel.openApiStream({ compress: 'answers' })),
    sensitiveAgent: createHubAgent(() => tunnel.openApiStream({ compress: false })),
    connect: () => new ApiStreamSocket(() => tunnel.openApiStream({ compress: false })),
    renewOnUpstream: true,
  };
}

/** What followSessions needs of the tunnel agent (edge/tunnel/tunnel-agent.ts `onSession`). */
export interface SessionEvents {
  onSession(listener: (ev: { state: 'up' | 'draining' | 'down'; hub: string; reason?: string }) => void): () => void;
}

/**
 * Ties the pool's via-hub upstream to the tunnel's sessions: when the current session ends, the
 * upstream is reported failed at once (definitive: unhealthy now, watches aborted, idle streams
 * destroyed, the proxy answers from the store); when the hub drains it, idle api streams are
 * closed, so new requests open streams on the next session instead of reusing the old one's; when
 * a new session is up (the link healed, or another replica took the node), the upstream is probed
 * at once instead of at the end of its backoff. Returns the unsubscribe.
 */
export function followSessions<U extends { readonly agent: http.Agent }>(
  pool: { all(): readonly U[]; reportFailure(u: U, err: unknown): void; recheck(u: U): void },
  tunnel: SessionEvents,
): () => void {
  return tunnel.onSession((ev) => {
    for (const u of pool.all()) {
      if (ev.state === 'down') pool.reportFailure(u, refusedError('tunnel session', new Error(`the session to ${ev.hub} ended${ev.reason ? `: ${ev.reason}` : ''}`)));
      else if (ev.state === 'draining') dropIdleSockets(u.agent);
      else pool.recheck(u);
    }
  });
}
