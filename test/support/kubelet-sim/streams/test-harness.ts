/**
 * Test helpers: an in-process HTTPS server (self-signed certificate made with the openssl CLI)
 * or plain HTTP server whose `upgrade` event goes to handleStreamUpgrade, a local TCP echo server,
 * and a poll-until helper. Used by the *.test.ts files of this folder only.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { createMemoryLogger } from '../../../../shared/log.ts';
import { handleStreamUpgrade } from './index.ts';
import type { ContainerRuntime } from './types.ts';

let cert: { key: string; cert: string } | undefined;

function selfSigned(): { key: string; cert: string } {
  if (cert) return cert;
  const dir = mkdtempSync(join(tmpdir(), 'kubelet-sim-streams-'));
  try {
    const run = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    ]);
    if (run.status !== 0) throw new Error(`openssl: ${run.stderr.toString()}`);
    cert = { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
    return cert;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
  const keyPair = tls ? selfSigned() : undefined;
  const server = keyPair ? https.createServer(keyPair) : http.createServer();
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
    ca: keyPair?.cert,
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

/** Polls until `check` returns true; fails after the deadline (no fixed sleeps in tests). */
export async function until(check: () => boolean, what: string, deadlineMs = 10_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Reads a stream to its end. */
export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(parts);
}
