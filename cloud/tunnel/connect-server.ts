/**
 * The CONNECT endpoint: kube-apiserver's `cluster` egress (EgressSelectorConfiguration,
 * `proxyProtocol: HTTPConnect`), Prometheus (`proxy_url`) and peer replicas.
 *
 * Listeners: TLS on `listen` (client certificates verified against `ca`, or a bearer token in
 * `Proxy-Authorization` checked with a TokenReview), and optionally a Unix socket whose callers
 * are trusted as kube-apiserver (protect it with file permissions).
 *
 * One request per connection:
 *   CONNECT host:port HTTP/1.1          → 200, then bytes both ways (the client speaks first);
 *   GET http://host:port/path HTTP/1.1  → the request is passed on in origin form with
 *                                         `Connection: close`, and the answer comes back as is
 *                                         (Prometheus uses this for plain-HTTP targets);
 *   anything else                       → 400.
 * Refusals carry the reason in the status line (kube-apiserver shows only that) and log a line.
 *
 * Until the caller is authenticated and its request read, a connection lives under the listener
 * guard (listener-guard.ts): connection limits per source and in total, TLS-handshake and header
 * timeouts, and destruction shortly after a refusal. The Unix socket's callers are one source (the
 * local kube-apiserver), so only the total limit and the timeouts apply there.
 */
import { chmodSync, rmSync } from 'node:fs';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { splitHostPort } from '../../shared/serve.ts';
import { authenticate, type Identity, type TokenReviewer } from './identity.ts';
import { parseAuthority, readRequestHead, refuse, type RequestHead } from './http-head.ts';
import { createListenerGuard, type ListenerGuard, type ListenerLimits } from './listener-guard.ts';
import type { HubMetrics } from './metrics.ts';
import { pipeBoth } from './pipe.ts';
import { FORWARDED_HEADER } from './peer-dial.ts';
import type { Caller, RouteFn } from './router.ts';

export interface ConnectServerOptions {
  listen?: string;
  tls?: { cert: Buffer; key: Buffer; ca?: Buffer };
  socketPath?: string;
  reviewer?: TokenReviewer;
  /** The caller kind of an identity, or the reason it may not use the endpoint. */
  authorize(id: Identity): Caller | string;
  route: RouteFn;
  limits: ListenerLimits;
  metrics: HubMetrics;
  log: Logger;
}

export interface ConnectServer {
  /** host:port of the TLS listener, with the port actually bound. */
  address?: string;
  socketPath?: string;
  /** CONNECTs being piped right now. */
  readonly open: number;
  /** Connections open on the listeners (TLS and Unix), accepted or not. */
  readonly connections: number;
  close(): Promise<void>;
}

interface Target {
  host: string;
  port: number;
  /** For absolute-form requests: the head to send to the target. */
  forwardHead?: string;
}

