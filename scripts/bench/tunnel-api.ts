#!/usr/bin/env bun
/**
 * A stand-in kube-apiserver for the api-stream part of scripts/bench/tunnel.ts, in a process of its
 * own, plain HTTP on loopback. It measures nothing about the apiserver: it gives the bench hub's
 * forwarder something to forward, so the hub's memory per node with api streams can be read.
 *
 *   GET /api/v1/nodes/<name>                  a small Node object (Content-Length)
 *   GET /api/v1/pods?watch=true…              a watch that stays open; every --interval-ms (first
 *                                            one at a random offset, so the watches do not fire
 *                                            together) one small MODIFIED event of a Pod
 *   anything else                             404 Status
 *
 *   bun scripts/bench/tunnel-api.ts [--interval-ms 10000]
 *
 * Prints {"api": port}; answers "report" on stdin with {"watches", "events"}.
 */
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { 'interval-ms': { type: 'string', default: '10000' } }, strict: true });
const INTERVAL = Number(values['interval-ms']);
let watches = 0;
let events = 0;
let rv = 1000;

const node = (name: string) => ({
  kind: 'Node', apiVersion: 'v1',
  metadata: { name, uid: `00000000-0000-4000-8000-${name.replace(/\D/g, '').padStart(12, '0').slice(-12)}`, resourceVersion: String(++rv), labels: { 'kubernetes.io/hostname': name } },
  status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }] },
});
const podEvent = (nodeName: string, n: number) => ({
  type: 'MODIFIED',
  object: {
    kind: 'Pod', apiVersion: 'v1',
    metadata: { name: `app-${nodeName}`, namespace: 'default', resourceVersion: String(++rv), labels: { app: 'bench' } },
    spec: { nodeName, containers: [{ name: 'app', image: 'registry.invalid/app:1' }] },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }], containerStatuses: [{ name: 'app', ready: true, restartCount: n }] },
  },
});

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://api');
  const nodeName = /^system:node:(.+)$/.exec(String(req.headers['impersonate-user'] ?? ''))?.[1] ?? 'unknown';
  const m = /^\/api\/v1\/nodes\/([^/]+)$/.exec(url.pathname);
  if (req.method === 'GET' && m) {
    const body = JSON.stringify(node(m[1]!));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    return res.end(body);
  }
  if (req.method === 'GET' && url.pathname === '/api/v1/pods' && url.searchParams.get('watch') === 'true') {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    watches++;
    let n = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const send = () => {
      res.write(`${JSON.stringify(podEvent(nodeName, n++))}\n`);
      events++;
      timer = setTimeout(send, INTERVAL);
    };
    timer = setTimeout(send, Math.floor(Math.random() * INTERVAL));
    res.on('close', () => {
      clearTimeout(timer);
      watches--;
    });
    return;
  }
  const body = JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: `${url.pathname} not found` });
  res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
server.keepAliveTimeout = 0;
server.requestTimeout = 0;
server.headersTimeout = 0;
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
process.stdout.write(JSON.stringify({ api: (server.address() as { port: number }).port }) + '\n');

for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === 'report') process.stdout.write(JSON.stringify({ watches, events }) + '\n');
}
