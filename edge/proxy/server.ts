/**
 * The agent's proxy: what kubelet, kube-proxy, CoreDNS and pods talk to instead of kube-apiserver.
 *
 * Online, each request goes to the picked upstream and its answer streams back; the cache's
 * recorder taps what cached clients receive. When no upstream is healthy, or the upstream fails
 * before answering a request the cache can answer, the cache answers: reads from the store,
 * watches from the log, lease/status/event writes locally. Every path writes a response; errors
 * become a Kubernetes Status (status.ts).
 *
 * Identity: only a loopback listener lends the node's client certificate to requests without
 * credentials; on any other address such requests get 401.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { Counter } from '../../shared/metrics.ts';
import { type RequestInfo, type ResourceRequestInfo, parseRequest } from '../../shared/kube/index.ts';
import { splitHostPort } from '../../shared/serve.ts';
import { readBody } from './body.ts';
import { createLimiter } from './limiter.ts';
import { type ForwardTarget, forward } from './forward.ts';
import { statusBody, statusOf, writeStatus } from './status.ts';
import { type UpgradeTarget, passUpgrade } from './upgrade.ts';
import type { Tap } from './forward.ts';

export type Target = ForwardTarget & UpgradeTarget;

/** What the proxy needs of the upstream pool. */
export interface Upstreams {
  pick(): Target | undefined;
  reportFailure(t: Target, err: unknown): void;
  track(t: Target, abort: AbortController): () => void;
}

/** An answer from the cache. */
export interface CachedAnswer {
  status: number;
  body: unknown;
  /** The body already serialized; wins over `body`. */
  raw?: string;
  warning?: string;
}

export interface WatchSink {
  write(line: string): boolean;
  end(): void;
  onClose(fn: () => void): void;
}

/** What the proxy needs of the cache. */
export interface ProxyCache {
  tapFor(info: RequestInfo, accept: string | undefined, cached: boolean): Tap | undefined;
  /** Reads answered from the store; throws a TetherError when the store cannot answer. */
  read(info: ResourceRequestInfo, cached: boolean, accept: string | undefined): CachedAnswer;
  watch(info: ResourceRequestInfo, sink: WatchSink): void;
  write(info: ResourceRequestInfo, url: string, contentType: string, body: string, hasCredentials: boolean): CachedAnswer;
  document(info: RequestInfo, accept: string | undefined): { contentType: string; body: string } | undefined;
}

/**
 * A rewrite of some answers on their way to the client (the service-topology filter of
 * EndpointSlices and Endpoints); the store keeps what the apiserver sent.
 */
export interface ResponseFilter {
  applies(info: RequestInfo): boolean;
  /** A whole GET/LIST answer (JSON text). */
  body(text: string): string;
  /** One watch line, without its newline. */
  line(line: string): string;
  /** An open watch the filter may write extra whole lines to (re-emitted objects); returns an unregister fn. */
  openWatch(info: ResourceRequestInfo, write: (line: string) => void): () => void;
}

export interface ProxyOptions {
  listen: string;
  upstreams: Upstreams;
  cache: ProxyCache;
  isCachedComponent(component: string): boolean;
  log: Logger;
  requests: Counter;
  /** At most this many LISTs go upstream at once (relists after a reconnect are queued, not stormed). */
  maxConcurrentLists?: number;
  filter?: ResponseFilter;
}

export interface ProxyServer {
  server: Server;
  address: string;
  close(): Promise<void>;
}

const LOOPBACK = /^(127\.|::1$|localhost$)/;

/** kubelet and friends ask for protobuf first; the cache records JSON, which every client-go client decodes too. */
function jsonAccept(accept: string | undefined): string | undefined {
  if (!accept || !accept.includes('protobuf')) return undefined;
  return /application\/json|\*\/\*/.test(accept) ? 'application/json' : undefined;
}

function sendAnswer(res: ServerResponse, a: CachedAnswer) {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-tether-source': 'cache' };
  if (a.warning) headers.warning = a.warning;
  res.writeHead(a.status, headers);
  res.end(a.raw ?? JSON.stringify(a.body));
}

