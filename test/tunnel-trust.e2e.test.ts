/**
 * Trust on the edge link, on the real control plane with the real hub and real agents (issue 10
 * items 1, 7 and 8):
 *   - a node's tunnel carries only the addresses its Node object gives it: edge-a announcing
 *     edge-b's address, a cloud node's and Service names gets none of them, and kube-apiserver's
 *     CONNECTs to edge-b never arrive at edge-a, not even while edge-b has no tunnel or when edge-a
 *     lists edge-b's address in its own Node status;
 *   - the direct-dial policy: `0`, `0.0.0.0`, `[::]`, `127.1`, IPv4-mapped loopback and the hub's own
 *     address are refused before anything is dialed, with 0.0.0.0/0 allowed; a cloud destination
 *     (another network namespace) is still dialed;
 *   - idle unauthenticated sockets on both listeners are closed, and counted.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { connectVia } from './support/connect-client.ts';
import { until } from './support/edge-agent.ts';
import type { HubProcess } from './support/hub-process.ts';
import { CONTROL_PLANE_ADDRESS, createEdgeSite, type EdgeSite } from './support/netns.ts';
import { startTunnelRig, type EdgeNode, type LoggedProcess, type TunnelRig } from './support/tunnel-rig.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('tunnel-trust.e2e.test.ts skipped: edge network namespaces need root');

const a = `edge-a-${process.pid}`;
const b = `edge-b-${process.pid}`;
const cloudNode = `cloud-${process.pid}`;
const CLOUD_NODE_IP = '198.18.254.77';

describe.skipIf(!isRoot)('tunnel trust: no node gets more than its own', () => {
  let rig: TunnelRig;
  let hub: HubProcess;
  let edgeA: EdgeNode;
  let edgeB: EdgeNode;
  let agentA: LoggedProcess;
  let agentB: LoggedProcess;
  let egress: { certFile: string; keyFile: string };

  const kubectl = (args: string[], input?: string) => rig.cluster.kubectl(args, { input, timeoutMs: 60_000 });
  const ok = async (args: string[], input?: string) => {
    const r = await kubectl(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const explain = (e: unknown): never => {
    throw new Error(`${(e as Error).message}\n--- hub ---\n${hub?.log.slice(-30).join('\n')}\n--- agent a ---\n${agentA?.log.slice(-15).join('\n')}`);
  };
  const ready = (name: string) =>
    until(`node ${name} Ready`, async () => JSON.parse((await ok(['get', 'node', name, '-o', 'json', '--ignore-not-found'])) || '{}'),
      (n) => n.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True'), 120_000);
  /** Hub log lines about CONNECTs (answered or refused) to `host`. */
  const connectsTo = (host: string) => [...hub.lines('connect'), ...hub.lines('connect refused')].filter((l) => l.host === host);

  beforeAll(async () => {
    rig = await startTunnelRig({ replicas: 1 });
    hub = await rig.startHub(0, { handshakeTimeoutMs: 2000, headerTimeoutMs: 2000 });
    egress = await rig.cluster.issueClientCert('kube-apiserver-egress', []);
    edgeA = await rig.startEdgeNode(a);
    edgeB = await rig.startEdgeNode(b);
    await ready(a);
    await ready(b);
    // A cloud node: a Node object the apiserver would dial directly.
    await ok(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: cloudNode }, status: { addresses: [{ type: 'InternalIP', address: CLOUD_NODE_IP }] } }));
    agentB = rig.startAgent(edgeB, { hubs: [hub.agentUrl] });
    const claims = [edgeA.site.address, edgeB.site.address, b, CLOUD_NODE_IP, 'kubernetes.default.svc', 'kubernetes.default', '198.19.0.1'];
    agentA = rig.startAgent(edgeA, { hubs: [hub.agentUrl], extraArgs: ['--tunnel-addresses', claims.join(',')] });
    await until('both agents connected', async () => hub.lines('agent connected').map((l) => l.node), (n) => n.includes(a) && n.includes(b), 60_000).catch(explain);
  }, 1_800_000);

  afterAll(async () => {
    await rig?.cluster.kubectl(['delete', 'node', cloudNode, '--ignore-not-found']).catch(() => {});
    await rig?.stop();
  }, 120_000);

  test("edge-a's claims on edge-b's address and name, a cloud node's address and Service names are refused, logged and counted", async () => {
    const refused = await until('claims refused', async () => hub.lines('address claim refused').filter((l) => l.node === a),
      (l) => l.length >= 6, 30_000).catch(explain);
    const why = Object.fromEntries(refused.map((l) => [String(l.address), String(l.reason)]));
    expect(why[edgeB.site.address]).toBe('other_node');
    expect(why[b]).toBe('other_node');
    expect(why['kubernetes.default.svc']).toBe('service');
    expect(why['kubernetes.default']).toBe('service');
    expect(why['198.19.0.1']).toBe('service'); // the ClusterIP of the kubernetes Service in the test cluster
    expect(why[edgeA.site.address]).toBeUndefined();
    // The cloud node: refused as another node's, or (if the informer had not delivered it yet) as not edge-a's.
    expect(['other_node', 'not_in_node']).toContain(why[CLOUD_NODE_IP]!);
    const accepted = hub.lines('agent connected').filter((l) => l.node === a).at(-1)!;
    expect(accepted.addresses).toEqual([edgeA.site.address]);
    const metrics = await hub.metrics();
    expect(metrics).toMatch(/tether_hub_address_claims_refused_total\{reason="other_node"\} [2-9]/);
    expect(metrics).toMatch(/tether_hub_address_claims_refused_total\{reason="service"\} [3-9]/);
  }, 60_000);

  test("kube-apiserver's CONNECTs to edge-b arrive at edge-b, and never at edge-a, even with edge-b's tunnel down", async () => {
    const raw = `/api/v1/nodes/${b}:10250/proxy/metrics`;
    const up = await until('edge-b reachable', () => kubectl(['get', '--raw', raw]), (r) => r.code === 0, 60_000).catch(explain);
    expect(up.stdout).toContain('kubelet_running_pods');
    expect(connectsTo(edgeB.site.address).length).toBeGreaterThan(0);
    expect(connectsTo(edgeB.site.address).every((l) => l.node === b)).toBe(true);
    await agentB.stop();
    await until('edge-b disconnected', async () => hub.lines('agent disconnected').some((l) => l.node === b), (x) => x, 30_000);
    const down = await kubectl(['get', '--raw', raw]);
    expect(down.code).not.toBe(0);
    expect(down.stderr).toContain(`node ${b} has no tunnel connected`);
    expect(connectsTo(edgeB.site.address).some((l) => l.node === a)).toBe(false);
    expect(agentA.lines('tunnel stream').filter((l) => l.host === edgeB.site.address || l.host === b)).toEqual([]);
    agentB = rig.startAgent(edgeB, { hubs: [hub.agentUrl] });
    await until('edge-b back', async () => hub.lines('agent connected').filter((l) => l.node === b).length, (n) => n >= 2, 60_000).catch(explain);
  }, 120_000);

  test("edge-a listing edge-b's address in its own Node status makes it contested: refused for both, never sent to edge-a", async () => {
    const addresses = [{ type: 'InternalIP', address: edgeA.site.address }, { type: 'InternalIP', address: edgeB.site.address }, { type: 'Hostname', address: a }];
    await ok(['patch', 'node', a, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { addresses } })]);
    await until('contested', async () => hub.lines('address listed by several Node objects').some((l) => l.address === edgeB.site.address), (x) => x, 30_000).catch(explain);
    const c = await connectVia(hub.connectAddress, `${edgeB.site.address}:10250`, { caFile: rig.hubCaFile, ...egress });
    c.socket.destroy();
    expect(c.statusLine).toMatch(/^HTTP\/1\.1 403 .*is listed by several Node objects/);
    expect(await hub.metrics()).toMatch(/tether_hub_addresses_contested [1-9]/);
    expect(connectsTo(edgeB.site.address).some((l) => l.node === a)).toBe(false);
  }, 60_000);

  test('direct dials to 0, 0.0.0.0, [::], 127.1, mapped loopback and the hub’s own address are refused, and nothing on the hub’s loopback is reached', async () => {
    let reached = 0;
    const servers: Server[] = [];
    const listen = (host: string, port = 0) =>
      new Promise<number>((resolve) => {
        const s = createServer((c: Socket) => (reached++, c.destroy()));
        servers.push(s);
        s.listen(port, host, () => resolve((s.address() as { port: number }).port));
      });
    const port = await listen('127.0.0.1');
    await listen('::1', port);
    const own = await listen(CONTROL_PLANE_ADDRESS);
    try {
      const creds = { caFile: rig.hubCaFile, ...egress };
      for (const target of [`0:${port}`, `0.0.0.0:${port}`, `[::]:${port}`, `127.1:${port}`, `[::ffff:127.0.0.1]:${port}`, `localhost:${port}`, `${CONTROL_PLANE_ADDRESS}:${own}`]) {
        const c = await connectVia(hub.connectAddress, target, creds);
        c.socket.destroy();
        expect(c.statusLine).toMatch(/^HTTP\/1\.1 (403|400) /);
      }
      expect(reached).toBe(0);
    } finally {
      for (const s of servers) s.close();
    }
  }, 60_000);

  test('a destination of no node in another network is still dialed directly', async () => {
    const site: EdgeSite = await createEdgeSite(`trust-cloud-${process.pid % 100000}`);
    try {
      const echo = `require('node:net').createServer((s) => s.pipe(s)).listen(7100, '${site.address}', () => console.log('ready'))`;
      site.spawn([process.execPath, '-e', echo]);
      await until('cloud echo listening', () => new Promise<boolean>((r) => {
        const s = netConnect({ host: site.address, port: 7100 }, () => (s.destroy(), r(true)));
        s.once('error', () => r(false));
      }), (x) => x, 30_000);
      const c = await connectVia(hub.connectAddress, `${site.address}:7100`, { caFile: rig.hubCaFile, ...egress });
      expect(c.statusLine).toBe('HTTP/1.1 200 Connection established');
      const echoed = new Promise<string>((r) => c.socket.once('data', (d: Buffer) => r(String(d))));
      c.socket.resume();
      c.socket.write('direct');
      expect(await echoed).toBe('direct');
      c.socket.destroy();
    } finally {
      await site.destroy();
    }
  }, 60_000);

  test('idle unauthenticated sockets on both listeners are closed and counted', async () => {
    const open = (address: string) => {
      const i = address.lastIndexOf(':');
      return new Promise<Socket>((resolve) => {
        const s = netConnect({ host: address.slice(0, i), port: Number(address.slice(i + 1)) });
        s.on('error', () => {});
        s.once('connect', () => resolve(s));
        s.once('close', () => resolve(s));
      });
    };
    const agentAddress = new URL(hub.agentUrl).host;
    const idle = await Promise.all([...Array.from({ length: 40 }, () => open(hub.connectAddress)), ...Array.from({ length: 40 }, () => open(agentAddress))]);
    try {
      await until('all closed by the hub', async () => idle.filter((s) => !s.destroyed && !s.readableEnded).length, (n) => n === 0, 30_000);
      const m = await hub.metrics();
      expect(Number(/tether_hub_listener_refusals_total\{listener="connect",reason="handshake_timeout"\} (\d+)/.exec(m)?.[1])).toBeGreaterThanOrEqual(40);
      expect(Number(/tether_hub_listener_refusals_total\{listener="agent",reason="handshake_timeout"\} (\d+)/.exec(m)?.[1])).toBeGreaterThanOrEqual(40);
    } finally {
      for (const s of idle) s.destroy();
    }
  }, 60_000);
});
