/**
 * The hub's side of api streams: a node's kube-apiserver traffic, opened by its agent inside the
 * tunnel session (`open('kube-apiserver', 0, { compress: true })`), forwarded to kube-apiserver
 * as that node (api-headers.ts decides the identity and headers).
 *
 * Contract:
 * - `open(node, host, port)` is the session's `onOpen` for agent-opened streams: anything but
 *   `kube-apiserver:0` is refused (E_TUNNEL_DENIED, with the reason the agent sees). An accepted
 *   stream is one end of a socket pair (api-socket.ts) whose other end is handed to one node:http
 *   server; requests on it are HTTP/1.1 with keep-alive, as on a TCP connection to the apiserver.
 * - Each request goes to kube-apiserver over node:https with keep-alive agents; the answer is
 *   streamed back chunk by chunk (watches are never buffered) with backpressure both ways; the
 *   edge going away (the stream reset, the session gone) aborts the upstream request.
 * - Upgrades (exec, attach, port-forward of a client on the node) are forwarded: the apiserver's
 *   101 and its headers go back and the bytes are piped both ways; a non-101 answer is sent as an
 *   ordinary response and the stream closed after it.
 * - Errors are Kubernetes Status JSON, written in `sendStatus` only: malformed HTTP on the stream
 *   400 (then the stream is closed); the apiserver unreachable 503; the hub's credentials
 *   unreadable 500. Every request is counted once with the status the edge saw (`answered`).
 * - With `topology`, GET/LIST/WATCH answers of EndpointSlices and Endpoints are filtered for the
 *   node (api-filter.ts; such requests ask the apiserver for uncompressed answers); protobuf,
 *   Tables and error answers pass unfiltered.
 * - With `artifacts`, requests whose path starts with /tether/v1/artifacts/ are the artifact
 *   relay's (artifacts.ts), never kube-apiserver's; an upgrade on such a path is refused (400).
 *   With `apiserver: false` (config apiStreams off, the relay on) streams are accepted for the
 *   relay only: every other request is answered 403 and no upstream is ever made.
 * - `close()` destroys every api stream and the upstream agents' sockets.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import { type StatusReason, statusBody as kubeStatus, statusText } from '../../shared/kube/status.ts';
import type { Logger } from '../../shared/log.ts';
import type { OpenInfo } from '../../shared/tunnel/session.ts';
import { downstreamHeaders, type ImpersonationMode, upstreamHeaders } from './api-headers.ts';
import { writeFiltered } from './api-filter.ts';
import { createApiSocketPair } from './api-socket.ts';
import { isArtifactPath } from './artifacts.ts';
import type { EndpointsRequest, HubTopology } from './api-topology.ts';

/** The host an agent opens for api streams (edge/tunnel/tunnel-agent.ts API_STREAM_HOST); port 0. */
export const API_STREAM_HOST = 'kube-apiserver';

/** What the forwarder needs of kube-apiserver (cloud/kube/client.ts `createApiUpstream`). */
export interface ApiUpstream {
  server: URL;
  agent(as: 'hub' | 'bearer'): http.Agent;
  hubHeaders(): Promise<Record<string, string>>;
  close?(): void;
}

export interface ApiForwarderOptions {
  /** The upstream, or a factory called on the first api stream (a failure refuses that stream and is retried on the next). */
  upstream: ApiUpstream | (() => Promise<ApiUpstream>);
  impersonation: ImpersonationMode;
  /** Replace the edge's Accept-Encoding upstream (e.g. 'identity': the tunnel's deflate compresses); absent: keep it. */
  acceptEncoding?: string;
  /**
   * The service-topology filter before the link (api-topology.ts): EndpointSlices/Endpoints JSON
   * answers are filtered for the node once it is synced. Absent: answers pass as they are.
   */
  topology?: HubTopology;
  /** Every request once, with the status the edge got (0: the stream went away before an answer). */
  answered?(node: string, code: number): void;
  /** Requests under /tether/v1/artifacts/ go here instead of to kube-apiserver (artifacts.ts). */
  artifacts?: { handle(node: string, req: IncomingMessage, res: ServerResponse): void };
  /** false: api streams carry artifact requests only (the rest is answered 403). Default true. */
  apiserver?: boolean;
  log: Logger;
}

export interface ApiForwarder {
  open(node: string, host: string, port: number, info?: OpenInfo): Promise<Duplex>;
  /** Api streams open now. */
  readonly streams: number;
  close(): void;
}

// A node name as the apiserver validates it (DNS subdomain); anything else never reaches a header.
const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

interface StatusOpts {
  code: number;
  reason: StatusReason;
  message: string;
}

function statusBody(s: StatusOpts): string {
  return statusText(kubeStatus(s.code, s.reason, s.message));
}

