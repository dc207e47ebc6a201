/**
 * The first HTTP/1.1 request head on a raw socket, and one-line refusals.
 *
 * The CONNECT endpoint reads requests itself instead of using node:http: kube-apiserver's egress
 * dialer writes `CONNECT host:port HTTP/1.1` and then speaks TLS to the kubelet on the same
 * connection, and Prometheus sends absolute-form requests (`GET http://host:port/metrics`) for
 * plain-HTTP targets; both are easiest as "read one head, then own the socket".
 *
 * A refusal puts the reason in the status line, because that is what kube-apiserver reports
 * (`proxy error from … while dialing …, code 502: 502 <reason>`); the body repeats it for curl.
 */
import type { Duplex } from 'node:stream';
import { ErrorCode, TetherError } from '../../shared/errors.ts';

export interface RequestHead {
  method: string;
  /** "host:port" for CONNECT, "http://host:port/path" in absolute form, "/path" otherwise. */
  target: string;
  version: string;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** The head as received (header names in their original case), for forwarding. */
  lines: string[];
  /** Bytes that arrived after the head. */
  rest: Buffer;
}

const END = Buffer.from('\r\n\r\n');

/** Reads one request head; rejects with E_BAD_REQUEST on a malformed, oversized or late head. */
export async function readRequestHead(socket: Duplex, opts: HeadOptions = {}): Promise<RequestHead> {
  const { text, rest } = await readHead(socket, opts);
  return parseHead(text, rest);
}

export interface HeadOptions {
  maxBytes?: number;
  timeoutMs?: number;
}

/**
 * The bytes up to the blank line that ends an HTTP head (request or response), and what came
 * after. The socket is left paused.
 */
export function readHead(socket: Duplex, opts: HeadOptions = {}): Promise<{ text: string; rest: Buffer }> {
  const maxBytes = opts.maxBytes ?? 16 * 1024;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const finish = (err: Error | null, head?: { text: string; rest: Buffer }) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      socket.off('close', onEnd);
      if (err) reject(err);
      else resolve(head!);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const at = buf.indexOf(END);
      if (at < 0) {
        if (buf.length > maxBytes) finish(new TetherError(ErrorCode.BadRequest, `read HTTP head: longer than ${maxBytes} bytes`));
        return;
      }
      socket.pause();
      finish(null, { text: buf.subarray(0, at).toString('latin1'), rest: buf.subarray(at + END.length) });
    };
    const onEnd = () => finish(new TetherError(ErrorCode.BadRequest, 'read HTTP head: the peer closed the connection'));
    const timer = setTimeout(() => finish(new TetherError(ErrorCode.BadRequest, `read HTTP head: nothing complete within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onEnd);
    socket.once('close', onEnd);
    socket.resume();
  });
}

export function parseHead(text: string, rest: Buffer = Buffer.alloc(0)): RequestHead {
  const lines = text.split('\r\n');
  const m = /^([A-Z]+) (\S+) (HTTP\/1\.[01])$/.exec(lines[0] ?? '');
  if (!m) throw new TetherError(ErrorCode.BadRequest, `read HTTP head: bad request line ${JSON.stringify((lines[0] ?? '').slice(0, 100))}`);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0 || /^[ \t]/.test(line)) throw new TetherError(ErrorCode.BadRequest, `read HTTP head: bad header line ${JSON.stringify(line.slice(0, 100))}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { method: m[1]!, target: m[2]!, version: m[3]!, headers, lines, rest };
}

/** host and port of a CONNECT target ("host:port", "[v6]:port"), or undefined when malformed. */
export function parseAuthority(target: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+)):([0-9]{1,5})$/.exec(target);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

const reasons: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  403: 'Forbidden',
  407: 'Proxy Authentication Required',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** A status line safe to send: no control characters, bounded. */
export function statusLine(code: number, reason: string): string {
  const clean = reason.replace(/[\x00-\x1f\x7f]+/g, ' ').trim().slice(0, 400) || reasons[code] || 'Error';
  return `HTTP/1.1 ${code} ${clean}`;
}

/**
 * Answers with `code` and the reason in the status line and the body, ends the socket, and
 * destroys it `lingerMs` later (default 1000) if the peer has not closed by then: a refused client
 * keeps no half-open connection.
 */
export function refuse(socket: Duplex, code: number, reason: string, extraHeaders: string[] = [], lingerMs = 1000): void {
  if (socket.destroyed) return;
  const body = `${reason.replace(/[\x00-\x08\x0b-\x1f\x7f]+/g, ' ').slice(0, 2000)}\n`;
  socket.end(
    [statusLine(code, reason), 'Content-Type: text/plain; charset=utf-8', `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close', ...extraHeaders, '', body].join('\r\n'),
  );
  const timer = setTimeout(() => socket.destroy(), lingerMs);
  timer.unref?.();
  socket.once('close', () => clearTimeout(timer));
}

/** Status code and reason of a response head ("HTTP/1.1 502 node refused: …"). */
export function parseStatus(text: string): { code: number; reason: string } | undefined {
  const m = /^HTTP\/1\.[01] ([0-9]{3})(?: (.*))?$/.exec(text.split('\r\n')[0] ?? '');
  return m ? { code: Number(m[1]), reason: m[2] ?? '' } : undefined;
}
