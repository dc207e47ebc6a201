/**
 * Two hub replicas on the real control plane. kube-apiserver's egress goes to replica 0; the
 * agent lists replica 1 first, so it holds the node there and every kubectl exec is forwarded
 * 0 → 1 in one hop (the Lease says who holds the node). Then the holder stops — gracefully
 * (SIGTERM: drain) and, after the agent is back on a fresh replica 1, by SIGKILL — and the agent
 * reconnects to replica 0, takes the Lease, and kubectl exec works again.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { until } from './support/edge-agent.ts';
import type { HubProcess } from './support/hub-process.ts';
import { startTunnelRig, type EdgeNode, type LoggedProcess, type TunnelRig } from './support/tunnel-rig.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('tunnel-ha.e2e.test.ts skipped: edge network namespaces need root');

const nodeName = `edge-ha-${process.pid}`;
const app = `ha-app-${process.pid}`;

describe.skipIf(!isRoot)('tunnel: two hub replicas', () => {
  let rig: TunnelRig;
  let hub0: HubProcess;
  let hub1: HubProcess;
  let node: EdgeNode;
  let agent: LoggedProcess;
  let pod: string;

  const kubectl = (args: string[], input?: string) => rig.cluster.kubectl(args, { input, timeoutMs: 30_000 });
  const ok = async (args: string[]) => {
    const r = await kubectl(args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const holder = async () => (await kubectl(['get', 'lease', '-n', 'tether-system', `tunnel-${nodeName}`, '-o', 'jsonpath={.spec.holderIdentity}'])).stdout;
  const exec = async (word: string) => (await kubectl(['exec', pod, '-c', 'app', '--', 'echo', word])).stdout.trim();
  const explain = (e: unknown): never => {
    const tail = (p: { log: string[] } | undefined) => p?.log.slice(-20).join('\n');
    throw new Error(`${(e as Error).message}\n--- hub-0 ---\n${tail(hub0)}\n--- hub-1 ---\n${tail(hub1)}\n--- agent ---\n${tail(agent)}`);
  };

  beforeAll(async () => {
    rig = await startTunnelRig({ replicas: 2 });
    hub0 = await rig.startHub(0);
    hub1 = await rig.startHub(1);
    node = await rig.startEdgeNode(nodeName);
    await until('node Ready', async () => JSON.parse((await ok(['get', 'node', nodeName, '-o', 'json', '--ignore-not-found'])) || '{}'),
      (n) => n.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True'), 120_000);
    const deployment = {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: app, namespace: 'default' },
      spec: {
        replicas: 1, selector: { matchLabels: { app } },
        template: { metadata: { labels: { app } }, spec: { nodeSelector: { 'kubernetes.io/hostname': nodeName }, containers: [{ name: 'app', image: 'registry.invalid/app:1' }] } },
      },
    };
    const r = await kubectl(['apply', '-f', '-'], JSON.stringify(deployment));
    if (r.code !== 0) throw new Error(r.stderr);
    const pods = await until('pod Running', async () => JSON.parse(await ok(['get', 'pods', '-l', `app=${app}`, '-o', 'json'])).items,
      (ps: { metadata: { name: string }; status?: { phase?: string } }[]) => ps.length === 1 && ps[0]!.status?.phase === 'Running', 120_000);
    pod = pods[0]!.metadata.name;
    agent = rig.startAgent(node, { hubs: [hub1.agentUrl, hub0.agentUrl] });
  }, 1_800_000);

  afterAll(async () => {
    await rig?.stop();
  }, 120_000);

  test('the agent holds the node on replica 1 (Lease), and exec arriving at replica 0 is forwarded there in one hop', async () => {
    await until('lease held by hub-1', holder, (h) => h === 'hub-1', 60_000).catch(explain);
    expect(await until('exec through the forward', () => exec('forwarded'), (o) => o === 'forwarded', 60_000).catch(explain)).toBe('forwarded');
    expect(hub0.lines('connect').some((l) => l.route === 'forward' && l.node === nodeName)).toBe(true);
    expect(hub1.lines('connect').some((l) => l.route === 'tunnel' && l.forwardedBy === 'hub-0')).toBe(true);
    expect(await hub0.metrics()).toMatch(/tether_hub_connect_requests_total\{[^}]*route="forward"[^}]*\} [1-9]/);
  }, 120_000);

  test('replica 1 stops gracefully: the agent drains there, reconnects to replica 0, and exec works again', async () => {
    await hub1.stop('SIGTERM');
    await until('lease held by hub-0', holder, (h) => h === 'hub-0', 60_000).catch(explain);
    expect(agent.lines('the hub is draining the tunnel').length).toBeGreaterThan(0);
    expect(await until('exec after the drain', () => exec('after drain'), (o) => o === 'after drain', 60_000).catch(explain)).toBe('after drain');
  }, 120_000);

  test('replica 1, holding the node again, is killed: the agent reconnects to replica 0 and exec works again', async () => {
    hub1 = await rig.startHub(1);
    await agent.stop();
    agent = rig.startAgent(node, { hubs: [hub1.agentUrl, hub0.agentUrl] });
    await until('lease held by the new hub-1', holder, (h) => h === 'hub-1', 60_000).catch(explain);
    expect(await until('exec through the new hub-1', () => exec('via hub-1'), (o) => o === 'via hub-1', 60_000).catch(explain)).toBe('via hub-1');

    const killedAt = Date.now();
    await hub1.stop('SIGKILL');
    await until('lease held by hub-0', holder, (h) => h === 'hub-0', 60_000).catch(explain);
    expect(await until('exec after the kill', () => exec('after kill'), (o) => o === 'after kill', 60_000).catch(explain)).toBe('after kill');
    console.info(`tunnel-ha: exec worked again ${Date.now() - killedAt} ms after replica 1 was killed`);
    expect(agent.lines('tunnel connected').some((l) => String(l.hub).startsWith(hub0.agentUrl.replace(/\/tunnel$/, '')))).toBe(true);
  }, 180_000);
});
