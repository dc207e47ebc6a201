/**
 * The download's way through tether-hub: a GET of `/tether/v1/artifacts/<upgrade>/<file>` as
 * plain HTTP/1.1 inside an api stream of the node's tunnel session (the same streams
 * `upstreamViaHub` uses, edge/upstream/via-hub.ts). The hub answers such paths itself
 * (cloud/tunnel/artifacts.ts) whether or not it forwards the node's apiserver requests, so this
 * works for every node with a tunnel; the session's node identity is the caller's.
 *
 * Binaries are deflated by the tunnel on their way down (`compress: 'answers'`); `.xz` files and
 * the small files are not (compressing xz costs the hub CPU and saves nothing).
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { VIA_HUB_SERVER, createHubAgent } from '../upstream/via-hub.ts';
import type { HubFetch } from './download.ts';

/** What hubFetch needs of the tunnel agent (edge/tunnel/tunnel-agent.ts TunnelAgent). */
export interface ApiStreams {
  openApiStream(o?: { timeoutMs?: number; compress?: boolean | 'answers' }): Promise<Duplex>;
}

const HOST = new URL(VIA_HUB_SERVER).host;

export interface HubFetcher extends HubFetch {
  /** Closes the idle api streams it keeps. */
  close(): void;
}

export function hubFetch(tunnel: ApiStreams): HubFetcher {
  const deflated = createHubAgent(() => tunnel.openApiStream({ compress: 'answers' }));
  const plain = createHubAgent(() => tunnel.openApiStream({ compress: false }));
  const fetch = (path: string, headers: Record<string, string>) =>
    new Promise<Awaited<ReturnType<HubFetch>>>((resolve, reject) => {
      const worth = /\/tether-edge-[^/]*$/.test(path) && !path.endsWith('.xz');
      const req = http.request({ host: HOST, path, method: 'GET', headers, agent: worth ? deflated : plain }, (res) => {
        const h: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h[k] = Array.isArray(v) ? v.join(', ') : v;
        resolve({ status: res.statusCode ?? 0, headers: h, body: res });
      });
      req.once('error', reject);
      req.end();
    });
  return Object.assign(fetch, {
    close() {
      deflated.destroy();
      plain.destroy();
    },
  });
}
