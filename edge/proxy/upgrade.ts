/**
 * HTTP Upgrade pass-through (websocket and SPDY: kubectl exec, attach, port-forward through the
 * agent). The request head is re-sent on a fresh TCP/TLS connection to the upstream and the two
 * sockets are then piped byte for byte; the agent never parses the upgraded protocol.
 */
import type { IncomingMessage } from 'node:http';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { type StatusReason, rawStatusResponse, statusBody } from './error-status.ts';

export interface UpgradeTarget {
  readonly url: URL;
  /** TLS options for a connection with (true) or without (false) the node's client certificate. */
  tlsOptions(withIdentity: boolean): ConnectionOptions;
  /**
   * A connection to the upstream other than TCP/TLS to `url` (the via-hub mode: an api stream of the
   * tunnel, edge/upstream/via-hub.ts). Writable at once; emits 'connect' when open, 'error' if not.
   */
  connect?(): Duplex;
}

function rawHead(req: IncomingMessage, host: string, base: string): string {
  const lines = [`${req.method} ${base}${req.url} HTTP/1.1`];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const k = req.rawHeaders[i]!;
    if (k.toLowerCase() === 'host') continue;
    lines.push(`${k}: ${req.rawHeaders[i + 1]}`);
  }
  lines.push(`Host: ${host}`, '', '');
  return lines.join('\r\n');
}

const reasons: Record<number, StatusReason> = { 400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 503: 'ServiceUnavailable' };

/** Answers an upgrade request with a Status and closes the connection. */
export function refuseUpgrade(socket: Duplex, code: number, message: string): void {
  socket.end(rawStatusResponse(statusBody(code, reasons[code] ?? 'BadRequest', message)));
}
const refuse = refuseUpgrade;

export function passUpgrade(
  target: UpgradeTarget | undefined,
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  withIdentity: boolean,
  log: Logger,
): void {
  if (!target) {
    refuse(client, 503, 'tether-edge: offline: exec, attach and port-forward need the upstream apiserver');
    return;
  }
  const url = target.url;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  let upstream: Socket | Duplex;
  const opened = target.connect?.();
  if (opened) {
    upstream = opened;
  } else if (url.protocol === 'https:') {
    upstream = tlsConnect({
      host,
      port,
      ...(isIP(host) ? {} : { servername: host }),
      ALPNProtocols: ['http/1.1'],
      ...target.tlsOptions(withIdentity),
    });
  } else {
    upstream = netConnect({ host, port });
  }
  let connected = false;
  upstream.once(!opened && url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
    connected = true;
    upstream.write(rawHead(req, url.host, url.pathname.replace(/\/$/, '')));
    if (head.length) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  });
  upstream.on('error', (e) => {
    log.warn('upgrade: upstream connection failed', { path: req.url, upstream: url.host, error: messageOf(e) });
    if (!connected) refuse(client, 503, `tether-edge: connect to ${url.host}: ${messageOf(e)}`);
    else client.destroy();
  });
  client.on('error', () => upstream.destroy());
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
}