export function createProxyServer(opts: ProxyOptions): Promise<ProxyServer> {
  const { upstreams, cache, log } = opts;
  const { host, port } = splitHostPort(opts.listen);
  const lendIdentity = LOOPBACK.test(host);
  const lists = createLimiter(opts.maxConcurrentLists ?? 4);

  const count = (info: RequestInfo | undefined, code: number, source: 'upstream' | 'cache' | 'proxy') =>
    opts.requests.inc({ verb: info?.verb ?? 'unknown', code: String(code), source });

  const serveFromCache = (info: RequestInfo, req: IncomingMessage, res: ServerResponse, cached: boolean, body: Buffer | undefined) => {
    if (!info.isResourceRequest) {
      const doc = info.discovery && info.method === 'GET' ? cache.document(info, req.headers.accept) : undefined;
      if (!doc) throw new TetherError(ErrorCode.UpstreamUnavailable, `tether-edge: offline, and ${info.path} is not in the node's cache`);
      res.writeHead(200, { 'content-type': doc.contentType, 'x-tether-source': 'cache' });
      res.end(doc.body);
      count(info, 200, 'cache');
      return;
    }
    const filter = opts.filter?.applies(info) ? opts.filter : undefined;
    if (info.verb === 'watch') {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'x-tether-source': 'cache' });
      res.flushHeaders?.();
      const unregister = filter?.openWatch(info, (line) => res.write(line));
      if (unregister) res.on('close', unregister);
      cache.watch(info, {
        write: (line) => res.write(filter ? `${filter.line(line.replace(/\n$/, ''))}\n` : line),
        end: () => res.end(),
        onClose: (fn) => res.on('close', fn),
      });
      count(info, 200, 'cache');
      return;
    }
    let a: CachedAnswer;
    if ((info.verb === 'get' && info.subresource === '') || info.verb === 'list') a = cache.read(info, cached, req.headers.accept);
    else if (info.verb === 'create' || info.verb === 'update' || info.verb === 'patch') {
      a = cache.write(info, req.url ?? info.path, String(req.headers['content-type'] ?? ''), (body ?? Buffer.alloc(0)).toString('utf8'), Boolean(req.headers.authorization));
    } else {
      throw new TetherError(ErrorCode.UpstreamUnavailable, `tether-edge: offline: ${info.verb} ${info.resource}${info.subresource ? `/${info.subresource}` : ''} needs the apiserver; retry later`);
    }
    if (filter && a.status === 200) a = { ...a, raw: filter.body(a.raw ?? JSON.stringify(a.body)) };
    sendAnswer(res, a);
    count(info, a.status, 'cache');
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    let info: RequestInfo | undefined;
    try {
      info = parseRequest(req.method ?? 'GET', req.url ?? '/', req.headers as Record<string, string | undefined>);
      if (!req.headers.authorization && !lendIdentity) {
        writeStatus(res, statusBody(401, 'Unauthorized', `tether-edge: requests to ${opts.listen} must carry credentials`));
        count(info, 401, 'proxy');
        return;
      }
      const cached = opts.isCachedComponent(info.component);
      const isRead = info.method === 'GET' || info.method === 'HEAD';
      const body = isRead ? undefined : await readBody(req);
      const isList = info.isResourceRequest && info.verb === 'list';
      const releaseList = isList ? await lists.acquire() : undefined;
      const target = upstreams.pick();
      if (target) {
        const abort = new AbortController();
        const untrack = upstreams.track(target, abort);
        const filter = opts.filter?.applies(info) ? opts.filter : undefined;
        // The filter reads JSON: kube-proxy asks for protobuf first, and takes JSON as well.
        const accept = filter || (cached && info.isResourceRequest) ? jsonAccept(req.headers.accept) : undefined;
        const isWatch = info.isResourceRequest && info.verb === 'watch';
        const unregister =
          filter && isWatch
            ? filter.openWatch(info as ResourceRequestInfo, (line) => {
                if (res.headersSent && !res.writableEnded) res.write(line);
              })
            : undefined;
        try {
          await forward(target, req, res, {
            transform: filter ? (isWatch ? { line: filter.line } : { body: filter.body }) : undefined,
            signal: abort.signal,
            accept,
            body,
            watch: info.isResourceRequest && info.verb === 'watch',
            tap: cache.tapFor(info, accept ?? req.headers.accept, cached),
            onResponse: (status) => count(info, status, 'upstream'),
          });
          return;
        } catch (e) {
          upstreams.reportFailure(target, e);
          log.info('upstream failed; answering from the cache', { path: info.path, error: messageOf(e) });
        } finally {
          unregister?.();
          untrack();
          releaseList?.();
        }
      }
      releaseList?.();
      serveFromCache(info, req, res, cached, body);
    } catch (e) {
      const status = statusOf(e);
      if (status.code >= 500 && status.code !== 503) log.error('proxy request failed', { path: req.url, error: e });
      writeStatus(res, status);
      count(info, status.code, 'proxy');
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => {
    if (!req.headers.authorization && !lendIdentity) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    passUpgrade(upstreams.pick(), req, socket, head, !req.headers.authorization, log);
  });
  server.on('clientError', (_e, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });

  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new TetherError(ErrorCode.BadConfig, `listen on ${opts.listen}: ${messageOf(e)}`, { cause: e })));
    server.listen(port, host, () => {
      const a = server.address() as AddressInfo;
      resolve({
        server,
        address: `${a.address}:${a.port}`,
        close: () =>
          new Promise((r) => {
            server.closeAllConnections?.();
            server.close(() => r());
          }),
      });
    });
  });
}
