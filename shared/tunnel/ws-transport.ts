/**
 * The websocket side of a tunnel: the hub's upgrade handler and the agent's dialer, each giving
 * a TunnelTransport. This is the only file in the repository that imports `ws` (Node 20 has no
 * WebSocket client with TLS options, and the edge agent also ships as a Node bundle); under Bun
 * the same import is Bun's built-in implementation.
 *
 * Both ends speak the subprotocol TUNNEL_SUBPROTOCOL ("tether-tunnel.v1"); an agent offering
 * another version is refused at the upgrade with 400 and a reason naming both. `verify` may
 * refuse an upgrade with a reason (403, or the status it gives); the agent's dialTunnel rejects
 * with E_TUNNEL_DIAL carrying the status and that reason, and for a 4xx answer (the hub refused
 * this agent, as opposed to failing) an E_TUNNEL_DENIED `cause`: `isHubRefusal` reads it. Text messages close the connection
 * (1003). Messages that arrive before the session subscribes are held (up to 64).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { ErrorCode, TetherError, isTetherError, messageOf } from '../errors.ts';
import { clampReason, TUNNEL_SUBPROTOCOL } from './frames.ts';
import type { TunnelTransport } from './session.ts';

/** Largest websocket message accepted; above it `ws` closes the connection (1009). Frames up to it are judged by the session. */
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

export type VerifyResult = boolean | string | { status: number; reason: string };

export interface UpgradeOptions {
  maxPayload?: number;
  /** true: accept; false or a reason: 403; { status, reason }: that status. May be async. */
  verify?: (req: IncomingMessage) => VerifyResult | Promise<VerifyResult>;
  /** How long close() waits for the close handshake before dropping the connection. Default 2000 ms. */
  closeTimeoutMs?: number;
}

export function createWsUpgradeHandler(
  onTransport: (t: TunnelTransport, req: IncomingMessage) => void,
  opts: UpgradeOptions = {},
): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: opts.maxPayload ?? DEFAULT_MAX_PAYLOAD,
    handleProtocols: (offered) => (offered.has(TUNNEL_SUBPROTOCOL) ? TUNNEL_SUBPROTOCOL : false),
  });
  return (req, socket, head) => {
    socket.on('error', () => {}); // a reset before the upgrade completes; ws takes over after
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean);
    if (!offered.includes(TUNNEL_SUBPROTOCOL)) {
      return refuseUpgrade(socket, 400, `unsupported tunnel protocol: the agent offered [${offered.join(', ')}], this hub speaks ${TUNNEL_SUBPROTOCOL}`);
    }
    Promise.resolve()
      .then(() => (opts.verify ? opts.verify(req) : true))
      .then(
        (v) => {
          if (v !== true) {
            const r = typeof v === 'object' ? v : { status: 403, reason: typeof v === 'string' ? v : 'forbidden' };
            return refuseUpgrade(socket, r.status, r.reason);
          }
          if (socket.destroyed) return;
          wss.handleUpgrade(req, socket, head, (ws) => onTransport(wrap(ws, opts.closeTimeoutMs), req));
        },
        (e) => refuseUpgrade(socket, 500, `verify: ${messageOf(e)}`),
      );
  };
}

const statusText: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 500: 'Internal Server Error', 503: 'Service Unavailable' };

