/**
 * Replay order on the real control plane: a status the node wrote offline never lands after a
 * fresh one the kubelet wrote once the link was back.
 *
 * The agent (edge/agent.ts's startAgent, the composition root of `tether-edge run`) reaches the
 * apiserver through a TCP relay on loopback that the test can cut and heal. Offline, the node
 * writes a status condition (reason Stale), answered from the store and queued. After the heal the
 * reconnect work waits for its jittered delay (here fixed at 15 s); meanwhile the kubelet's live
 * status write (reason Fresh) goes straight upstream, as it does on a node. Then the replay runs.
 * Before the fix it re-sent the queued write on top of the newest version and Stale landed last.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RunningAgent, startAgent } from '../edge/agent.ts';
import { edgeConfigSchema } from '../edge/config.ts';
import { createMemoryLogger } from '../shared/log.ts';
import { type Cluster, sharedCluster } from './support/cluster.ts';
import { type LocalClient, localClient, until } from './support/edge-agent.ts';

const isRoot = process.getuid?.() === 0;
const node = `replay-order-${process.pid}`;
const CONDITION = 'TetherReplayOrder';
const JITTER_MS = 15_000;

/** A loopback TCP relay to the apiserver: cut() refuses and resets every connection, heal() passes them again. */
async function startRelay(target: URL) {
  let cut = false;
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (cut) return void client.destroy();
    const up = net.connect(Number(target.port || 443), target.hostname);
    open.add(client).add(up);
    const done = () => {
      client.destroy();
      up.destroy();
      open.delete(client);
      open.delete(up);
    };
    client.on('error', done).on('close', done);
    up.on('error', done).on('close', done);
    client.pipe(up).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const cutAll = () => {
    cut = true;
    for (const s of open) s.destroy();
  };
  return {
    url: `https://127.0.0.1:${port}`,
    cut: cutAll,
    heal: () => void (cut = false),
    close: () =>
      new Promise<void>((r) => {
        cutAll();
        server.close(() => r());
      }),
  };
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
}

