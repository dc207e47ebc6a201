/**
 * The HTTP/1.1 side of the streaming upgrade, written straight to the socket the server handed
 * to its `upgrade` event (the kubelet does the same after hijacking the connection):
 * - SPDY: the client lists X-Stream-Protocol-Version values (possibly comma-separated, possibly
 *   several headers); the first one the server supports wins. Missing header: 400. No overlap:
 *   403 with X-Accepted-Stream-Protocol-Versions (httpstream.Handshake). Connection must contain
 *   "upgrade" and Upgrade "SPDY/3.1", else 400. Success: 101 with the chosen protocol.
 * - WebSocket requests are recognised here and handed to `ws` elsewhere.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

export const spdyUpgradeToken = 'SPDY/3.1';

export type Negotiation =
  | { ok: true; protocol: string }
  | { ok: false; status: number; message: string; headers?: Record<string, string[]> };

function headerValues(req: IncomingMessage, name: string): string[] {
  const raw = req.headers[name];
  const joined = Array.isArray(raw) ? raw.join(',') : (raw ?? '');
  return joined.split(',').map((v) => v.trim()).filter((v) => v !== '');
}

export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  return headerValues(req, 'upgrade').some((v) => v.toLowerCase() === 'websocket');
}

export function negotiateSpdy(req: IncomingMessage, serverProtocols: readonly string[]): Negotiation {
  const clientProtocols = headerValues(req, 'x-stream-protocol-version');
  if (clientProtocols.length === 0) {
    return { ok: false, status: 400, message: 'unable to upgrade: X-Stream-Protocol-Version is required' };
  }
  const protocol = clientProtocols.find((p) => serverProtocols.includes(p));
  if (!protocol) {
    return {
      ok: false,
      status: 403,
      message: `unable to upgrade: unable to negotiate protocol: client supports [${clientProtocols.join(' ')}], server accepts [${serverProtocols.join(' ')}]`,
      headers: { 'X-Accepted-Stream-Protocol-Versions': [...serverProtocols] },
    };
  }
  const connection = (req.headers.connection ?? '').toLowerCase();
  const upgrade = (req.headers.upgrade ?? '').toLowerCase();
  if (!connection.includes('upgrade') || !upgrade.includes(spdyUpgradeToken.toLowerCase())) {
    return { ok: false, status: 400, message: 'unable to upgrade: missing upgrade headers in request' };
  }
  return { ok: true, protocol };
}

export function writeSwitchingProtocols(socket: Duplex, protocol: string): void {
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\n' +
      'Connection: Upgrade\r\n' +
      `Upgrade: ${spdyUpgradeToken}\r\n` +
      `X-Stream-Protocol-Version: ${protocol}\r\n` +
      `Date: ${new Date().toUTCString()}\r\n\r\n`,
  );
}

const reasons: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  500: 'Internal Server Error',
};

/** A plain-text error response (Go's http.Error), then the connection is closed. */
export function writeHttpError(socket: Duplex, status: number, message: string, headers: Record<string, string[]> = {}): void {
  const body = Buffer.from(message + '\n');
  let head = `HTTP/1.1 ${status} ${reasons[status] ?? 'Error'}\r\n`;
  for (const [name, values] of Object.entries(headers)) for (const v of values) head += `${name}: ${v}\r\n`;
  head +=
    'Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n' +
    `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  socket.end(Buffer.concat([Buffer.from(head), body]));
}
