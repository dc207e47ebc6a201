/**
 * Forwarding one request to an upstream kube-apiserver and streaming the answer back.
 *
 * Credentials: a request that carries its own (Authorization header) goes out on a connection
 * without the node's client certificate, so the apiserver authenticates the caller's token and not
 * the node; a request without credentials goes out with the node's certificate (the caller decides
 * whether it may, see server.ts).
 *
 * The response is streamed chunk by chunk as it arrives (watches are never buffered), with
 * backpressure from the client. A `tap` sees the same chunks, for the cache to record them.
 *
 * Compression: the upstream is always asked for gzip (kube-apiserver compresses large answers when
 * asked). A gzip answer is decoded on the way when the cache taps it, a filter rewrites it, or the
 * client did not ask for gzip itself; otherwise it passes through compressed, as the client asked.
 *
 * The target's `exchange` (optional) hears how the request goes, for the upstream pool's passive
 * health checking and the link's byte counts: bytes sent, the answer starting, bytes received (as
 * on the wire, compressed), a stream that broke, the end.
 */
import type { Agent, IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createGunzip, type Gunzip } from 'node:zlib';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import { httpHeadBytes } from '../../shared/metrics.ts';
import type { Tap } from '../cache/contract.ts';

/** What the proxy needs of an upstream (edge/upstream provides it). */
export interface ForwardTarget {
  readonly url: URL;
  /** Connections presenting the node's client certificate. */
  readonly agent: Agent;
  /** Connections without a client certificate, for requests that bring their own credentials. */
  readonly bearerAgent: Agent;
  /**
   * Connections for answers that carry credentials (Secrets, service-account tokens), when `agent`'s
   * connections compress in a context shared with other requests (the via-hub api streams): a secret
   * compressed beside bytes someone else chose would leak through the compressed length (CRIME).
   */
  readonly sensitiveAgent?: Agent;
  /** Begins watching one request to this target (health and byte counts); optional. */
  exchange?(kind: ExchangeKind): ForwardExchange;
}

/** What a request's bytes count as on the link. */
export type ExchangeKind = 'request' | 'watch' | 'replay' | 'discovery';

/** What forward() reports of one request. */
export interface ForwardExchange {
  sent(bytes: number): void;
  /** Status and headers arrived; `headBytes` is their size. */
  answered(headBytes: number): void;
  /** Body bytes arrived, as on the wire. */
  received(bytes: number): void;
  /** The answer had started and broke with an error that is not the client's doing. */
  broken(err: unknown): void;
  end(): void;
}

/** Secrets (any namespace, list or get or watch) and service-account token requests: answers that hold credentials. */
export function carriesCredentials(target: string): boolean {
  const path = target.split('?')[0] ?? '';
  return /^\/api\/v1\/(namespaces\/[^/]+\/)?secrets(\/|$)/.test(path) || /^\/api\/v1\/namespaces\/[^/]+\/serviceaccounts\/[^/]+\/token$/.test(path);
}

function acceptsGzip(v: string | string[] | undefined): boolean {
  const text = Array.isArray(v) ? v.join(',') : (v ?? '');
  return text.split(',').some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(';');
    if (coding !== 'gzip' && coding !== '*') return false;
    const q = params.map((x) => x.trim()).find((x) => x.startsWith('q='));
    return !q || Number(q.slice(2)) > 0;
  });
}

export interface ForwardOptions {
  signal?: AbortSignal;
  /** Replaces the Accept header (the cache asks for JSON). */
  accept?: string;
  tap?: Tap;
  /** The request body, already read (writes); absent means the request stream is piped. */
  body?: Buffer;
  /** A watch: when the upstream breaks mid-stream, end the client's stream cleanly so it re-watches. */
  watch?: boolean;
  /** Called when the upstream's answer starts (before its body). */
  onResponse?: (status: number) => void;
  /**
   * Rewrites a successful JSON answer on its way to the client: `body` the whole of a GET/LIST answer
   * (it is collected first), `line` each line of a watch (whole lines are written, never parts).
   */
  transform?: { body?: (text: string) => string; line?: (line: string) => string };
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

export function outgoingHeaders(headers: IncomingHttpHeaders, host: string, accept?: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  out.host = host;
  if (accept) out.accept = accept;
  return out;
}

/** Ask the upstream for gzip whatever the client asked; forward() decodes when it must. */
function upstreamHeaders(h: Record<string, string | string[]>): Record<string, string | string[]> {
  h['accept-encoding'] = 'gzip';
  return h;
}

/** Splits a stream into lines: whole lines out, the rest kept until more arrives. */
function lineSplitter(onLine: (line: string) => void) {
  let partial = '';
  return {
    push(chunk: Buffer) {
      const text = partial + chunk.toString('utf8');
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) onLine(l);
    },
    flush() {
      if (partial) onLine(partial);
      partial = '';
    },
  };
}

/**
 * Sends the request upstream. Resolves once the response has been fully relayed (or the client went
 * away); rejects with E_UPSTREAM_UNAVAILABLE when the upstream failed before answering, so the caller
 * may answer another way. A failure after the answer started just ends the client's response.
 */
