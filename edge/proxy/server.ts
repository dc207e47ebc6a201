/**
 * The agent's proxy: what kubelet, kube-proxy, CoreDNS and pods talk to instead of kube-apiserver.
 *
 * Online, each request goes to the picked upstream and its answer streams back; the cache's
 * recorder taps what cached clients receive. When no upstream is healthy, or the upstream fails
 * before answering a request the cache can answer, the cache answers: reads from the store,
 * watches from the log, lease/status/event writes locally. Every path writes a response; errors
 * become a Kubernetes Status (error-status.ts).
 *
 * Identity (identity.ts): local clients connect over HTTPS and present a client certificate from
 * the agent's local CA; only they are lent the node's client certificate, and the certificate's
 * name is their component. Bearer tokens pass through as the caller. Requests with neither get
 * 401. Plain HTTP, lending the node's identity to every bare request on a loopback listener, only
 * with --insecure-plain-http. Certificate signing requests are never written with a lent identity.
 *
 * Offline, a bearer token is served only what the apiserver showed that very token online, while it
 * has not expired and its bound pod still exists (edge/auth/offline-tokens.ts); otherwise 401/403.
 *
 * Every request's target is normalized once (shared/kube normalizeTarget: dot segments refused)
 * and that one target is both parsed and forwarded. Malformed HTTP gets a 400 (431 for oversized
 * headers) with a Status body, a body over the limit a 413 Status.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { Counter } from '../../shared/metrics.ts';
import { type RequestInfo, type ResourceRequestInfo, apiStatusOf, normalizeTarget, parseRequest } from '../../shared/kube/index.ts';
import { splitHostPort } from '../../shared/serve.ts';
import { readBody } from './body.ts';
import { createLimiter } from './limiter.ts';
import { type ForwardTarget, forward } from './forward.ts';
import { type ClientIdentity, identify } from './identity.ts';
import { type OfflineTokens, type PodRef, createOfflineTokens } from '../auth/offline-tokens.ts';
import { type LocalTls, createListener } from './listener.ts';
import { FLAPPING_RETRY_SECONDS, rawStatusResponse, statusBody, statusOf, writeStatus } from './error-status.ts';
import { type UpgradeTarget, passUpgrade, refuseUpgrade } from './upgrade.ts';
import type { Cache, CachedAnswer } from '../cache/contract.ts';
import { wantsTable } from '../cache/table.ts';
import { isTokenRequest } from '../cache/tokens.ts';
import { type RelaySink, type RelayUpstreams, type WatchRelayOptions, relayWatch } from './watch-relay.ts';

export type Target = ForwardTarget & UpgradeTarget;

/** What the proxy needs of the upstream pool (the watch relay needs the same). */
export type Upstreams = RelayUpstreams<Target>;

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
  /** What the proxy needs of the cache: the cache's own contract (edge/cache/contract.ts). */
  cache: Cache;
  isCachedComponent(component: string): boolean;
  log: Logger;
  /** One debug line per request (logLevel debug): what each client asks, and how. */
  logRequests?: boolean;
  requests: Counter;
  /** At most this many LISTs go upstream at once (relists after a reconnect are queued, not stormed). */
  maxConcurrentLists?: number;
  filter?: ResponseFilter;
  /**
   * How local clients authenticate: `tls` serves HTTPS with the local CA (edge/certs/local-ca.ts);
   * `insecure-plain-http` serves plain HTTP and lends the node's identity to bare requests on a
   * loopback listener. Absent: insecure-plain-http, for callers not migrated yet (logged).
   */
  clientAuth?: { mode: 'tls'; tls: LocalTls } | { mode: 'insecure-plain-http' };
  /** false: Secrets are never recorded in the store nor answered from it. Default true. */
  cacheSecrets?: boolean;
  /** What bearer tokens were shown online, to check them offline (default: a fresh, bounded one). */
  offlineTokens?: OfflineTokens;
  /** Whether the pod a bound service-account token names still exists (default: never, so such tokens are refused offline). */
  podExists?: (pod: PodRef) => boolean;
}

export interface ProxyServer {
  server: Server;
  address: string;
  /** https://address, or http://address with insecure-plain-http. */
  url: string;
  close(): Promise<void>;
}

const LOOPBACK = /^(127\.|::1$|localhost$)/;

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Writes of certificate signing requests: never sent with the node's identity lent to a local client. */
function isCsrWrite(info: RequestInfo): boolean {
  return (
    info.isResourceRequest &&
    info.apiGroup === 'certificates.k8s.io' &&
    info.resource === 'certificatesigningrequests' &&
    info.verb !== 'get' &&
    info.verb !== 'list' &&
    info.verb !== 'watch'
  );
}

