#!/usr/bin/env bun
/**
 * Services an edge node runs besides the kubelet, for the tunnel suites; started inside an edge
 * site (so 127.0.0.1 is the site's loopback, where the kubelet simulator's port-forward dials):
 *
 *   bun test/support/edge-services.ts --echo 7001 --source 7002 --metrics 198.18.3.2:9100
 *
 *   --echo P      127.0.0.1:P echoes every byte back (a port-forward carrying a real byte stream)
 *   --source P    127.0.0.1:P sends bytes without end, with backpressure; every 100 ms it prints
 *                 `{"source":{"sent":N,"blocked":true|false,"connections":C}}` (blocked: its
 *                 writes have been waiting for the reader for over 300 ms)
 *   --metrics A   an HTTP server on A (host:port) answering GET /metrics like node-exporter
 *
 * Prints "ready" once everything listens.
 */
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { echo: { type: 'string' }, source: { type: 'string' }, metrics: { type: 'string' } }, strict: true });
const listening: Promise<void>[] = [];
const listen = (server: { listen(port: number, host: string, cb: () => void): unknown }, port: number, host: string) =>
  listening.push(new Promise<void>((r) => void server.listen(port, host, r)));

if (values.echo) listen(createServer((s) => s.pipe(s).on('error', () => {})), Number(values.echo), '127.0.0.1');

if (values.source) {
  let sent = 0;
  let waitingSince: number | undefined;
  const conns = new Set<Socket>();
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const pump = (s: Socket) => {
    while (!s.destroyed) {
      sent += chunk.length;
      if (!s.write(chunk)) {
        waitingSince = Date.now();
        s.once('drain', () => {
          waitingSince = undefined;
          pump(s);
        });
        return;
      }
    }
  };
  listen(
    createServer((s) => {
      conns.add(s);
      s.on('error', () => {});
      s.on('close', () => conns.delete(s));
      s.resume();
      pump(s);
    }),
    Number(values.source),
    '127.0.0.1',
  );
  setInterval(() => {
    const blocked = waitingSince !== undefined && Date.now() - waitingSince > 300;
    process.stdout.write(JSON.stringify({ source: { sent, blocked, connections: conns.size } }) + '\n');
  }, 100);
}

if (values.metrics) {
  const at = values.metrics.lastIndexOf(':');
  const body = '# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\nnode_load1 0.25\nnode_exporter_build_info{version="stand-in"} 1\n';
  const server = createHttpServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(body);
  });
  listen(server, Number(values.metrics.slice(at + 1)), values.metrics.slice(0, at));
}

await Promise.all(listening);
process.stdout.write('ready\n');