function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  if (socket.destroyed) return;
  const body = `${clampReason(reason)}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${statusText[status] ?? 'Refused'}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export interface DialOptions {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Default 10000 ms. */
  handshakeTimeoutMs?: number;
  maxPayload?: number;
  /** TLS server name when it differs from the URL's host. */
  servername?: string;
  closeTimeoutMs?: number;
}

/**
 * True for dialTunnel's rejection when the hub answered the upgrade with a 4xx (bad credentials,
 * not a node, another protocol version): retrying the same way will not help.
 */
export function isHubRefusal(e: unknown): boolean {
  return isTetherError(e, ErrorCode.TunnelDial) && isTetherError(e.cause, ErrorCode.TunnelDenied);
}

/** Dial the hub: https:// or wss:// (http:// or ws:// for tests). Rejects with E_TUNNEL_DIAL naming the step. */
export function dialTunnel(url: string, opts: DialOptions = {}): Promise<TunnelTransport> {
  const target = url.replace(/^http(s?):\/\//, 'ws$1://');
  const fail = (what: string, cause?: unknown) => new TetherError(ErrorCode.TunnelDial, `dial hub ${url}: ${what}`, { cause });
  if (opts.signal?.aborted) return Promise.reject(fail('aborted', opts.signal.reason));
  return new Promise((resolve, reject) => {
    let ws: WebSocket;
    try {
      ws = new WebSocket(target, [TUNNEL_SUBPROTOCOL], {
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        ...(opts.servername ? { servername: opts.servername } : {}),
        headers: opts.headers,
        handshakeTimeout: opts.handshakeTimeoutMs ?? 10_000,
        perMessageDeflate: false,
        maxPayload: opts.maxPayload ?? DEFAULT_MAX_PAYLOAD,
      });
    } catch (e) {
      return reject(fail(messageOf(e), e));
    }
    let settled = false;
    const settle = (err?: TetherError) => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      ws.off('open', onOpen);
      ws.off('unexpected-response', onResponse);
      ws.off('close', onEarlyClose);
      if (!err) return resolve(wrap(ws, opts.closeTimeoutMs));
      ws.off('error', onError);
      ws.on('error', () => {});
      ws.terminate();
      reject(err);
    };
    const onAbort = () => settle(fail('aborted', opts.signal?.reason));
    const onError = (e: Error) => settle(fail(messageOf(e), e));
    const onEarlyClose = (code: number, reason: Buffer) => settle(fail(`connection closed during the handshake (${code} ${reason.toString()})`));
    const onOpen = () => {
      if (ws.protocol !== TUNNEL_SUBPROTOCOL) return settle(fail(`the hub answered with subprotocol "${ws.protocol}", want ${TUNNEL_SUBPROTOCOL}`));
      ws.off('error', onError);
      settle();
    };
    const onResponse = (_req: unknown, res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (size < 4096) chunks.push(c);
        size += c.length;
      });
      res.on('error', () => {});
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8').slice(0, 4096).trim();
        const what = `refused: ${res.statusCode} ${res.statusMessage ?? ''}`.trim() + (body ? `: ${body}` : '');
        const status = res.statusCode ?? 0;
        settle(fail(what, status >= 400 && status < 500 ? new TetherError(ErrorCode.TunnelDenied, what) : undefined));
      });
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    ws.on('open', onOpen);
    ws.on('error', onError);
    ws.on('unexpected-response', onResponse);
    ws.on('close', onEarlyClose);
  });
}

/** A TunnelTransport over an open websocket. */
function wrap(ws: WebSocket, closeTimeoutMs = 2000): TunnelTransport {
  const held: Uint8Array[] = [];
  let onMessage: ((d: Uint8Array) => void) | undefined;
  let onClose: ((code: number, reason: string) => void) | undefined;
  let closedWith: [number, string] | undefined;
  let lastError: string | undefined;
  let killTimer: ReturnType<typeof setTimeout> | undefined;

  ws.on('error', (e) => (lastError = messageOf(e)));
  ws.on('message', (data: RawData, isBinary: boolean) => {
    if (!isBinary) return void ws.close(1003, 'tunnel frames are binary messages');
    const bytes = toBytes(data);
    if (onMessage) return onMessage(bytes);
    held.push(bytes);
    if (held.length > 64) ws.close(1008, 'no session is reading');
  });
  ws.on('close', (code: number, reason: Buffer) => {
    if (killTimer) clearTimeout(killTimer);
    killTimer = undefined;
    closedWith = [code, reason.toString() || lastError || ''];
    onClose?.(...closedWith);
  });

  const drainListeners: (() => void)[] = [];
  // Node's ws writes to a net.Socket, whose 'drain' tells us the queue emptied. Bun's ws does
  // not emit it; without onDrain the session polls bufferedAmount instead.
  const socket = (ws as unknown as { _socket?: { on?: (e: string, f: () => void) => void } })._socket;
  const nodeDrain = typeof process.versions.bun !== 'string' && typeof socket?.on === 'function';
  if (nodeDrain) socket!.on!('drain', () => drainListeners.forEach((f) => f()));

  const transport: TunnelTransport = {
    send(frame) {
      if (ws.readyState === WebSocket.OPEN) ws.send(frame, { binary: true });
    },
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
    onMessage(fn) {
      onMessage = fn;
      for (const m of held.splice(0)) fn(m);
    },
    onClose(fn) {
      onClose = fn;
      if (closedWith) queueMicrotask(() => fn(...closedWith!));
    },
    close(code, reason) {
      if (closedWith || ws.readyState === WebSocket.CLOSED) return;
      ws.close(code, clampReason(reason, 123));
      killTimer ??= setTimeout(() => ws.terminate(), closeTimeoutMs);
      killTimer.unref?.();
    },
  };
  if (nodeDrain) transport.onDrain = (fn) => void drainListeners.push(fn);
  return transport;
}

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}