const isSecrets = (info: RequestInfo) => info.isResourceRequest && info.apiGroup === '' && info.resource === 'secrets';

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
  const auth = opts.clientAuth ?? { mode: 'insecure-plain-http' as const };
  if (!opts.clientAuth) log.warn('the proxy was started without local TLS: plain HTTP, the node identity lent to every local client');
  const tls = auth.mode === 'tls' ? auth.tls : undefined;
  const lendPlain = auth.mode === 'insecure-plain-http' && LOOPBACK.test(host);
  const cacheSecrets = opts.cacheSecrets ?? true;
  const lists = createLimiter(opts.maxConcurrentLists ?? 4);
  const tokens = opts.offlineTokens ?? createOfflineTokens();
  const podExists = opts.podExists ?? (() => false);

  const count = (info: RequestInfo | undefined, code: number, source: 'upstream' | 'cache' | 'proxy') =>
    opts.requests.inc({ verb: info?.verb ?? 'unknown', code: String(code), source });

  /** A watch served from the log, to a caller the offline rules admit; throws otherwise (the relay then ends the stream). */
  const watchFromLog = (info: ResourceRequestInfo, req: IncomingMessage, who: ClientIdentity, cached: boolean, sink: RelaySink, tableSeen = false) => {
    if (who.kind === 'bearer') {
      const d = tokens.authorize(String(req.headers.authorization), info, podExists);
      if (!d.ok) throw new TetherError(ErrorCode.UpstreamUnavailable, `tether-edge: offline, and this watch may not be served from the node's cache: ${d.message}`);
    }
    const admitted = cache.read(info, cached, req.headers.accept);
    if (admitted.status !== 200) throw new TetherError(ErrorCode.UpstreamUnavailable, `tether-edge: offline, and this watch may not be served from the node's cache (${admitted.status})`);
    // kubectl's server-side printing: Table rows from the log too, so `get -w` keeps its columns at a cut.
    cache.watch(info, sink, wantsTable(req.headers.accept) ? { table: { headers: !tableSeen } } : undefined);
  };
  /** What a client's watch needs to live through cuts and heals (watch-relay.ts). */
  const watchRelayOptions = (info: ResourceRequestInfo, req: IncomingMessage, who: ClientIdentity, cached: boolean, filter: ResponseFilter | undefined, accept?: string): WatchRelayOptions<Target> => {
    const json = accept ?? jsonAccept(req.headers.accept);
    return {
      info,
      url: req.url ?? info.path,
      headers: req.headers,
      upstreams,
      accept: json,
      tapFor: (leg) => cache.tapFor(leg, json ?? req.headers.accept, cached),
      line: filter?.line.bind(filter),
      onResponse: (status) => count(info, status, 'upstream'),
      serveLog: (leg, sink, state) => watchFromLog(leg, req, who, cached, sink, state?.tableSeen),
      log,
    };
  };

  const serveFromCache = (info: RequestInfo, req: IncomingMessage, res: ServerResponse, cached: boolean, body: Buffer | undefined, who: ClientIdentity): void | Promise<void> => {
    if (who.kind === 'bearer') {
      const d = tokens.authorize(String(req.headers.authorization), info, podExists);
      if (!d.ok) {
        writeStatus(res, d.code === 401 ? statusBody(401, 'Unauthorized', d.message) : statusBody(403, 'Forbidden', d.message));
        count(info, d.code, 'proxy');
        return;
      }
    }
    if (!info.isResourceRequest) {
      const doc = info.discovery && info.method === 'GET' ? cache.document(info, req.headers.accept) : undefined;
      if (!doc) throw new TetherError(ErrorCode.UpstreamUnavailable, `tether-edge: the node is offline, and ${info.path} is not in its cache; the answer needs the apiserver`);
      res.writeHead(200, { 'content-type': doc.contentType, 'x-tether-source': 'cache' });
      res.end(doc.body);
      count(info, 200, 'cache');
      return;
    }
    if (!cacheSecrets && isSecrets(info)) {
      throw new TetherError(ErrorCode.UpstreamUnavailable, 'tether-edge: the node is offline, and Secrets are not kept on this node (cacheSecrets: false); they are served again when the apiserver is reachable');
    }
    const filter = opts.filter?.applies(info) ? opts.filter : undefined;
    // Authorization parity (edge/cache/access.ts): a watch only of a scope this identity listed or watched online.
    const admitted = info.verb === 'watch' ? cache.read(info, cached, req.headers.accept) : undefined;
    if (admitted && admitted.status !== 200) {
      sendAnswer(res, admitted);
      count(info, admitted.status, 'cache');
      return;
    }
    if (info.verb === 'watch') {
      // Served from the log, and upstream again once it is back, in the same response (watch-relay.ts).
      const unregister = filter?.openWatch(info, (line) => {
        if (res.headersSent && !res.writableEnded) res.write(line);
      });
      if (unregister) res.on('close', unregister);
      const relayed = relayWatch(watchRelayOptions(info, req, who, cached, filter), res, 'log');
      if (res.headersSent) count(info, 200, 'cache');
      return relayed;
    }
    let a: CachedAnswer;
    // The kubelet's TokenRequest, asked again after an offline reboot: the answer it had online.
    const token = cached && who.lendsNode && isTokenRequest(info) ? cache.token?.(info, body ?? Buffer.alloc(0)) : undefined;
    if ((info.verb === 'get' && info.subresource === '') || info.verb === 'list') a = cache.read(info, cached, req.headers.accept);
    else if (token) a = token;
    else if (info.verb === 'create' || info.verb === 'update' || info.verb === 'patch') {
      a = cache.write(info, req.url ?? info.path, String(req.headers['content-type'] ?? ''), (body ?? Buffer.alloc(0)).toString('utf8'), Boolean(req.headers.authorization));
    } else {
      throw new TetherError(
        ErrorCode.UpstreamUnavailable,
        `tether-edge: the node is offline: ${info.verb} ${info.resource}${info.subresource ? `/${info.subresource}` : ''} needs the apiserver, and is served again when it is reachable`,
      );
    }
    if (filter && a.status === 200) a = { ...a, raw: filter.body(a.raw ?? JSON.stringify(a.body)) };
    sendAnswer(res, a);
    count(info, a.status, 'cache');
  };

  /**
   * A request the agent cannot parse goes upstream as it is while online (the apiserver answers it
   * as it would without the agent; nothing is recorded); offline, its parse error is the answer.
   */
  const passUnparsed = async (req: IncomingMessage, res: ServerResponse, who: ClientIdentity, parseError: unknown) => {
    if (who.kind === 'anonymous') {
      writeStatus(res, statusBody(401, 'Unauthorized', who.why));
      count(undefined, 401, 'proxy');
      return;
    }
    // Never lend the node's identity to what might be a CSR write the parser could not read.
    if (who.lendsNode && req.method !== 'GET' && req.method !== 'HEAD' && /certificatesigningrequests/i.test(decodeURIComponentSafe(req.url ?? ''))) throw parseError;
    const target = upstreams.pick();
    if (!target) throw parseError;
    const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : await readBody(req);
    const abort = new AbortController();
    const untrack = upstreams.track(target, abort);
    try {
      await forward(target, req, res, { signal: abort.signal, body, onResponse: (status) => count(undefined, status, 'upstream') });
    } catch (e) {
      upstreams.reportFailure(target, e);
      throw parseError;
    } finally {
      untrack();
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    let info: RequestInfo | undefined;
    let upstreamFailed = false;
    try {
      // One target, normalized once: what is parsed and decided on is what is forwarded.
      req.url = normalizeTarget(req.url ?? '/');
      try {
        info = parseRequest(req.method ?? 'GET', req.url, req.headers as Record<string, string | undefined>);
      } catch (e) {
        await passUnparsed(req, res, identify(req, { tls: tls !== undefined, lendPlain }), e);
        return;
      }
      const who = identify(req, { tls: tls !== undefined, lendPlain });
      const parsed = info;
      info.component = who.component; // the certificate's name, not the User-Agent
      info.lendsNode = who.lendsNode;
      // What each local client asks and how (docs/offline.md's table of the kubelet's and
      // kube-proxy's traffic was read off these lines); only at logLevel debug (nothing built otherwise).
      if (opts.logRequests) log.debug('request', { component: who.component || who.kind, method: req.method, url: req.url, accept: req.headers.accept, contentType: req.headers['content-type'] });
      if (who.kind === 'anonymous') {
        writeStatus(res, statusBody(401, 'Unauthorized', who.why));
        count(info, 401, 'proxy');
        return;
      }
      if (who.lendsNode && isCsrWrite(info)) {
        writeStatus(
          res,
          statusBody(403, 'Forbidden', "tether-edge: certificate signing requests are never sent with the node's identity; the agent renews the node's certificate itself", {
            group: 'certificates.k8s.io',
            kind: 'certificatesigningrequests',
          }),
        );
        count(info, 403, 'proxy');
        return;
      }
      const cached = info.component !== '' && opts.isCachedComponent(info.component) && !(isSecrets(info) && !cacheSecrets);
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
          if (isWatch) {
            const o = watchRelayOptions(info as ResourceRequestInfo, req, who, cached, filter, accept);
            await relayWatch({ ...o, onResponse: (status) => {
              o.onResponse?.(status);
              if (who.kind === 'bearer') tokens.accepted(String(req.headers.authorization), parsed, status);
            } }, res, { upstream: target, signal: abort.signal });
            return;
          }
          await forward(target, req, res, {
            transform: filter ? (isWatch ? { line: filter.line } : { body: filter.body }) : undefined,
            signal: abort.signal,
            accept,
            body,
            watch: info.isResourceRequest && info.verb === 'watch',
            tap: cache.tapFor(info, accept ?? req.headers.accept, cached, body),
            onResponse: (status) => {
              count(info, status, 'upstream');
              if (who.kind === 'bearer') tokens.accepted(String(req.headers.authorization), parsed, status);
            },
          });
          return;
        } catch (e) {
          upstreams.reportFailure(target, e);
          upstreamFailed = true;
          log.info('upstream failed; answering from the cache', { path: info.path, error: messageOf(e) });
        } finally {
          unregister?.();
          untrack();
          releaseList?.();
        }
      }
      releaseList?.();
      await serveFromCache(info, req, res, cached, body, who);
    } catch (e) {
      let status = statusOf(e);
      if (upstreamFailed && status.code === 503 && !status.details?.retryAfterSeconds) {
        // The upstream failed this very request while the link counted as up: a retry soon gets
        // the apiserver again, or the offline answer (without a retry hint) once the link is down.
        status = statusBody(status.code, status.reason, `${status.message} (the link to the apiserver failed during this request; retry)`, { ...status.details, retryAfterSeconds: FLAPPING_RETRY_SECONDS });
      }
      if (status.code >= 500 && status.code !== 503 && status.code !== 504 && !apiStatusOf(e)) log.error('proxy request failed', { path: req.url, error: e });
      writeStatus(res, status);
      count(info, status.code, 'proxy');
    }
  };

  // Responses still being written per connection: a parse error in what a client pipelined after a
  // request waits for that request's answer instead of cutting it off.
  type Responses = Set<ServerResponse> & { onIdle?: () => void };
  const inFlight = new Map<Duplex, Responses>();
  const listener = createListener((req, res) => {
    const sock = req.socket;
    let set = inFlight.get(sock);
    if (!set) {
      set = new Set() as Responses;
      inFlight.set(sock, set);
      sock.once('close', () => inFlight.delete(sock));
    }
    set.add(res);
    const responses = set;
    const done = () => {
      responses.delete(res);
      if (responses.size === 0) responses.onIdle?.();
    };
    res.once('finish', done);
    res.once('close', done);
    void handle(req, res);
  }, tls);
  const server = listener.http;
  server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => {
    try {
      req.url = normalizeTarget(req.url ?? '/');
    } catch (e) {
      refuseUpgrade(socket, 400, statusOf(e).message);
      return;
    }
    const who = identify(req, { tls: tls !== undefined, lendPlain });
    if (who.kind === 'anonymous') {
      refuseUpgrade(socket, 401, who.why);
      return;
    }
    passUpgrade(upstreams.pick(), req, socket, head, who.lendsNode, log);
  });
  // Malformed HTTP: a Status, as for every other refusal (431 for oversized headers).
  server.on('clientError', (e: NodeJS.ErrnoException, socket: Duplex) => {
    const big = e.code === 'HPE_HEADER_OVERFLOW';
    const body = big
      ? statusBody(431, 'BadRequest', 'tether-edge: request headers too large')
      : statusBody(400, 'BadRequest', `tether-edge: malformed HTTP request (${e.code ?? messageOf(e)})`);
    const refuse = () => (socket.writable ? socket.end(rawStatusResponse(body)) : socket.destroy());
    const pending = inFlight.get(socket);
    if (pending && pending.size > 0) pending.onIdle = refuse;
    else refuse();
  });

  const scheme = tls ? 'https' : 'http';
  return new Promise((resolve, reject) => {
    const listening = listener.socketServer;
    listening.once('error', (e) => reject(new TetherError(ErrorCode.BadConfig, `listen on ${opts.listen}: ${messageOf(e)}`, { cause: e })));
    listening.listen(port, host, () => {
      const a = listening.address() as AddressInfo;
      const address = `${a.address}:${a.port}`;
      resolve({ server, address, url: `${scheme}://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`, close: () => listener.close() });
    });
  });
}
