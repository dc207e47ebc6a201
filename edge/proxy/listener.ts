/**
 * The proxy's listening socket: HTTPS with optional client certificates from the local CA, or plain
 * HTTP (--insecure-plain-http). TLS is terminated by a node:tls server whose sockets are handed to
 * a node:http server: that way every request's socket is the TLSSocket itself, whose peer
 * certificate identity.ts reads (Bun's node:https server does not expose it), on Node and Bun alike.
 *
 * Client certificates are requested but not required, so that bearer-token clients without one can
 * connect; a certificate that does not verify against the local CA leaves the socket unauthorized.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer as createHttpServer } from 'node:http';
import type { Socket } from 'node:net';
import { type Server as TlsServer, createServer as createTlsServer } from 'node:tls';

export interface LocalTls {
  /** The local CA (PEM) that client certificates must chain to. */
  caPem: string;
  /** The agent's serving certificate and key (PEM). */
  certPem: string;
  keyPem: string;
}

export interface Listener {
  /** The HTTP server (requests, upgrades, client errors). */
  http: Server;
  /** The socket server that listens: the TLS server, or the HTTP server itself. */
  socketServer: Server | TlsServer;
  readonly tls: boolean;
  /** Destroys every open connection and stops listening. */
  close(): Promise<void>;
}

export function createListener(handler: (req: IncomingMessage, res: ServerResponse) => void, tls?: LocalTls): Listener {
  const http = createHttpServer(handler);
  const sockets = new Set<Socket>();
  const keep = (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  let socketServer: Server | TlsServer = http;
  if (tls) {
    socketServer = createTlsServer(
      {
        ca: tls.caPem,
        cert: tls.certPem,
        key: tls.keyPem,
        requestCert: true,
        rejectUnauthorized: false,
        minVersion: 'TLSv1.2',
        ALPNProtocols: ['http/1.1'],
        handshakeTimeout: 10_000,
      },
      (sock) => {
        keep(sock);
        http.emit('connection', sock);
      },
    );
    // A failed handshake (plain HTTP sent to the TLS port, a bad hello): drop the connection.
    socketServer.on('tlsClientError', (_e, sock) => sock.destroy());
  } else {
    http.on('connection', keep);
  }
  return {
    http,
    socketServer,
    tls: tls !== undefined,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        http.closeAllConnections?.();
        socketServer.close(() => resolve());
        if (socketServer !== http) http.close();
      }),
  };
}