function targetOf(head: RequestHead): Target | string {
  if (head.method === 'CONNECT') {
    const a = parseAuthority(head.target);
    return a ?? `bad CONNECT target ${JSON.stringify(head.target.slice(0, 100))}; expected host:port`;
  }
  if (!/^http:\/\//i.test(head.target)) {
    return `${head.method} ${head.target.slice(0, 100)}: this endpoint takes CONNECT host:port, or an absolute http:// URL`;
  }
  let url: URL;
  try {
    url = new URL(head.target);
  } catch {
    return `bad URL ${JSON.stringify(head.target.slice(0, 100))}`;
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(url.port || 80);
  const keep = head.lines.slice(1).filter((l) => !/^(proxy-[a-z-]*|connection|keep-alive)\s*:/i.test(l));
  const forwardHead = [`${head.method} ${url.pathname}${url.search} ${head.version}`, ...keep, 'Connection: close', '', ''].join('\r\n');
  return { host, port, forwardHead };
}

export async function startConnectServer(opts: ConnectServerOptions): Promise<ConnectServer> {
  const { log, metrics } = opts;
  let open = 0;
  const sockets = new Set<Socket>();

  const tlsGuard = createListenerGuard('connect', opts.limits, metrics, log);
  const unixGuard = createListenerGuard('connect', { ...opts.limits, maxPendingPerSource: opts.limits.maxConnections }, metrics, log);

  const handle = async (socket: Socket, tlsSocket: TLSSocket | undefined) => {
    const guard: ListenerGuard = tlsSocket ? tlsGuard : unixGuard;
    guard.secured(socket);
    if (socket.destroyed) return;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {}); // resets are ordinary; the pipe and close handlers clean up
    const remote = `${socket.remoteAddress ?? 'unix'}:${socket.remotePort ?? ''}`;
    let head: RequestHead;
    try {
      head = await readRequestHead(socket, { timeoutMs: opts.limits.headerTimeoutMs });
    } catch (e) {
      log.debug('connect: no request', { remote, reason: messageOf(e) });
      return refuse(socket, 400, messageOf(e));
    }
    let caller: Caller;
    try {
      const id = tlsSocket ? await authenticate(tlsSocket, head.headers['proxy-authorization'], opts.reviewer) : ({ user: 'unix-socket', groups: [], via: 'socket' } as Identity);
      const c = opts.authorize(id);
      if (typeof c === 'string') {
        log.warn('connect refused: caller not allowed', { remote, user: id.user, reason: c });
        metrics.answered('none', 'not_allowed');
        return refuse(socket, 403, c);
      }
      caller = c;
    } catch (e) {
      log.warn('connect refused: authentication failed', { remote, reason: messageOf(e) });
      metrics.answered('none', 'not_allowed');
      return refuse(socket, 407, messageOf(e), ['Proxy-Authenticate: Bearer realm="tether-hub"']);
    }
    const target = targetOf(head);
    if (typeof target === 'string') {
      log.warn('connect refused: bad request', { remote, user: caller.user, reason: target });
      return refuse(socket, 400, target);
    }
    // An authenticated caller with a well-formed request: the dial timeout governs from here.
    guard.settled(socket);
    const abort = new AbortController();
    const onGone = () => abort.abort();
    socket.once('close', onGone);
    const r = await opts.route(target.host, target.port, caller, abort.signal);
    socket.off('close', onGone);
    const fields = { remote, user: caller.user, host: target.host, port: target.port, node: r.node, forwardedBy: head.headers[FORWARDED_HEADER.toLowerCase()] };
    if (!r.ok) {
      log.warn('connect refused', { ...fields, status: r.status, failure: r.failure, reason: r.reason });
      metrics.dialError(r.failure);
      metrics.answered(r.route ?? 'none', r.failure);
      return refuse(socket, r.status, r.reason);
    }
    if (socket.destroyed) {
      r.stream.destroy();
      return;
    }
    log.debug('connect', { ...fields, route: r.route });
    metrics.answered(r.route, 'ok');
    if (target.forwardHead) r.stream.write(target.forwardHead);
    else socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
    if (head.rest.length) r.stream.write(head.rest);
    open++;
    metrics.connected(r.route);
    const route = r.route;
    const piped = pipeBoth(socket, r.stream, { onBytes: (dir, n) => metrics.bytes(route, dir, n) });
    await piped.done;
    open--;
    metrics.disconnected(route);
  };

  const crashed = (e: unknown) => log.error('connect: unexpected failure', { error: messageOf(e) });
  const servers: Server[] = [];
  const listenOn = (server: Server, where: string | { host: string; port: number }) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const done = () => {
        server.off('error', reject);
        resolve();
      };
      if (typeof where === 'string') server.listen(where, done);
      else server.listen(where.port, where.host, done);
    });

  const result: ConnectServer = {
    get open() {
      return open;
    },
    get connections() {
      return tlsGuard.open + unixGuard.open;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      if (opts.socketPath) rmSync(opts.socketPath, { force: true });
    },
  };

  if (opts.listen) {
    if (!opts.tls) throw new TetherError(ErrorCode.BadConfig, 'connect server: a TLS listener needs tlsCertFile and tlsKeyFile');
    const tlsServer = createTlsServer({ cert: opts.tls.cert, key: opts.tls.key, ca: opts.tls.ca, requestCert: true, rejectUnauthorized: false, allowHalfOpen: true }, (s) => void handle(s, s).catch(crashed));
    tlsServer.on('connection', (raw: Socket) => tlsGuard.onConnection(raw));
    tlsServer.on('tlsClientError', (e, s) => {
      log.debug('connect: TLS handshake failed', { reason: messageOf(e) });
      s?.destroy();
    });
    await listenOn(tlsServer, splitHostPort(opts.listen));
    servers.push(tlsServer);
    const a = tlsServer.address();
    if (a && typeof a === 'object') result.address = `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }
  if (opts.socketPath) {
    rmSync(opts.socketPath, { force: true });
    const unixServer = createNetServer({ allowHalfOpen: true }, (s) => void handle(s, undefined).catch(crashed));
    await listenOn(unixServer, opts.socketPath);
    chmodSync(opts.socketPath, 0o660);
    servers.push(unixServer);
    result.socketPath = opts.socketPath;
  }
  return result;
}
