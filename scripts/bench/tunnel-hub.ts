#!/usr/bin/env bun
/**
 * The hub for scripts/bench/tunnel.ts: cloud/hub.ts with a fixed list of nodes `bench-<i>`
 * (announced address 198.18.<i/256>.<i%256>, 198.19.… past 65,535: labels, never dialed) instead
 * of the apiserver, and bearer tokens "bench:<node>" accepted for those nodes (so thousands of
 * simulated agents need no certificates). With --api PORT its api streams are forwarded to the
 * stand-in apiserver of tunnel-api.ts on 127.0.0.1:PORT (plain HTTP), as the node.
 *
 *   bun scripts/bench/tunnel-hub.ts --pki DIR --nodes N [--api PORT]
 *
 * Prints {"agents": "host:port", "connect": "host:port"}; then answers each "report" line on
 * stdin, after a full garbage collection, with {"rss", "heap", "fds", "agents", "streams"}; and "zlib N" with the RSS and heap that N sessions' compression contexts take in
 * this process ({"rss", "heap"} per context pair: the session's deflate and inflate with the
 * tunnel's parameters, each having carried one small message), freed again afterwards.
 */
import { readdirSync } from 'node:fs';
import { Agent } from 'node:http';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { hubConfigSchema } from '../../cloud/config.ts';
import { startHub } from '../../cloud/hub.ts';
import { staticHubBackend } from '../../cloud/tunnel/backend.ts';
import { createLogger } from '../../shared/log.ts';
import { Registry } from '../../shared/metrics.ts';
import { DEFLATE_DEFAULTS } from '../../shared/tunnel/_compress.ts';
import { constants, createDeflateRaw, createInflateRaw } from 'node:zlib';

const benchAddress = (i: number) => `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;

const { values } = parseArgs({ options: { pki: { type: 'string' }, nodes: { type: 'string', default: '1' }, api: { type: 'string' } }, strict: true });
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
  apiStreams: values.api !== undefined,
  apiTopologyFilter: false,
});
const registry = new Registry();
const apiAgent = new Agent({ keepAlive: true, maxSockets: Infinity });
const apiUpstream = values.api ? { server: new URL(`http://127.0.0.1:${values.api}`), agent: () => apiAgent, hubHeaders: async () => ({}) } : undefined;
const hub = await startHub({ config, backend, log: createLogger({ level: 'error' }), registry, ...(apiUpstream ? { apiUpstream } : {}) });
process.stdout.write(JSON.stringify({ agents: hub.agentAddress, connect: hub.connectAddress }) + '\n');

const rss = () => process.memoryUsage.rss();
const settle = async () => {
  Bun.gc(true);
  await new Promise((r) => setTimeout(r, 100));
  Bun.gc(true);
};
const flushed = (z: ReturnType<typeof createDeflateRaw> | ReturnType<typeof createInflateRaw>, data: Buffer) =>
  new Promise<void>((resolve, reject) => {
    z.once('error', reject);
    z.on('data', () => {});
    z.write(data);
    z.flush(constants.Z_SYNC_FLUSH, () => resolve());
  });
/** RSS and heap per session's pair of compression contexts, as the tunnel makes them (shared/tunnel/_compress.ts). */
async function zlibCost(n: number) {
  const p = DEFLATE_DEFAULTS;
  const msg = Buffer.from(JSON.stringify({ type: 'MODIFIED', object: { kind: 'Pod', apiVersion: 'v1', metadata: { name: 'app', namespace: 'default', resourceVersion: '1' } } }));
  const sample = await new Promise<Buffer>((resolve) => {
    const d = createDeflateRaw({ windowBits: p.windowBits, memLevel: p.memLevel, level: p.level });
    const out: Buffer[] = [];
    d.on('data', (c: Buffer) => out.push(c));
    d.write(msg);
    d.flush(constants.Z_SYNC_FLUSH, () => (d.close(), resolve(Buffer.concat(out))));
  });
  await settle();
  const before = { rss: rss(), heap: process.memoryUsage().heapUsed };
  const pairs = [];
  for (let i = 0; i < n; i++) {
    const d = createDeflateRaw({ windowBits: p.windowBits, memLevel: p.memLevel, level: p.level });
    const f = createInflateRaw({ windowBits: 15 });
    await Promise.all([flushed(d, msg), flushed(f, sample)]);
    pairs.push([d, f]);
  }
  await settle();
  const after = { rss: rss(), heap: process.memoryUsage().heapUsed };
  for (const [d, f] of pairs) (d!.close(), f!.close());
  pairs.length = 0;
  await settle();
  return { rss: (after.rss - before.rss) / n, heap: (after.heap - before.heap) / n };
}

for await (const line of createInterface({ input: process.stdin })) {
  const zm = /^zlib (\d+)$/.exec(line.trim());
  if (zm) {
    process.stdout.write(JSON.stringify(await zlibCost(Number(zm[1]))) + '\n');
    continue;
  }
  if (line.trim() !== 'report') continue;
  await settle();
  const m = registry.render();
  const num = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(m)?.[1] ?? NaN);
  process.stdout.write(
    JSON.stringify({ rss: rss(), heap: process.memoryUsage().heapUsed, fds: readdirSync('/proc/self/fd').length, agents: num('tether_hub_agents_connected'), streams: num('tether_hub_tunnel_streams_open') }) + '\n',
  );
}