describe.skipIf(!isRoot)('replay order on the real control plane', () => {
  let cluster: Cluster;
  let relay: Awaited<ReturnType<typeof startRelay>>;
  let agent: RunningAgent;
  let kubelet: LocalClient;
  const log = createMemoryLogger('info');
  const work = mkdtempSync(join(tmpdir(), 'tether-replay-order-'));
  const logText = () => log.lines.map((l) => JSON.stringify(l)).join('\n');
  const explain = (e: unknown): never => {
    throw new Error(`${(e as Error).message}\n--- agent log ---\n${log.lines.slice(-40).map((l) => JSON.stringify(l)).join('\n')}`);
  };

  /**
   * A request through the agent as the kubelet makes it: its local client certificate over HTTPS
   * (and its User-Agent, which is what names it where the agent still serves plain HTTP).
   */
  const viaAgent = async (method: string, path: string, body?: unknown) => {
    const headers: Record<string, string> = { 'user-agent': 'kubelet/v1.34.4 (linux/amd64) kubernetes/abc' };
    if (body !== undefined) headers['content-type'] = 'application/strategic-merge-patch+json';
    const res = await fetch(`${agent.proxy.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      tls: { ca: kubelet.caPem, cert: kubelet.certPem, key: kubelet.keyPem },
      signal: AbortSignal.timeout(20_000),
    } as RequestInit);
    return { status: res.status, source: res.headers.get('x-tether-source'), body: (await res.json()) as { status?: { conditions?: Condition[] } } };
  };
  const patchCondition = (reason: string) =>
    viaAgent('PATCH', `/api/v1/nodes/${node}/status`, { status: { conditions: [{ type: CONDITION, status: reason === 'Fresh' ? 'True' : 'False', reason }] } });
  const upstreamReason = async () => {
    const r = await cluster.admin.request('GET', `/api/v1/nodes/${node}`);
    return ((r.body as { status?: { conditions?: Condition[] } }).status?.conditions ?? []).find((c) => c.type === CONDITION)?.reason;
  };

  beforeAll(async () => {
    cluster = await sharedCluster();
    const created = await cluster.admin.request('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: node } });
    if (created.status !== 201) throw new Error(`create node: ${created.status} ${JSON.stringify(created.body)}`);
    const cert = await cluster.issueClientCert(`system:node:${node}`, ['system:nodes']);
    relay = await startRelay(new URL(cluster.server));
    const caDir = join(work, 'local-ca');
    kubelet = localClient(caDir, 'kubelet', work);
    const config = edgeConfigSchema.parse({
      servers: [relay.url],
      caFile: cluster.caFile,
      certFile: cert.certFile,
      keyFile: cert.keyFile,
      rotateCertificates: false,
      dataDir: join(work, 'store'),
      localCaDir: caDir,
      listen: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
    });
    // The reconnect work starts JITTER_MS after the link is back (random() * bound, random fixed at 1).
    agent = await startAgent({ config, nodeName: node, log, reconnectJitterMs: JITTER_MS, random: () => 1 });
    await until('agent online', async () => agent.status().online, (ok) => ok, 60_000).catch(explain);
  }, 600_000);

  afterAll(async () => {
    await agent?.close();
    await relay?.close();
    await cluster?.admin.request('DELETE', `/api/v1/nodes/${node}`).catch(() => {});
    rmSync(work, { recursive: true, force: true });
  });

  test('a status queued offline never lands after the fresh one the kubelet wrote once the link was back', async () => {
    // Online: the kubelet reads its Node through the agent, which caches it.
    const first = await viaAgent('GET', `/api/v1/nodes/${node}`);
    expect(first.status).toBe(200);
    await until('node cached', async () => agent.status().store.objects['v1/nodes'] ?? 0, (n) => n > 0, 30_000).catch(explain);

    // Offline: the node's status write is answered from the store and queued.
    relay.cut();
    await until('agent offline', async () => (await viaAgent('GET', `/api/v1/nodes/${node}`)).source, (s) => s === 'cache', 60_000).catch(explain);
    const stale = await patchCondition('Stale');
    expect(stale.status).toBe(200);
    expect(stale.source).toBe('cache');
    expect(agent.status().store.outbox.status).toBe(1);
    expect(await upstreamReason()).toBeUndefined();

    // The link is back. Before the replay's jittered start, the kubelet's next status write goes upstream.
    relay.heal();
    await until('agent online again', async () => agent.status().online, (ok) => ok, 60_000).catch(explain);
    const fresh = await patchCondition('Fresh');
    expect(fresh.status).toBe(200);
    expect(fresh.source).not.toBe('cache');
    // The scenario needs the live write to have gone before the replay: it has not run yet.
    expect(logText()).not.toContain('outbox replayed');
    expect(await upstreamReason()).toBe('Fresh');

    // The replay runs, and what the apiserver holds afterwards is still the fresh status.
    await until('outbox replayed', async () => logText(), (t) => t.includes('outbox replayed'), JITTER_MS + 60_000).catch(explain);
    expect(agent.status().store.outbox.status ?? 0).toBe(0);
    expect(await upstreamReason()).toBe('Fresh');
  }, 300_000);

  test('several offline status writes reach the apiserver after the heal as one patch on the newest version', async () => {
    relay.cut();
    await until('agent offline', async () => (await viaAgent('GET', `/api/v1/nodes/${node}`)).source, (s) => s === 'cache', 60_000).catch(explain);
    const replays = () => log.lines.filter((l) => JSON.stringify(l).includes('outbox replayed')).length;
    const before = replays();
    const other = (reason: string) =>
      viaAgent('PATCH', `/api/v1/nodes/${node}/status`, { status: { conditions: [{ type: `${CONDITION}Other`, status: 'True', reason }] } });
    for (const w of [patchCondition('Offline1'), other('A'), patchCondition('Offline2'), other('B')]) {
      const r = await w;
      expect(r.status).toBe(200);
      expect(r.source).toBe('cache');
    }
    expect(agent.status().store.outbox.status).toBe(1); // one entry for the Node, however many writes
    relay.heal();
    await until('outbox replayed', async () => replays(), (n) => n > before, JITTER_MS + 60_000).catch(explain);
    expect(agent.status().store.outbox.status ?? 0).toBe(0);
    const r = await cluster.admin.request('GET', `/api/v1/nodes/${node}`);
    const conditions = ((r.body as { status?: { conditions?: Condition[] } }).status?.conditions ?? []).filter((c) => c.type.startsWith(CONDITION));
    expect(conditions.map((c) => `${c.type}=${c.reason}`).sort()).toEqual([`${CONDITION}=Offline2`, `${CONDITION}Other=B`]);
    const last = log.lines.filter((l) => JSON.stringify(l).includes('outbox replayed')).pop() as { replayed?: number };
    expect(last.replayed).toBe(1);
  }, 300_000);
});
