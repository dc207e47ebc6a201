#!/usr/bin/env bun
/**
 * Simulated edge agents for scripts/bench/tunnel.ts: `count` real tunnel agents (edge/tunnel)
 * in one process, nodes bench-<from> … bench-<from+count-1>, authenticating with bench tokens.
 * Every stream the hub opens is dialed to 127.0.0.1 on the requested port (the bench targets).
 *
 *   bun scripts/bench/tunnel-agents.ts --hub wss://H:P --ca F --from I --count N --ports P,P
 *
 * Prints {"connected": N} once every agent is up; answers "report" on stdin like tunnel-hub.ts
 * (plus "events": watch events received so far). "api" makes every agent open one compressed api
 * stream (`openApiStream`, as --upstream-via-hub does) and send on it one GET of its Node and then
 * a long-lived watch of its pods; prints {"api": N, "failed": F} once every GET was answered and
 * every watch's headers arrived. The announced addresses are 198.18.x/198.19.x labels (never
 * dialed: every stream goes to 127.0.0.1).
 */
import { readFileSync, readdirSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { dialTcp } from '../../edge/tunnel/destinations.ts';
import { startTunnelAgent, type TunnelAgent } from '../../edge/tunnel/tunnel-agent.ts';
import { createLogger } from '../../shared/log.ts';

const { values } = parseArgs({
  options: { hub: { type: 'string' }, ca: { type: 'string' }, from: { type: 'string', default: '0' }, count: { type: 'string', default: '1' }, ports: { type: 'string', default: '' } },
  strict: true,
});
const address = (i: number) => `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const ca = readFileSync(values.ca!);
const ports = values.ports!.split(',').filter(Boolean).map(Number);
const log = createLogger({ level: 'error' });
const agents: TunnelAgent[] = [];
const from = Number(values.from);
for (let i = from; i < from + Number(values.count); i++) {
  agents.push(
    startTunnelAgent({
      hubUrls: [values.hub!],
      nodeName: `bench-${i}`,
      addresses: [address(i)],
      ports,
      tls: () => ({ ca }),
      token: () => `bench:bench-${i}`,
      dial: (_host, port) => dialTcp('127.0.0.1', port),
      heartbeatIntervalMs: 30_000,
      heartbeatTimeoutMs: 90_000,
      log,
    }),
  );
  if (agents.length % 100 === 0) await new Promise((r) => setTimeout(r, 20)); // pace the TLS handshakes
}
for (;;) {
  const up = agents.filter((a) => a.connected).length;
  if (up === agents.length) break;
  await new Promise((r) => setTimeout(r, 100));
}
process.stdout.write(JSON.stringify({ connected: agents.length }) + '\n');

let events = 0;
const apiStreams: Duplex[] = [];
/** Resolves once `buf` holds a whole HTTP response head (and, with `body`, its Content-Length or chunked body). */
function response(s: Duplex, body: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.slice(0, end);
      if (!/^HTTP\/1\.1 200 /.test(head)) return done(new Error(`api stream: ${head.split('\r\n')[0]}`));
      if (!body) return done();
      const len = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1];
      if (len !== undefined ? buf.length - end - 4 >= Number(len) : buf.endsWith('0\r\n\r\n')) done();
    };
    const done = (e?: Error) => {
      s.off('data', onData);
      s.off('error', done);
      e ? reject(e) : resolve(buf);
    };
    s.on('data', onData);
    s.once('error', done);
  });
}
async function openApi(i: number, a: TunnelAgent): Promise<void> {
  const s = await a.openApiStream();
  apiStreams.push(s);
  s.write(`GET /api/v1/nodes/bench-${i} HTTP/1.1\r\nHost: kube-apiserver\r\nAccept: application/json\r\nUser-Agent: bench/1\r\n\r\n`);
  await response(s, true);
  const watch = response(s, false);
  s.write(`GET /api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dbench-${i}&allowWatchBookmarks=true HTTP/1.1\r\nHost: kube-apiserver\r\nAccept: application/json\r\nUser-Agent: bench/1\r\n\r\n`);
  await watch;
  s.on('data', (d: Buffer) => (events += d.toString('latin1').split('"MODIFIED"').length - 1));
  s.on('error', () => {});
}

for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === 'api') {
    let ok = 0;
    let failed = 0;
    let firstError = '';
    for (let k = 0; k < agents.length; k += 50) {
      const rs = await Promise.allSettled(agents.slice(k, k + 50).map((a, j) => openApi(from + k + j, a)));
      for (const r of rs) r.status === 'fulfilled' ? ok++ : (failed++, (firstError ||= String(r.reason)));
    }
    process.stdout.write(JSON.stringify({ api: ok, failed, firstError }) + '\n');
    continue;
  }
  if (line.trim() !== 'report') continue;
  Bun.gc(true);
  await new Promise((r) => setTimeout(r, 100));
  Bun.gc(true);
  process.stdout.write(JSON.stringify({ rss: process.memoryUsage.rss(), heap: process.memoryUsage().heapUsed, fds: readdirSync('/proc/self/fd').length, events }) + '\n');
}
