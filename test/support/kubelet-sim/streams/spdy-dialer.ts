/**
 * Client side of the SPDY upgrade, for tests and tools: connects (TLS or plain TCP), sends the
 * upgrade request with the offered X-Stream-Protocol-Version values, and on 101 returns a
 * client-role SpdySession on that connection. Any other answer rejects with its status and body.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { ErrorCode, TetherError } from '../../../../shared/errors.ts';
import type { Logger } from '../../../../shared/log.ts';
import { SpdySession, type FlowControlMode } from './spdy-session.ts';

export interface DialSpdyOptions {
  url: string;
  protocols: string[];
  log: Logger;
  /** For https: the CA to trust; omitted means the server certificate is not verified. */
  ca?: string | Buffer;
  flowControl?: FlowControlMode;
}

export interface DialedSpdy {
  session: SpdySession;
  protocol: string;
}

export class UpgradeRefused extends TetherError {
  constructor(readonly status: number, readonly body: string) {
    super(ErrorCode.UpstreamUnavailable, `upgrade: server answered ${status}: ${body.trim()}`);
  }
}

export async function dialSpdy(opts: DialSpdyOptions): Promise<DialedSpdy> {
  const url = new URL(opts.url);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const socket: Duplex =
    url.protocol === 'https:'
      ? tls.connect({ host: url.hostname, port, ca: opts.ca, rejectUnauthorized: opts.ca !== undefined, servername: net.isIP(url.hostname) ? undefined : url.hostname })
      : net.connect({ host: url.hostname, port });
  const request =
    `POST ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n` +
    `Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n` +
    opts.protocols.map((p) => `X-Stream-Protocol-Version: ${p}\r\n`).join('') +
    'Content-Length: 0\r\n\r\n';
  socket.write(request);

  const { status, headers, rest } = await readResponseHead(socket);
  if (status !== 101) {
    const body = await readToEnd(socket, rest);
    throw new UpgradeRefused(status, body);
  }
  const session = new SpdySession(socket, { role: 'client', log: opts.log, flowControl: opts.flowControl });
  session.start(rest);
  return { session, protocol: headers['x-stream-protocol-version'] ?? '' };
}

function readResponseHead(socket: Duplex): Promise<{ status: number; headers: Record<string, string>; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.pause();
      const [statusLine = '', ...lines] = buffered.subarray(0, end).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, rest: buffered.subarray(end + 4) });
    };
    const onError = (err: Error) => reject(new TetherError(ErrorCode.UpstreamUnavailable, `upgrade: ${err.message}`, { cause: err }));
    const onClose = () => reject(new TetherError(ErrorCode.UpstreamUnavailable, 'upgrade: connection closed before a response'));
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('close', onClose);
  });
}

function readToEnd(socket: Duplex, first: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const parts = [first];
    socket.on('data', (b: Buffer) => parts.push(b));
    socket.once('close', () => resolve(Buffer.concat(parts).toString('utf8')));
    socket.once('error', () => undefined);
    socket.resume();
  });
}
