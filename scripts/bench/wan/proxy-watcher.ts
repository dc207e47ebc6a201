#!/usr/bin/env bun
/**
 * A kube-proxy at the API level, for the WAN benchmark: list-watches Services and EndpointSlices the
 * way client-go's reflector does (LIST with resourceVersion=0, then WATCH from the list's
 * resourceVersion with bookmarks and timeoutSeconds 300-599; re-watch from the last resourceVersion
 * when a watch ends; relist on 410 Gone; back off 1 s → 30 s while the server cannot be reached).
 *
 *   bun scripts/bench/wan/proxy-watcher.ts --server URL --token-file F [--ca F]
 *
 * Prints one JSON line per second on stdout: {"events": n, "lists": n, "watches": n}.
 */
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { server: { type: 'string' }, 'token-file': { type: 'string' }, ca: { type: 'string' } } });
const server = new URL(values.server!);
const token = readFileSync(values['token-file']!, 'utf8').trim();
const https = server.protocol === 'https:';
const agent = https ? new HttpsAgent({ keepAlive: true, ca: values.ca ? readFileSync(values.ca) : undefined }) : new HttpAgent({ keepAlive: true });
const counts = { events: 0, lists: 0, watches: 0 };
setInterval(() => console.log(JSON.stringify(counts)), 1000);

function get(path: string, onLine?: (l: string) => void): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = (https ? httpsRequest : httpRequest)(
      {
        hostname: server.hostname,
        port: server.port,
        path,
        agent,
        headers: { accept: 'application/json', authorization: `Bearer ${token}`, 'user-agent': 'kube-proxy/v1.34.4 (linux/amd64) kubernetes/bench' },
      },
      (res) => {
        let buf = '';
        res.on('data', (c: Buffer) => {
          buf += c.toString('utf8');
          if (!onLine || res.statusCode !== 200) return;
          let i: number;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (line.trim()) onLine(line);
          }
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: buf }));
        res.on('error', () => resolve({ status: 0, body: '' }));
      },
    );
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.end();
  });
}

async function reflect(collection: string): Promise<never> {
  let backoff = 1000;
  const pause = async () => {
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(30_000, backoff * 2);
  };
  for (;;) {
    counts.lists++;
    const l = await get(`${collection}?limit=500&resourceVersion=0`);
    if (l.status !== 200) {
      await pause();
      continue;
    }
    let rv = (JSON.parse(l.body) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
    for (;;) {
      let gone = false;
      counts.watches++;
      const timeout = 300 + Math.floor(Math.random() * 300);
      const w = await get(`${collection}?allowWatchBookmarks=true&resourceVersion=${rv}&timeoutSeconds=${timeout}&watch=true`, (line) => {
        const ev = JSON.parse(line) as { type: string; object: { code?: number; metadata?: { resourceVersion?: string } } };
        if (ev.type === 'ERROR') gone = ev.object.code === 410;
        else if (ev.object.metadata?.resourceVersion) rv = ev.object.metadata.resourceVersion;
        if (ev.type !== 'BOOKMARK') counts.events++;
      });
      if (gone || w.status === 410) break;
      if (w.status !== 200) await pause();
      else backoff = 1000;
    }
  }
}

void reflect('/api/v1/services');
void reflect('/apis/discovery.k8s.io/v1/endpointslices');
