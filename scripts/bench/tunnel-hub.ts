#!/usr/bin/env bun
/**
 * The hub for scripts/bench/tunnel.ts: cloud/hub.ts with a fixed list of nodes `bench-<i>`
 * (address 10.250.<i/256>.<i%256>) instead of the apiserver, and bearer tokens "bench:<node>"
 * accepted for those nodes (so thousands of simulated agents need no certificates).
 *
 *   bun scripts/bench/tunnel-hub.ts --pki DIR --nodes N
 *
 * Prints {"agents": "host:port", "connect": "host:port"}; then answers each "report" line on
 * stdin, after a full garbage collection, with {"rss", "fds", "agents", "streams"}.
 */
import { readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { hubConfigSchema } from '../../cloud/config.ts';
import { startHub } from '../../cloud/hub.ts';
import { staticHubBackend } from '../../cloud/tunnel/backend.ts';
import { createLogger } from '../../shared/log.ts';
import { Registry } from '../../shared/metrics.ts';

const benchAddress = (i: number) => `10.250.${i >> 8}.${i & 255}`;

const { values } = parseArgs({ options: { pki: { type: 'string' }, nodes: { type: 'string', default: '1' } }, strict: true });
const dir = values.pki!;
const nodes: Record<string, string[]> = {};
for (let i = 0; i < Number(values.nodes); i++) nodes[`bench-${i}`] = [benchAddress(i)];
const backend = {
  ...staticHubBackend(nodes),
  tokenReview: async (t: string) => (t.startsWith('bench:') ? { user: `system:node:${t.slice(6)}`, groups: ['system:nodes'] } : { error: 'not a bench token' }),
};
const config = hubConfigSchema.parse({
  replicaId: 'bench',
  listen: '127.0.0.1:0',
  connectListen: '127.0.0.1:0',
  tlsCertFile: `${dir}/hub.crt`,
  tlsKeyFile: `${dir}/hub.key`,
  clientCaFile: `${dir}/ca.crt`,
  connectUsers: ['bench-client'],
  directAllow: [],
  heartbeatSeconds: 30,
});
const registry = new Registry();
const hub = await startHub({ config, backend, log: createLogger({ level: 'error' }), registry });
process.stdout.write(JSON.stringify({ agents: hub.agentAddress, connect: hub.connectAddress }) + '\n');

const rss = () => process.memoryUsage.rss();
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() !== 'report') continue;
  Bun.gc(true);
  await new Promise((r) => setTimeout(r, 100));
  Bun.gc(true);
  const m = registry.render();
  const num = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(m)?.[1] ?? NaN);
  process.stdout.write(
    JSON.stringify({ rss: rss(), heap: process.memoryUsage().heapUsed, fds: readdirSync('/proc/self/fd').length, agents: num('tether_hub_agents_connected'), streams: num('tether_hub_tunnel_streams_open') }) + '\n',
  );
}
