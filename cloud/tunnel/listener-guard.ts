/**
 * What the hub's listeners (agents; CONNECT) do with a connection before it has been accepted,
 * so that clients that never authenticate cannot hold descriptors and memory:
 *
 *   accepted   counted in total and, while not yet accepted, per source address; over
 *              `maxConnections` open, or `maxPendingPerSource` not yet accepted from that source,
 *              the socket is destroyed at once (no TLS, no answer). Accepted connections do not
 *              count against their source: kube-apiserver keeps many CONNECTs open from one
 *              address, and many edge nodes may share one NAT address;
 *   handshake  the TLS handshake must finish within `handshakeTimeoutMs`;
 *   header     then the request (the CONNECT head, or the websocket upgrade with its
 *              authentication) must be read and accepted within `headerTimeoutMs`;
 *   refused    once this side has ended the connection (a refusal was written), the peer gets
 *              `lingerMs` to read it, then the socket is destroyed: no half-open leftovers;
 *   settled    the connection was accepted (`settled`): no timer applies any more; the tunnel's
 *              heartbeats and the pipe's own ends take over.
 * A timer that fires destroys the socket. Refusals are counted per listener and reason; the log
 * line is at debug level, since a flood of them is exactly what must not flood the log.
 *
 * Works with node:tls and Bun's, where the socket of the secure connection may or may not be the
 * object of the 'connection' event: both are found by remote address and port.
 */
import type { Socket } from 'node:net';
import type { Logger } from '../../shared/log.ts';
import type { HubMetrics, ListenerName, ListenerRefusal } from './metrics.ts';

export interface ListenerLimits {
  handshakeTimeoutMs: number;
  headerTimeoutMs: number;
  maxConnections: number;
  maxPendingPerSource: number;
  /** Default 1000 ms. */
  lingerMs?: number;
}

export interface ListenerGuard {
  /** For the server's 'connection' event (the raw socket). */
  onConnection(raw: Socket): void;
  /** The TLS handshake is done (or there is none: a Unix socket); the header timer starts. */
  secured(socket: Socket): void;
  /** The request was accepted; no more timers for this connection. */
  settled(socket: Socket): void;
  readonly open: number;
}

interface Tracked {
  raw: Socket;
  source: string;
  timer?: ReturnType<typeof setTimeout>;
  settled: boolean;
}

const keyOf = (s: Socket) => `${s.remoteAddress ?? 'unix'}|${s.remotePort ?? ''}`;

export function createListenerGuard(listener: ListenerName, limits: ListenerLimits, metrics: HubMetrics, log: Logger): ListenerGuard {
  const byKey = new Map<string, Tracked>();
  const bySocket = new WeakMap<Socket, Tracked>();
  const pending = new Map<string, number>();
  const unpend = (t: Tracked) => {
    if (t.settled) return;
    t.settled = true;
    const m = (pending.get(t.source) ?? 1) - 1;
    if (m > 0) pending.set(t.source, m);
    else pending.delete(t.source);
  };
  const lingerMs = limits.lingerMs ?? 1000;
  let open = 0;

  const find = (s: Socket) => bySocket.get(s) ?? byKey.get(keyOf(s));
  const refuse = (t: Tracked, reason: ListenerRefusal) => {
    metrics.listenerRefused(listener, reason);
    log.debug('connection closed', { listener, source: t.source, reason });
    t.raw.destroy();
  };
  const arm = (t: Tracked, ms: number, reason: ListenerRefusal) => {
    clearTimeout(t.timer);
    t.timer = setTimeout(() => refuse(t, reason), ms);
    t.timer.unref?.();
  };
  /** This side ended the connection before it was accepted: a refusal. */
  const onFinish = (t: Tracked, s: Socket) => () => {
    if (t.settled) return;
    clearTimeout(t.timer);
    t.timer = setTimeout(() => {
      s.destroy();
      t.raw.destroy();
    }, lingerMs);
    t.timer.unref?.();
  };

  return {
    onConnection(raw) {
      if (raw.destroyed) return; // gone already: its 'close' has been and will not come again
      const source = raw.remoteAddress ?? 'unix';
      const n = pending.get(source) ?? 0;
      if (open >= limits.maxConnections || n >= limits.maxPendingPerSource) {
        metrics.listenerRefused(listener, open >= limits.maxConnections ? 'total_limit' : 'per_source_limit');
        log.debug('connection refused', { listener, source, open, pendingFromSource: n });
        raw.destroy();
        return;
      }
      const t: Tracked = { raw, source, settled: false };
      const key = keyOf(raw);
      open++;
      pending.set(source, n + 1);
      byKey.set(key, t);
      bySocket.set(raw, t);
      raw.on('error', () => {});
      raw.once('finish', onFinish(t, raw));
      raw.once('close', () => {
        clearTimeout(t.timer);
        open--;
        unpend(t);
        if (byKey.get(key) === t) byKey.delete(key);
      });
      arm(t, limits.handshakeTimeoutMs, 'handshake_timeout');
    },
    secured(socket) {
      let t = find(socket);
      if (!t) {
        // A socket the 'connection' event did not show (a Unix socket, or a runtime that emits
        // none): guard it from here on.
        this.onConnection(socket);
        t = find(socket);
        if (!t) return;
      }
      if (socket !== t.raw) {
        bySocket.set(socket, t);
        socket.once('finish', onFinish(t, socket));
        socket.once('close', () => t.raw.destroy());
      }
      arm(t, limits.headerTimeoutMs, 'header_timeout');
    },
    settled(socket) {
      const t = find(socket);
      if (!t) return;
      unpend(t);
      clearTimeout(t.timer);
    },
    get open() {
      return open;
    },
  };
}
