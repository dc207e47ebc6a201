/**
 * Serves a fetch-style handler (a hono app's `fetch`) on node:http, which both Bun and Node
 * provide, so the same server code runs in the compiled binaries and in the Node bundle.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { ErrorCode, TetherError, messageOf } from './errors.ts';

export type FetchHandler = (req: Request) => Response | Promise<Response>;

export interface Listening {
  server: Server;
  /** "127.0.0.1:10267" with the port actually bound (useful with port 0). */
  address: string;
  close(): Promise<void>;
}

export function splitHostPort(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(hostPort.slice(i + 1)) };
}

export function toRequest(req: IncomingMessage, origin: string): Request {
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) headers.append(k, one);
  }
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  // Node's fetch needs `duplex: 'half'` for a streaming body; Bun ignores it.
  const init = {
    method,
    headers,
    body: hasBody ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : undefined,
    duplex: hasBody ? 'half' : undefined,
  } as RequestInit;
  return new Request(new URL(req.url ?? '/', origin).href, init);
}

export async function writeResponse(res: ServerResponse, response: Response): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((v, k) => {
    if (k === 'set-cookie') headers[k] = response.headers.getSetCookie();
    else headers[k] = v;
  });
  res.writeHead(response.status, headers);
  if (!response.body) return void res.end();
  const reader = response.body.getReader();
  res.on('close', () => void reader.cancel().catch(() => {}));
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (!res.write(value)) await new Promise<void>((r) => res.once('drain', r));
  }
  res.end();
}

export function serveFetch(handler: FetchHandler, listen: string): Promise<Listening> {
  const { host, port } = splitHostPort(listen);
  const server = createServer((req, res) => {
    void (async () => {
      try {
        await writeResponse(res, await handler(toRequest(req, `http://${req.headers.host ?? listen}`)));
      } catch (e) {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`internal error: ${messageOf(e)}\n`);
      }
    })();
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e) =>
      reject(new TetherError(ErrorCode.BadConfig, `listen on ${listen}: ${messageOf(e)}`, { cause: e })),
    );
    server.listen(port, host, () => {
      const a = server.address() as AddressInfo;
      resolve({
        server,
        address: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}
