/**
 * Transport pairs for the session contract: in memory, over a websocket on 127.0.0.1, and over
 * a TLS websocket with client certificates (a node:tls server hands connections to node:http, so
 * the hub can read the client certificate under Bun and Node alike).
 */
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { createTransportPair, type PairOptions } from '../../shared/tunnel/memory-transport.ts';
import type { TunnelTransport } from '../../shared/tunnel/session.ts';
import type { TunnelTestPki } from './pki.ts';
import { createWsUpgradeHandler, dialTunnel, type UpgradeOptions } from '../../shared/tunnel/ws-transport.ts';

export interface Pair {
  hub: TunnelTransport;
  agent: TunnelTransport;
  dispose(): Promise<void>;
}
export interface PairFactory {
  name: string;
  create(): Promise<Pair>;
}

export const memoryPairs = (opts: PairOptions = {}): PairFactory => ({
  name: `memory${opts.drainEvents === false ? ' (no drain events)' : ''}`,
  create: async () => {
    const [hub, agent] = createTransportPair(opts);
    return { hub, agent, dispose: async () => {} };
  },
});

/** A websocket server on 127.0.0.1 (TLS when `pki` is given) and a way to dial it. */
export async function startWsServer(opts: { pki?: TunnelTestPki; upgrade?: UpgradeOptions } = {}) {
  const accepted: TunnelTransport[] = [];
  const waiters: ((t: TunnelTransport) => void)[] = [];
  const peers: (string | undefined)[] = [];
  const http: Server = createHttpServer();
  http.on('upgrade', createWsUpgradeHandler((t, req: IncomingMessage) => {
    const cn = (req.socket as TLSSocket).getPeerCertificate?.()?.subject?.CN;
    peers.push(Array.isArray(cn) ? cn[0] : cn);
    const w = waiters.shift();
    if (w) w(t);
    else accepted.push(t);
  }, opts.upgrade));
  const server = opts.pki
    ? createTlsServer({ ca: opts.pki.ca, cert: opts.pki.serverCert, key: opts.pki.serverKey, requestCert: true, rejectUnauthorized: true }, (s) => http.emit('connection', s))
    : http;
  if (opts.pki) server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const url = `${opts.pki ? 'wss' : 'ws'}://127.0.0.1:${port}/tunnel`;
  return {
    url,
    port,
    /** Client certificate CNs the server saw, per accepted upgrade. */
    peers,
    next: () => new Promise<TunnelTransport>((r) => (accepted.length ? r(accepted.shift()!) : waiters.push(r))),
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
        http.closeAllConnections();
      }),
  };
}

export const wsPairs = (pki?: TunnelTestPki): PairFactory => ({
  name: pki ? 'websocket over TLS with client certificates' : 'websocket',
  create: async () => {
    const srv = await startWsServer({ pki });
    const hubP = srv.next();
    const agent = await dialTunnel(srv.url, pki ? { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } : {});
    const hub = await hubP;
    return { hub, agent, dispose: () => srv.close() };
  },
});

/** A transport that can hang: while frozen nothing is sent, received or closed (a stopped process). */
export function freezable(t: TunnelTransport): TunnelTransport & { freeze(): void } {
  let frozen = false;
  return {
    send: (f) => void (frozen || t.send(f)),
    get bufferedAmount() {
      return t.bufferedAmount;
    },
    onMessage: (fn) => t.onMessage((d) => void (frozen || fn(d))),
    ...(t.onDrain ? { onDrain: (fn: () => void) => t.onDrain!(fn) } : {}),
    onClose: (fn) => t.onClose((code, reason) => void (frozen || fn(code, reason))),
    close: (code, reason) => void (frozen || t.close(code, reason)),
    freeze: () => void (frozen = true),
  };
}