export function forward(target: ForwardTarget, req: IncomingMessage, res: ServerResponse, opts: ForwardOptions = {}): Promise<void> {
  const url = target.url;
  const useTls = url.protocol === 'https:';
  const agent = target.sensitiveAgent && carriesCredentials(req.url ?? '/') ? target.sensitiveAgent : req.headers.authorization ? target.bearerAgent : target.agent;
  const base = url.pathname.replace(/\/$/, '');
  const ex = target.exchange?.(opts.watch ? 'watch' : 'request');
  // Decode a gzip answer unless it can go to the client as it is.
  const mustDecode = opts.tap !== undefined || opts.transform !== undefined || !acceptsGzip(req.headers['accept-encoding']);
  const path = base + (req.url ?? '/');
  const headers = upstreamHeaders(outgoingHeaders(req.headers, url.host, opts.accept));
  ex?.sent(httpHeadBytes(`${req.method} ${path} HTTP/1.1`, headers) + (opts.body?.length ?? 0));
  return new Promise<void>((resolve, reject) => {
    let answered = false;
    let clientGone = false;
    const upReq = (useTls ? httpsRequest : httpRequest)({
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port || (useTls ? 443 : 80),
      method: req.method,
      path,
      headers,
      agent,
      signal: opts.signal,
    });
    upReq.on('response', (upRes) => {
      answered = true;
      ex?.answered(httpHeadBytes(`HTTP/1.1 ${upRes.statusCode} ${upRes.statusMessage ?? ''}`, upRes.headers));
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(upRes.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
      const gzipped = String(upRes.headers['content-encoding'] ?? '').toLowerCase() === 'gzip';
      const gunzip: Gunzip | undefined = gzipped && mustDecode ? createGunzip() : undefined;
      if (gunzip) {
        delete headers['content-encoding'];
        delete headers['content-length'];
      }
      // What the tap and transforms see: the answer's bytes, decoded.
      const tapHead = gunzip ? { ...upRes.headers, 'content-encoding': undefined, 'content-length': undefined } : upRes.headers;
      opts.onResponse?.(upRes.statusCode ?? 502);
      const tapping = opts.tap?.head(upRes.statusCode ?? 502, tapHead) ?? false;
      const json = (upRes.statusCode ?? 0) === 200 && String(upRes.headers['content-type'] ?? '').startsWith('application/json');
      const bodyTransform = json && (!gzipped || gunzip) ? opts.transform?.body : undefined;
      const lineTransform = json && (!gzipped || gunzip) ? opts.transform?.line : undefined;
      if (bodyTransform || lineTransform) delete headers['content-length'];
      if (!bodyTransform) {
        res.writeHead(upRes.statusCode ?? 502, headers);
        res.flushHeaders?.();
      }
      const send = (data: Buffer | string) => {
        if (!res.write(data)) {
          upRes.pause();
          res.once('drain', () => upRes.resume());
        }
      };
      const collected: Buffer[] = [];
      const lines = lineTransform ? lineSplitter((l) => send(`${lineTransform(l)}\n`)) : undefined;
      let complete = false;
      let done = false;
      const onChunk = (chunk: Buffer) => {
        if (tapping) opts.tap!.chunk(chunk);
        if (bodyTransform) collected.push(chunk);
        else if (lines) lines.push(chunk);
        else send(chunk);
      };
      const onEnd = () => {
        complete = true;
        if (bodyTransform) {
          const out = bodyTransform(Buffer.concat(collected).toString('utf8'));
          res.writeHead(upRes.statusCode ?? 502, { ...headers, 'content-length': String(Buffer.byteLength(out)) });
          res.end(out);
          return;
        }
        lines?.flush();
        res.end();
      };
      const finish = () => {
        if (done) return;
        done = true;
        if (!complete) {
          if (opts.watch) res.end();
          else res.destroy();
        }
        if (tapping) opts.tap!.end(complete);
        ex?.end();
        resolve();
      };
      upRes.on('data', (chunk: Buffer) => {
        ex?.received(chunk.length);
        if (gunzip) gunzip.write(chunk);
        else onChunk(chunk);
      });
      if (gunzip) {
        gunzip.on('data', onChunk);
        gunzip.on('end', onEnd);
        gunzip.on('error', () => finish()); // a corrupt stream: the client's answer is cut, not completed
        gunzip.on('close', finish);
      }
      let upEnded = false;
      upRes.on('end', () => {
        upEnded = true;
        if (gunzip) gunzip.end();
        else onEnd();
      });
      upRes.on('close', () => {
        if (!upEnded) {
          gunzip?.destroy();
          return finish();
        }
        if (!gunzip) finish();
      });
      upRes.on('error', (e) => {
        if (!clientGone) ex?.broken(e); // surfaced to the client by 'close'
      });
    });
    upReq.on('error', (e) => {
      if (answered) return; // the response side ends the client's answer
      ex?.end();
      if (clientGone) return resolve(); // not the upstream's fault
      reject(new TetherError(ErrorCode.UpstreamUnavailable, `forward ${req.method} ${req.url} to ${url.host}: ${messageOf(e)}`, { cause: e }));
    });
    // The client went away: stop the upstream request (a watch would otherwise hang on forever).
    res.on('close', () => {
      if (res.writableFinished) return;
      clientGone = true;
      upReq.destroy();
      if (!answered) resolve();
    });
    if (opts.body) upReq.end(opts.body);
    else {
      if (ex) req.on('data', (c: Buffer) => ex.sent(c.length));
      req.pipe(upReq);
    }
  });
}
