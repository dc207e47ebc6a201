#!/usr/bin/env bun
/**
 * Simulated edge agents for scripts/bench/tunnel.ts: `count` real tunnel agents (edge/tunnel)
 * in one process, nodes bench-<from> … bench-<from+count-1>, authenticating with bench tokens.
 * Every stream the hub opens is dialed to 127.0.0.1 on the requested port (the bench targets).
 *
 *   bun scripts/bench/tunnel-agents.ts --hub wss://H:P --ca F --from I --count N --ports P,P
 *
 * Prints {"connected": N} once every agent is up; answers "report" on stdin like tunnel-hub.ts.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { dialTcp } from '../../edge/tunnel/destinations.ts';
import { startTunnelAgent, type TunnelAgent } from '../../edge/tunnel/agent.ts';
import { createLogger } from '../../shared/log.ts';

const { values } = parseArgs({
  options: { hub: { type: 'string' }, ca: { type: 'string' }, from: { type: 'string', default: '0' }, count: { type: 'string', default: '1' }, ports: { type: 'string', default: '' } },
  strict: true,
});
const address = (i: number) => `10.250.${i >> 8}.${i & 255}`;
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

for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() !== 'report') continue;
  Bun.gc(true);
  await new Promise((r) => setTimeout(r, 100));
  Bun.gc(true);
  process.stdout.write(JSON.stringify({ rss: process.memoryUsage.rss(), heap: process.memoryUsage().heapUsed, fds: readdirSync('/proc/self/fd').length }) + '\n');
}
