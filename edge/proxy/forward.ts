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
 */
import type { Agent, IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';

/** What the proxy needs of an upstream (edge/upstream provides it). */
export interface ForwardTarget {
  readonly url: URL;
  /** Connections presenting the node's client certificate. */
  readonly agent: Agent;
  /** Connections without a client certificate, for requests that bring their own credentials. */
  readonly bearerAgent: Agent;
}

export interface Tap {
  /** Called with the upstream's status and headers before any body chunk; return false to not tap this response. */
  head(status: number, headers: IncomingHttpHeaders): boolean;
  chunk(data: Buffer): void;
  end(complete: boolean): void;
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

/**
 * A tapped answer is recorded by the cache, which reads JSON: ask for it uncompressed (compression
 * buys nothing on the loopback hop to the client).
 */
function tapHeaders(h: Record<string, string | string[]>, tapped: boolean): Record<string, string | string[]> {
  if (tapped) delete h['accept-encoding'];
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
  const agent = req.headers.authorization ? target.bearerAgent : target.agent;
  const base = url.pathname.replace(/\/$/, '');
  return new Promise<void>((resolve, reject) => {
    let answered = false;
    const upReq = (useTls ? httpsRequest : httpRequest)({
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port || (useTls ? 443 : 80),
      method: req.method,
      path: base + (req.url ?? '/'),
      headers: tapHeaders(outgoingHeaders(req.headers, url.host, opts.accept), opts.tap !== undefined || opts.transform !== undefined),
      agent,
      signal: opts.signal,
    });
    upReq.on('response', (upRes) => {
      answered = true;
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(upRes.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
      opts.onResponse?.(upRes.statusCode ?? 502);
      const tapping = opts.tap?.head(upRes.statusCode ?? 502, upRes.headers) ?? false;
      const json = (upRes.statusCode ?? 0) === 200 && String(upRes.headers['content-type'] ?? '').startsWith('application/json');
      const bodyTransform = json ? opts.transform?.body : undefined;
      const lineTransform = json ? opts.transform?.line : undefined;
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
      upRes.on('data', (chunk: Buffer) => {
        if (tapping) opts.tap!.chunk(chunk);
        if (bodyTransform) collected.push(chunk);
        else if (lines) lines.push(chunk);
        else send(chunk);
      });
      upRes.on('end', () => {
        complete = true;
        if (bodyTransform) {
          const out = bodyTransform(Buffer.concat(collected).toString('utf8'));
          res.writeHead(upRes.statusCode ?? 502, { ...headers, 'content-length': String(Buffer.byteLength(out)) });
          res.end(out);
          return;
        }
        lines?.flush();
        res.end();
      });
      const finish = () => {
        if (tapping) opts.tap!.end(complete);
        resolve();
      };
      upRes.on('close', () => {
        if (!complete) {
          if (opts.watch) res.end();
          else res.destroy();
        }
        finish();
      });
      upRes.on('error', () => {
        /* surfaced by 'close' */
      });
    });
    let clientGone = false;
    upReq.on('error', (e) => {
      if (answered) return; // the response side ends the client's answer
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
    else req.pipe(upReq);
  });
}
