/**
 * Test helpers: an in-process HTTPS server (its certificate from test/support/pki.ts) or plain
 * HTTP server whose `upgrade` event goes to handleStreamUpgrade, and a local TCP echo server.
 * Used by the *.test.ts files of this folder only (they wait with test/support/wait.ts).
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { createMemoryLogger } from '../../../../shared/log.ts';
import { createTestPki } from '../../pki.ts';
import { handleStreamUpgrade } from './index.ts';
import type { ContainerRuntime } from './types.ts';

let serving: Promise<{ key: string; cert: string; ca: string }> | undefined;

/** One serving certificate for 127.0.0.1 per test process; the PEMs stay in memory. */
function servingCert(): Promise<{ key: string; cert: string; ca: string }> {
  serving ??= (async () => {
    const pki = await createTestPki();
    try {
      const s = await pki.server({ ips: ['127.0.0.1'], days: 1 });
      return { key: s.keyPem, cert: s.certPem, ca: pki.caPem };
    } finally {
      pki.remove();
    }
  })();
  return serving;
}

export interface StreamServer {
  /** Base URL, e.g. https://127.0.0.1:PORT */
  url: string;
  ca?: string;
  log: ReturnType<typeof createMemoryLogger>;
  close(): Promise<void>;
}

export async function startStreamServer(runtime: ContainerRuntime, opts: { tls?: boolean } = {}): Promise<StreamServer> {
  const log = createMemoryLogger();
  const tls = opts.tls ?? true;
  const keyPair = tls ? await servingCert() : undefined;
  const server = keyPair ? https.createServer({ key: keyPair.key, cert: keyPair.cert }) : http.createServer();
  const sockets = new Set<Duplex>();
  server.on('upgrade', (req, socket: Duplex, head: Buffer) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    if (!handleStreamUpgrade(req, socket, head, runtime, log)) socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    ca: keyPair?.ca,
    log,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface EchoServer {
  port: number;
  /** Connections accepted so far. */
  accepted: () => number;
  close(): Promise<void>;
}

/** Echoes every byte back and half-closes when the client does. */
export async function startEchoServer(): Promise<EchoServer> {
  let accepted = 0;
  const conns = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (conn) => {
    accepted++;
    conns.add(conn);
    conn.once('close', () => conns.delete(conn));
    conn.on('error', () => undefined);
    conn.pipe(conn);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => accepted,
    close: async () => {
      for (const c of conns) c.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Reads a stream to its end. */
export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(parts);
}
