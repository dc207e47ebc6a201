/**
 * The hub's one GET of a release file at its origin (`<spec.baseURL>/<file>` of an EdgeUpgrade),
 * for the artifact cache (artifact-cache.ts).
 *
 * Contract:
 * - The URL comes only from the cluster object (artifacts.ts builds it): https, or http when the
 *   object says `insecure`. TLS is verified with `ca` (artifactOriginCaFile) or the system CAs.
 * - Redirects are not followed: a 3xx is an error naming where it pointed. (Following them would
 *   let whoever answers at baseURL send the hub to any address, its own network included.)
 * - The head must come within `timeoutMs` (the body's idle timeout is the reader's: artifact-cache.ts).
 * - Resolves at the head with the status and body; the caller reads or destroys the body.
 * - `close()` drops the kept-alive connections.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { messageOf } from '../../shared/errors.ts';

export interface OriginAnswer {
  status: number;
  headers: IncomingMessage['headers'];
  body: IncomingMessage;
}

export interface OriginOptions {
  ca?: Buffer;
  timeoutMs: number;
}

export interface FetchOrigin {
  (url: URL): Promise<OriginAnswer>;
  close?(): void;
}

export class OriginError extends Error {
  constructor(
    message: string,
    /** The origin's HTTP status when it answered (404 …), absent when it did not. */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function createOriginFetch(o: OriginOptions): FetchOrigin {
  const tlsAgent = new https.Agent({ keepAlive: true, maxFreeSockets: 4, ...(o.ca ? { ca: o.ca } : {}) });
  const plainAgent = new http.Agent({ keepAlive: true, maxFreeSockets: 4 });
  const fetch = (url: URL) =>
    new Promise<OriginAnswer>((resolve, reject) => {
      const secure = url.protocol === 'https:';
      const req = (secure ? https : http).request(url, {
        method: 'GET',
        headers: { 'accept-encoding': 'identity', 'user-agent': 'tether-hub-artifact-relay' },
        agent: secure ? tlsAgent : plainAgent,
      });
      const head = setTimeout(() => req.destroy(new Error(`no answer in ${o.timeoutMs} ms`)), o.timeoutMs);
      req.once('response', (res) => {
        clearTimeout(head);
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400) {
          res.resume();
          return reject(new OriginError(`GET ${url.href}: the origin redirects (${status}) to ${res.headers.location ?? '(no location)'}; the hub does not follow redirects: set spec.baseURL to where the files are`, status));
        }
        resolve({ status, headers: res.headers, body: res });
      });
      req.once('error', (e) => {
        clearTimeout(head);
        reject(new OriginError(`GET ${url.href}: ${messageOf(e)}`, undefined, { cause: e }));
      });
      req.end();
    });
  return Object.assign(fetch, {
    close() {
      tlsAgent.destroy();
      plainAgent.destroy();
    },
  });
}
