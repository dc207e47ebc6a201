/**
 * The listener edge agents dial: TLS, then a websocket upgrade, then a tunnel session.
 *
 * TLS is terminated by a node:tls server (so the client certificate can be read) and each
 * connection handed to a node:http server for the upgrade. Before the upgrade the agent must
 * authenticate as a node: a client certificate from `ca` with CN `system:node:<name>` and O
 * `system:nodes`, or a bearer token whose TokenReview says the same. After the upgrade, its HELLO
 * must name that node and `admit` must accept it (the Node object exists); only then does the
 * session get its WELCOME and reach `onSession`.
 *
 * Refusals: before the upgrade an HTTP 401/403 whose status line and body give the reason; at
 * HELLO a GOAWAY "refused" with the reason; a log line on the hub either way.
 *
 * Until its HELLO is accepted a connection lives under the listener guard
 * (listener-guard.ts): connection limits, handshake and header timeouts, and destruction shortly
 * after a refusal. A second session for a node already connected is accepted only with the same
 * credential (`admit` receives it; tunnels.ts decides).
 */
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { splitHostPort } from '../../shared/serve.ts';
import { type Hello, type OpenInfo, type TunnelSession, createTunnelSession } from '../../shared/tunnel/session.ts';
import { createWsUpgradeHandler, type VerifyResult } from '../../shared/tunnel/ws-transport.ts';
import { refuse } from './http-head.ts';
import { authenticate, nodeNameOf, type Identity, type TokenReviewer } from './identity.ts';
import { createListenerGuard, type ListenerGuard, type ListenerLimits } from './listener-guard.ts';
import type { HubMetrics } from './metrics.ts';

export const TUNNEL_PATH = '/tunnel';

export interface AgentServerOptions {
  listen: string;
  tls: { cert: Buffer; key: Buffer; ca?: Buffer };
  reviewer?: TokenReviewer;
  /** Throws (E_TUNNEL_DENIED, with the reason) when the node may not connect. */
  admit(node: string, hello: Hello, credential: string | undefined): Promise<void>;
  /** A session that passed HELLO. */
  onSession(node: string, session: TunnelSession, hello: Hello, credential: string | undefined): void;
  /**
   * A stream the agent opens (api streams), with the node the session authenticated as; throw a
   * TetherError to refuse it with that reason. Absent: agents may open no streams.
   */
  onOpen?(node: string, host: string, port: number, info: OpenInfo): Promise<Duplex>;
  limits: ListenerLimits;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  log: Logger;
  metrics: HubMetrics;
}

export interface AgentServer {
  address: string;
  guard: ListenerGuard;
  close(): Promise<void>;
}

export async function startAgentServer(opts: AgentServerOptions): Promise<AgentServer> {
  const { log, metrics } = opts;
  const nodeOf = new WeakMap<IncomingMessage, { node: string; credential: string | undefined }>();
  const guard = createListenerGuard('agent', opts.limits, metrics, log);
  const sockets = new Set<TLSSocket>();

  const attach = (transport: Parameters<Parameters<typeof createWsUpgradeHandler>[0]>[0], req: IncomingMessage) => {
    const who = nodeOf.get(req);
    if (!who) return transport.close(1008, 'not authenticated');
    const { node, credential } = who;
    const slog = log.child({ node });
    const onOpen = opts.onOpen;
    const session: TunnelSession = createTunnelSession({
      transport,
      role: 'hub',
      log: slog,
      heartbeatIntervalMs: opts.heartbeatIntervalMs,
      heartbeatTimeoutMs: opts.heartbeatTimeoutMs,
      // The session accepts OPENs only once its HELLO was accepted: `node` is then the verified one.
      ...(onOpen ? { onOpen: (host: string, port: number, info: OpenInfo) => onOpen(node, host, port, info) } : {}),
      onHello: async (hello) => {
        try {
          if (hello.node !== node) {
            throw new TetherError(ErrorCode.TunnelDenied, `hello: the agent authenticated as node ${node} but announced node ${hello.node}; a node may register only its own name`);
          }
          await opts.admit(node, hello, credential);
        } catch (e) {
          slog.warn('agent refused at hello', { announced: hello.node, reason: messageOf(e) });
          metrics.agentRefused('hello');
          throw e;
        }
        // Accepted only now: an authenticated client that never sends its HELLO is still closed by the header timeout.
        guard.settled(req.socket);
        metrics.sessionAccepted();
        opts.onSession(node, session, hello, credential);
      },
    });
  };
  /** Before the upgrade: the caller must be a node (certificate or token). */
  const verify = async (req: IncomingMessage): Promise<VerifyResult> => {
    const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    let id: Identity;
    try {
      id = await authenticate(req.socket as TLSSocket, req.headers.authorization, opts.reviewer);
    } catch (e) {
      log.warn('agent refused', { remote, reason: messageOf(e) });
      metrics.agentRefused('auth');
      return { status: 401, reason: messageOf(e) };
    }
    const node = nodeNameOf(id);
    if (!node) {
      const reason = `authenticate agent: user ${id.user} (groups ${id.groups.join(',') || 'none'}) is not a node; expected CN=system:node:<name>, O=system:nodes`;
      log.warn('agent refused', { remote, user: id.user, reason });
      metrics.agentRefused('not_a_node');
      return { status: 403, reason };
    }
    nodeOf.set(req, { node, credential: id.credential });
    log.debug('agent authenticated', { remote, node, via: id.via });
    return true;
  };
  const upgrade = createWsUpgradeHandler(attach, { verify });

  const http = createHttpServer((req, res) => {
    const body = `tether-hub: edge agents connect with a websocket upgrade on ${TUNNEL_PATH}\n`;
    res.writeHead(404, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body);
    res.once('finish', () => req.socket.end());
  });
  http.on('clientError', (_e, socket: Duplex) => refuse(socket, 400, 'bad HTTP request; edge agents connect with a websocket upgrade on ' + TUNNEL_PATH));
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== TUNNEL_PATH) return refuse(socket, 404, `no tunnel endpoint at ${path}; use ${TUNNEL_PATH}`);
    upgrade(req, socket, head);
  });

  const tls = createTlsServer({ cert: opts.tls.cert, key: opts.tls.key, ca: opts.tls.ca, requestCert: true, rejectUnauthorized: false }, (s) => {
    guard.secured(s);
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => {});
    http.emit('connection', s);
  });
  tls.on('connection', (raw) => guard.onConnection(raw));
  tls.on('tlsClientError', (e, s) => {
    log.debug('agent TLS handshake failed', { reason: messageOf(e) });
    s?.destroy();
  });
  const { host, port } = splitHostPort(opts.listen);
  await new Promise<void>((resolve, reject) => {
    tls.once('error', (e) =>
      reject(new TetherError(ErrorCode.BadConfig, `listen for agents on ${opts.listen}: ${messageOf(e)}`, { cause: e })),
    );
    tls.listen(port, host, () => resolve());
  });
  const a = tls.address();
  const address = a && typeof a === 'object' ? `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` : opts.listen;
  return {
    address,
    guard,
    async close() {
      const closed = new Promise<void>((r) => tls.close(() => r()));
      for (const s of sockets) s.destroy();
      http.close();
      await closed;
    },
  };
}
