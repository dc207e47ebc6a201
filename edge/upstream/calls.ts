/**
 * The agent's own requests to an upstream, as the node (outbox replay, discovery refresh, the
 * NodePool list and watch for the topology filter).
 *
 * Each asks for gzip and decodes it; each reports its bytes and progress to the target's
 * `exchange` under its `kind` (health and the link's byte counts). `ifNoneMatch` makes a request
 * conditional: a 304 answer has an empty body, and the caller keeps what it had.
 */
import type { IncomingMessage } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createGunzip } from 'node:zlib';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import { httpHeadBytes } from '../../shared/metrics.ts';
import type { ExchangeKind, ForwardExchange, ForwardTarget } from '../proxy/forward.ts';

export interface CallResult {
  status: number;
  contentType: string;
  body: string;
  /** The answer's ETag header, if any. */
  etag?: string;
}

export interface CallOptions {
  contentType?: string;
  accept?: string;
  body?: string;
  /** A conditional GET: the ETag of what the caller has. */
  ifNoneMatch?: string;
}

export type UpstreamCall = (method: string, path: string, opts?: CallOptions) => Promise<CallResult>;

interface RequestOptions extends CallOptions {
  timeoutMs?: number;
  userAgent?: string;
  /** What the bytes count as (default `request`). */
  kind?: ExchangeKind;
  signal?: AbortSignal;
}

function open(
  target: ForwardTarget,
  method: string,
  path: string,
  opts: RequestOptions,
  onResponse: (res: IncomingMessage, body: NodeJS.ReadableStream, ex: ForwardExchange | undefined) => void,
  onError: (e: unknown) => void,
) {
  const url = target.url;
  const tls = url.protocol === 'https:';
  const headers: Record<string, string> = {
    accept: opts.accept ?? 'application/json',
    'accept-encoding': 'gzip',
    'user-agent': opts.userAgent ?? 'tether-edge',
  };
  if (opts.contentType) headers['content-type'] = opts.contentType;
  if (opts.ifNoneMatch) headers['if-none-match'] = opts.ifNoneMatch;
  const fullPath = url.pathname.replace(/\/$/, '') + path;
  const ex = target.exchange?.(opts.kind ?? 'request');
  ex?.sent(httpHeadBytes(`${method} ${fullPath} HTTP/1.1`, { host: url.host, ...headers }) + Buffer.byteLength(opts.body ?? ''));
  let ended = false;
  const end = () => {
    if (!ended) ex?.end();
    ended = true;
  };
  const req = (tls ? httpsRequest : httpRequest)(
    {
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port || (tls ? 443 : 80),
      method,
      path: fullPath,
      headers,
      agent: target.agent,
      timeout: opts.timeoutMs ?? 10_000,
      signal: opts.signal,
    },
    (res) => {
      ex?.answered(httpHeadBytes(`HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ''}`, res.headers));
      res.on('data', (c: Buffer) => ex?.received(c.length));
      res.on('close', end);
      const gzipped = String(res.headers['content-encoding'] ?? '').toLowerCase() === 'gzip';
      onResponse(res, gzipped ? res.pipe(createGunzip()) : res, ex);
    },
  );
  req.on('timeout', () => req.destroy(new Error('timed out')));
  req.on('error', (e) => {
    end();
    onError(e);
  });
  req.end(opts.body);
  return req;
}

export function callUpstream(target: ForwardTarget, method: string, path: string, opts: RequestOptions = {}): Promise<CallResult> {
  return new Promise((resolve, reject) => {
    const fail = (e: unknown) => reject(new TetherError(ErrorCode.UpstreamUnavailable, `${method} ${path} to ${target.url.host}: ${messageOf(e)}`, { cause: e }));
    open(
      target,
      method,
      path,
      opts,
      (res, body) => {
        const chunks: Buffer[] = [];
        body.on('data', (c: Buffer) => chunks.push(c));
        body.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: String(res.headers['content-type'] ?? ''),
            body: Buffer.concat(chunks).toString('utf8'),
            ...(typeof res.headers.etag === 'string' ? { etag: res.headers.etag } : {}),
          }),
        );
        body.on('error', fail);
        res.on('error', fail);
      },
      fail,
    );
  });
}

export interface WatchLines {
  /** Resolves with the status when the watch ends (0 when it failed before an answer). */
  done: Promise<{ status: number; body?: string }>;
  stop(): void;
}

/**
 * A watch (or any streaming GET) whose answer is read line by line: `onLine` gets each whole line of
 * a 200 answer; another status is read whole and returned by `done`.
 */
export function watchUpstream(
  target: ForwardTarget,
  path: string,
  onLine: (line: string) => void,
  opts: Omit<RequestOptions, 'body' | 'contentType' | 'timeoutMs'> & { signal?: AbortSignal } = {},
): WatchLines {
  const abort = new AbortController();
  const onOuter = () => abort.abort(opts.signal!.reason);
  if (opts.signal?.aborted) onOuter();
  else opts.signal?.addEventListener('abort', onOuter, { once: true });
  const done = new Promise<{ status: number; body?: string }>((resolve) => {
    open(
      target,
      'GET',
      path,
      // A watch is silent for minutes: no socket timeout (the pool's health checking and the
      // apiserver's own timeoutSeconds end it).
      { ...opts, kind: opts.kind ?? 'watch', timeoutMs: 0, signal: abort.signal },
      (res, body) => {
        const status = res.statusCode ?? 0;
        let partial = '';
        const chunks: Buffer[] = [];
        body.on('data', (c: Buffer) => {
          if (status !== 200) return void chunks.push(c);
          const lines = (partial + c.toString('utf8')).split('\n');
          partial = lines.pop() ?? '';
          for (const l of lines) if (l.trim()) onLine(l);
        });
        const finish = () => resolve({ status, ...(status !== 200 ? { body: Buffer.concat(chunks).toString('utf8') } : {}) });
        body.on('end', finish);
        body.on('error', finish);
        res.on('close', finish);
      },
      () => resolve({ status: 0 }),
    );
  });
  return { done: done.finally(() => opts.signal?.removeEventListener('abort', onOuter)), stop: () => abort.abort(new Error('watch: stopped')) };
}
