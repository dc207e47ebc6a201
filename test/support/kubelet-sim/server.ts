/**
 * The kubelet's HTTPS endpoint (port 10250), the part the apiserver dials for `kubectl logs`,
 * `exec`, `attach` and `port-forward`:
 *
 *   GET /healthz                                  "ok"
 *   GET /metrics                                  Prometheus text
 *   GET /pods                                     PodList of the pods this node runs
 *   GET /containerLogs/<ns>/<pod>/<container>     ?follow&tailLines&timestamps&sinceSeconds&limitBytes&previous
 *   upgrade /exec/…, /attach/…, /portForward/…    handed to the streams handler (SPDY / websocket)
 *
 * Any client is accepted: the real kubelet authenticates the apiserver's client certificate and
 * authorizes through SubjectAccessReviews; the simulator does not.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../../shared/log.ts';
import type { LogStore } from './logs.ts';

/** Handles an upgrade; false when the path is not one of its own (then the server answers 404). */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean;

export interface KubeletServerOptions {
  address: string;
  port: number;
  certPem: string;
  keyPem: string;
  log: Logger;
  logs: LogStore;
  apiPods(): any[];
  metrics(): string;
  upgrade?: UpgradeHandler;
}

export interface KubeletServer {
  listen(): Promise<number>;
  close(): Promise<void>;
}

function intParam(q: URLSearchParams, name: string): number | undefined | Error {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  return Number.isInteger(n) ? n : new Error(`${name}: not an integer: ${v}`);
}

export function createKubeletServer(o: KubeletServerOptions): KubeletServer {
  const sockets = new Set<Duplex>();
  const text = (res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8') => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  function containerLogs(req: IncomingMessage, res: ServerResponse, parts: string[], q: URLSearchParams): void {
    const [ns, pod, container] = parts.map(decodeURIComponent);
    if (!ns || !pod || !container) return text(res, 400, 'container logs: want /containerLogs/<namespace>/<pod>/<container>');
    const tailLines = intParam(q, 'tailLines');
    const sinceSeconds = intParam(q, 'sinceSeconds');
    const limitBytes = intParam(q, 'limitBytes');
    for (const v of [tailLines, sinceSeconds, limitBytes]) if (v instanceof Error) return text(res, 400, v.message);
    if (typeof tailLines === 'number' && tailLines < 0) return text(res, 400, 'tailLines: must be non-negative');
    if (typeof limitBytes === 'number' && limitBytes <= 0) return text(res, 400, 'limitBytes: must be positive');
    if (!o.logs.has(ns, pod, container)) return text(res, 404, `container "${container}" in pod "${pod}" (namespace "${ns}") not found`);
    if (q.get('previous') === 'true') {
      return text(res, 400, `previous terminated container "${container}" in pod "${pod}" not found`);
    }
    const opts = {
      tailLines: tailLines as number | undefined,
      sinceSeconds: sinceSeconds as number | undefined,
      timestamps: q.get('timestamps') === 'true',
      limitBytes: limitBytes as number | undefined,
    };
    const lines = o.logs.read(ns, pod, container, opts) ?? [];
    res.writeHead(200, { 'content-type': 'text/plain' });
    let left = opts.limitBytes ?? Infinity;
    const write = (l: string) => {
      const chunk = left < Buffer.byteLength(l) ? Buffer.from(l).subarray(0, left) : l;
      res.write(chunk);
      left -= Buffer.byteLength(chunk);
      return left > 0;
    };
    for (const l of lines) if (!write(l)) return void res.end();
    if (q.get('follow') !== 'true') return void res.end();
    const unsubscribe = o.logs.follow(ns, pod, container, {
      line: (l) => {
        if (!write(l)) {
          unsubscribe();
          res.end();
        }
      },
      end: () => res.end(),
    }, opts);
    req.on('close', unsubscribe);
    res.on('close', unsubscribe);
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'https://kubelet');
    const parts = url.pathname.split('/').filter(Boolean);
    o.log.debug('request', { method: req.method, path: url.pathname });
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'method not allowed');
    switch (parts[0]) {
      case 'healthz':
        return text(res, 200, 'ok');
      case 'metrics':
        return text(res, 200, o.metrics(), 'text/plain; version=0.0.4; charset=utf-8');
      case 'pods':
        return text(res, 200, JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: {}, items: o.apiPods() }), 'application/json');
      case 'containerLogs':
        return containerLogs(req, res, parts.slice(1), url.searchParams);
      default:
        return text(res, 404, '404 page not found\n');
    }
  }

  const server: Server = createServer({ cert: o.certPem, key: o.keyPem }, handle);
  server.on('connection', (s: Duplex) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    o.log.debug('upgrade', { path: req.url, upgrade: req.headers.upgrade });
    let handled = false;
    try {
      handled = o.upgrade?.(req, socket, head) ?? false;
    } catch (e) {
      o.log.warn('stream upgrade failed', { path: req.url, error: e });
    }
    if (!handled) socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
  });

  return {
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(o.port, o.address, () => resolve((server.address() as AddressInfo).port));
      }),
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