/** The one place an error becomes an answer. */
function sendStatus(res: ServerResponse, s: StatusOpts): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = statusBody(s);
  res.writeHead(s.code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
}

/** The same Status on a raw stream (malformed HTTP, a failed upgrade), then the stream is closed. */
function sendRawStatus(socket: Duplex, s: StatusOpts): void {
  if (!socket.writable) return void socket.destroy();
  const body = statusBody(s);
  const text = http.STATUS_CODES[s.code] ?? 'Error';
  socket.end(`HTTP/1.1 ${s.code} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

const unavailable = (step: string, e: unknown): StatusOpts => ({ code: 503, reason: 'ServiceUnavailable', message: `tether-hub: ${step}: ${messageOf(e)}` });

export function createApiForwarder(opts: ApiForwarderOptions): ApiForwarder {
  const { log } = opts;
  const nodeOf = new WeakMap<object, string>();
  const open = new Set<Duplex>();
  let upstream: ApiUpstream | undefined = typeof opts.upstream === 'function' ? undefined : opts.upstream;
  let making: Promise<ApiUpstream> | undefined;
  const getUpstream = async (): Promise<ApiUpstream> => {
    if (upstream) return upstream;
    const factory = opts.upstream as () => Promise<ApiUpstream>;
    making ??= factory().then(
      (u) => (upstream = u),
      (e) => {
        making = undefined;
        throw e;
      },
    );
    return making;
  };
  const answered = (node: string, code: number) => opts.answered?.(node, code);

  /** Always the apiserver: only path and query come from the edge (never a host, even from "//host/…"). */
  const target = (u: ApiUpstream, url: string | undefined): URL => {
    const raw = url && url.startsWith('/') ? url : '/';
    const q = raw.indexOf('?');
    const t = new URL(u.server.href);
    t.pathname = u.server.pathname.replace(/\/+$/, '') + (q < 0 ? raw : raw.slice(0, q));
    t.search = q < 0 ? '' : raw.slice(q);
    return t;
  };

  const prepare = async (node: string, req: IncomingMessage, upgrade?: string, filtered?: EndpointsRequest) => {
    const u = upstream!;
    const acceptEncoding = filtered ? 'identity' : opts.acceptEncoding;
    const { bearer, headers } = upstreamHeaders(req.rawHeaders, { node, mode: opts.impersonation, upgrade, acceptEncoding });
    if (!bearer) Object.assign(headers, await u.hubHeaders());
    const url = target(u, req.url);
    const client = url.protocol === 'https:' ? https : http;
    return { url, client, options: { method: req.method, headers, agent: u.agent(bearer ? 'bearer' : 'hub') } as https.RequestOptions, bearer };
  };

  const apiserver = opts.apiserver !== false;
  const noApiserver: StatusOpts = {
    code: 403,
    reason: 'Forbidden',
    message: 'tether-hub: this hub does not forward api streams to kube-apiserver (apiStreams: false); only /tether/v1/artifacts/ is served',
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const node = nodeOf.get(req.socket)!;
    if (opts.artifacts && isArtifactPath(req.url)) return opts.artifacts.handle(node, req, res);
    if (!apiserver) {
      answered(node, 403);
      return sendStatus(res, noApiserver);
    }
    let sent = false;
    const count = (code: number) => {
      if (sent) return;
      sent = true;
      answered(node, code);
    };
    const topology = opts.topology;
    const ep = topology?.synced ? topology.classify(req.method, req.url) : undefined;
    let p: Awaited<ReturnType<typeof prepare>>;
    try {
      p = await prepare(node, req, undefined, ep);
    } catch (e) {
      log.warn('api stream: read the hub credentials failed', { node, error: messageOf(e) });
      count(500);
      return sendStatus(res, { code: 500, reason: 'InternalError', message: `tether-hub: read the hub's credentials: ${messageOf(e)}` });
    }
    const up = p.client.request(p.url, p.options);
    res.once('close', () => {
      if (!res.writableFinished) {
        count(0);
        up.destroy();
      }
    });
    up.on('response', (ur) => {
      const code = ur.statusCode ?? 502;
      count(code);
      const json = /^application\/json\b/.test(ur.headers['content-type'] ?? '') && !ur.headers['content-encoding'];
      if (ep && topology && code === 200 && json) return writeFiltered(ur, res, code, downstreamHeaders(ur.rawHeaders), topology, node, ep);
      res.writeHead(code, ur.statusMessage, downstreamHeaders(ur.rawHeaders));
      // Watches: send the head now, and each chunk as it comes.
      res.flushHeaders();
      ur.pipe(res);
      ur.on('error', () => res.destroy());
    });
    up.on('error', (e) => {
      if (res.headersSent || res.destroyed) return void res.destroy();
      log.warn('api stream: kube-apiserver request failed', { node, method: req.method, path: p.url.pathname, error: messageOf(e) });
      count(503);
      sendStatus(res, unavailable(`${req.method} ${p.url.pathname}: kube-apiserver`, e));
    });
    req.pipe(up);
    req.on('error', () => up.destroy());
  };

  const handleUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const node = nodeOf.get(socket)!;
    socket.on('error', () => {});
    if (!apiserver || (opts.artifacts && isArtifactPath(req.url))) {
      answered(node, apiserver ? 400 : 403);
      return sendRawStatus(socket, apiserver ? { code: 400, reason: 'BadRequest', message: 'tether-hub: release files are not served over upgraded connections' } : noApiserver);
    }
    let p: Awaited<ReturnType<typeof prepare>>;
    try {
      p = await prepare(node, req, req.headers.upgrade ?? 'SPDY/3.1');
    } catch (e) {
      answered(node, 500);
      return sendRawStatus(socket, { code: 500, reason: 'InternalError', message: `tether-hub: read the hub's credentials: ${messageOf(e)}` });
    }
    const up = p.client.request(p.url, p.options);
    socket.once('close', () => up.destroy());
    up.on('upgrade', (ur, usock, uhead) => {
      answered(node, ur.statusCode ?? 101);
      const lines = [`HTTP/1.1 ${ur.statusCode ?? 101} ${ur.statusMessage || 'Switching Protocols'}`];
      for (let i = 0; i + 1 < ur.rawHeaders.length; i += 2) lines.push(`${ur.rawHeaders[i]}: ${ur.rawHeaders[i + 1]}`);
      socket.write(lines.join('\r\n') + '\r\n\r\n');
      if (uhead.length) socket.write(uhead);
      if (head.length) usock.write(head);
      usock.on('error', () => socket.destroy());
      socket.on('error', () => usock.destroy());
      usock.once('close', () => socket.destroy());
      socket.once('close', () => usock.destroy());
      usock.pipe(socket);
      socket.pipe(usock);
    });
    up.on('response', (ur) => {
      // The apiserver refused the upgrade (403, 400 …): pass its answer on and close.
      answered(node, ur.statusCode ?? 502);
      const lines = [`HTTP/1.1 ${ur.statusCode} ${ur.statusMessage ?? ''}`];
      const hs = downstreamHeaders(ur.rawHeaders);
      for (let i = 0; i + 1 < hs.length; i += 2) lines.push(`${hs[i]}: ${hs[i + 1]}`);
      socket.write(lines.join('\r\n') + '\r\nconnection: close\r\n\r\n');
      ur.pipe(socket);
    });
    up.on('error', (e) => {
      answered(node, 503);
      sendRawStatus(socket, unavailable(`upgrade ${p.url.pathname}: kube-apiserver`, e));
    });
    up.end();
  };

  const server = http.createServer((req, res) => void handle(req, res));
  // Watches last as long as the apiserver says; the session's heartbeat, not a timer here, decides the link is gone.
  server.timeout = 0;
  server.requestTimeout = 0;
  server.keepAliveTimeout = 120_000;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void handleUpgrade(req, socket, head));
  server.on('clientError', (e: Error, socket: Duplex) => {
    const node = nodeOf.get(socket);
    log.info('api stream: malformed HTTP request', { node, error: messageOf(e) });
    if (node) answered(node, 400);
    sendRawStatus(socket, { code: 400, reason: 'BadRequest', message: `tether-hub: malformed HTTP request on the api stream: ${messageOf(e)}` });
  });

  return {
    async open(node, host, port) {
      if (host !== API_STREAM_HOST || port !== 0) {
        throw new TetherError(ErrorCode.TunnelDenied, `open ${host}:${port}: the hub accepts streams from agents only to ${API_STREAM_HOST}:0 (api streams)`);
      }
      if (!NODE_NAME.test(node) || node.length > 253) {
        throw new TetherError(ErrorCode.TunnelDenied, `open ${host}:${port}: node name ${JSON.stringify(node)} is not a valid Node name`);
      }
      try {
        if (apiserver) await getUpstream();
      } catch (e) {
        log.warn('api stream refused: no kube-apiserver to forward to', { node, error: messageOf(e) });
        throw new TetherError(ErrorCode.TunnelDial, `open ${host}:${port}: the hub cannot reach kube-apiserver: ${messageOf(e)}`, { cause: e });
      }
      const { outer, inner } = createApiSocketPair(`node/${node}`);
      nodeOf.set(inner, node);
      open.add(outer);
      outer.once('close', () => open.delete(outer));
      inner.on('error', () => {});
      server.emit('connection', inner);
      return outer;
    },
    get streams() {
      return open.size;
    },
    close() {
      for (const s of open) s.destroy();
      open.clear();
      upstream?.close?.();
    },
  };
}
