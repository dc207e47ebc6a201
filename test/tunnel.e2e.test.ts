/**
 * The tunnel end to end on the real control plane: kube-apiserver's `cluster` egress goes to
 * tether-hub's CONNECT endpoint; a kubelet simulator runs in an edge site whose firewall lets
 * only site → cloud connections through, so the apiserver reaches it through the tunnel the
 * agent dialed out, or not at all. Real kubectl: logs, logs -f, exec -i, port-forward; a
 * Prometheus-style scrape through CONNECT; refusals; a stuck port-forward next to an exec.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { createCa, issueCert } from '../scripts/cluster/pki.ts';
import { connectVia, getVia } from './support/connect-client.ts';
import { until } from './support/edge-agent.ts';
import type { HubProcess } from './support/hub-process.ts';
import { followLogLines } from './support/follow-logs.ts';
import { kubectlBinary } from './support/kubectl.ts';
import { CONTROL_PLANE_ADDRESS } from './support/netns.ts';
import { startTunnelRig, type EdgeNode, type LoggedProcess, type TunnelRig } from './support/tunnel-rig.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('tunnel.e2e.test.ts skipped: edge network namespaces need root');

const nodeName = `edge-tun-${process.pid}`;
const app = `tun-app-${process.pid}`;

/** "connected", "no answer" (dropped), or the error. */
function tryConnect(host: string, port: number, ms: number): Promise<string> {
  return new Promise((resolve) => {
    const s = netConnect({ host, port });
    const timer = setTimeout(() => (s.destroy(), resolve('no answer')), ms);
    s.once('connect', () => (clearTimeout(timer), s.destroy(), resolve('connected')));
    s.once('error', (e) => (clearTimeout(timer), resolve(e.message)));
  });
}

/** Starts `kubectl port-forward`; resolves with the local port once it forwards. */
async function portForward(kubeconfig: string, pod: string, remote: number): Promise<{ port: number; child: ChildProcess; stop(): void }> {
  const child = spawn(kubectlBinary(), [`--kubeconfig=${kubeconfig}`, 'port-forward', `pod/${pod}`, `:${remote}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const port = await until('port-forward listening', async () => Number(/Forwarding from 127\.0\.0\.1:(\d+)/.exec(out)?.[1] ?? 0), (p) => p > 0, 60_000)
    .catch((e) => { child.kill(); throw new Error(`${(e as Error).message}\n${out}`); });
  return { port, child, stop: () => void child.kill() };
}

describe.skipIf(!isRoot)('tunnel: kubectl and Prometheus reach an edge node the cloud cannot dial', () => {
  let rig: TunnelRig;
  let hub: HubProcess;
  let node: EdgeNode;
  let agent: LoggedProcess;
  let pod: string;
  let egress: { certFile: string; keyFile: string };
  let prometheus: { certFile: string; keyFile: string };

  const kubectl = async (args: string[], input?: string, timeoutMs = 60_000) => rig.cluster.kubectl(args, { input, timeoutMs });
  const ok = async (args: string[], input?: string) => {
    const r = await kubectl(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const explain = (e: unknown): never => {
    throw new Error(`${(e as Error).message}\n--- hub ---\n${hub?.log.slice(-25).join('\n')}\n--- agent ---\n${agent?.log.slice(-25).join('\n')}`);
  };

  beforeAll(async () => {
    rig = await startTunnelRig({ replicas: 1 });
    hub = await rig.startHub(0);
    node = await rig.startEdgeNode(nodeName);
    egress = await rig.cluster.issueClientCert('kube-apiserver-egress', []);
    prometheus = await rig.cluster.issueClientCert('prometheus', []);
    await until('node Ready', async () => JSON.parse((await ok(['get', 'node', nodeName, '-o', 'json', '--ignore-not-found'])) || '{}'),
      (n) => n.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True'), 120_000);
    agent = rig.startAgent(node, { hubs: [hub.agentUrl] });
    await until('agent connected', async () => agent.lines('tunnel connected').length, (n) => n > 0, 60_000).catch(explain);
    const deployment = {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: app, namespace: 'default' },
      spec: {
        replicas: 1, selector: { matchLabels: { app } },
        template: { metadata: { labels: { app } }, spec: { nodeSelector: { 'kubernetes.io/hostname': nodeName }, containers: [{ name: 'app', image: 'registry.invalid/app:1' }] } },
      },
    };
    await ok(['apply', '-f', '-'], JSON.stringify(deployment));
    const pods = await until('pod Running', async () => JSON.parse(await ok(['get', 'pods', '-l', `app=${app}`, '-o', 'json'])).items,
      (ps: { metadata: { name: string }; status?: { phase?: string } }[]) => ps.length === 1 && ps[0]!.status?.phase === 'Running', 120_000);
    pod = pods[0]!.metadata.name;
  }, 1_800_000);

  afterAll(async () => {
    await rig?.stop();
  }, 120_000);

  test('the control plane cannot open a connection to the edge kubelet (only edge → cloud passes)', async () => {
    expect(await tryConnect(node.site.address, 10250, 1500)).toBe('no answer');
    expect(hub.lines('agent connected').some((l) => l.node === nodeName)).toBe(true);
    expect(await hub.metrics()).toContain('tether_hub_agents_connected 1');
  });

  test('kubectl logs and logs -f reach the pod through the hub', async () => {
    const out = await until('log lines', () => ok(['logs', pod, '-c', 'app']), (s) => s.includes(`${pod}/app line`)).catch(explain);
    expect(out).toContain(`${pod}/app line 1`);
    const n = await followLogLines(rig.cluster.adminKubeconfig, pod);
    expect(n[1]).toBe(n[0]! + 1);
    expect(n[2]).toBe(n[1]! + 1);
    const metrics = await hub.metrics();
    expect(metrics).toMatch(/tether_hub_connect_requests_total\{[^}]*route="tunnel"[^}]*\} [1-9]/);
  }, 120_000);

  test('kubectl exec -i carries stdin to the command and its output back', async () => {
    const input = 'hello from the cloud\nsecond line\n';
    const out = await ok(['exec', '-i', pod, '-c', 'app', '--', 'cat'], input);
    expect(out).toBe(input);
    expect((await ok(['exec', pod, '-c', 'app', '--', 'sh', '-c', 'echo $((6 * 7))'])).trim()).toBe('42');
  }, 120_000);

  test('kubectl port-forward carries a real byte stream both ways', async () => {
    const pf = await portForward(rig.cluster.adminKubeconfig, pod, node.echoPort);
    try {
      const payload = randomBytes(4 * 1024 * 1024);
      const back = await new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        let got = 0;
        const s = netConnect({ host: '127.0.0.1', port: pf.port }, () => {
          s.write(payload);
        });
        s.on('data', (c: Buffer) => {
          chunks.push(c);
          got += c.length;
          if (got >= payload.length) {
            s.end();
            resolve(Buffer.concat(chunks));
          }
        });
        s.once('error', reject);
      });
      expect(back.length).toBe(payload.length);
      expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
    } finally {
      pf.stop();
    }
  }, 120_000);

  test("a Prometheus-style scrape through the CONNECT endpoint returns the node's metrics", async () => {
    const creds = { caFile: rig.hubCaFile, ...prometheus };
    // The kubelet (https): CONNECT, then TLS to the kubelet through the tunnel.
    const c = await connectVia(hub.connectAddress, `${node.site.address}:10250`, creds);
    expect(c.statusLine).toBe('HTTP/1.1 200 Connection established');
    const body = await new Promise<string>((resolve, reject) => {
      const t = tlsConnect({ socket: c.socket, rejectUnauthorized: false }, () => t.write(`GET /metrics HTTP/1.1\r\nHost: ${node.site.address}:10250\r\nConnection: close\r\n\r\n`));
      let text = '';
      t.setEncoding('utf8').on('data', (d: string) => (text += d));
      t.once('end', () => resolve(text));
      t.once('error', reject);
    });
    expect(body.startsWith('HTTP/1.1 200')).toBe(true);
    expect(body).toContain('kubelet_running_pods');
    // node-exporter (http): Prometheus sends an absolute-form GET to the proxy.
    const ne = await getVia(hub.connectAddress, `http://${node.site.address}:${node.metricsPort}/metrics`, creds);
    expect(ne.statusLine).toBe('HTTP/1.1 200 OK');
    expect(ne.body).toContain('node_load1 0.25');
    // Prometheus' credentials reach edge nodes only.
    const other = await connectVia(hub.connectAddress, `${CONTROL_PLANE_ADDRESS}:${new URL(rig.cluster.server).port}`, creds);
    expect(other.statusLine).toMatch(/^HTTP\/1\.1 403 .*may reach edge nodes only/);
  }, 60_000);

  test("the hub never dials its own addresses directly: the control plane's host address and loopback are refused", async () => {
    // Direct dials to a cloud destination in another network are tested in tunnel-trust.e2e.test.ts.
    const creds = { caFile: rig.hubCaFile, ...egress };
    let reached = 0;
    const cloud: Server = createServer((s: Socket) => (reached++, s.destroy()));
    await new Promise<void>((r) => cloud.listen(0, CONTROL_PLANE_ADDRESS, r));
    try {
      const port = (cloud.address() as { port: number }).port;
      const own = await connectVia(hub.connectAddress, `${CONTROL_PLANE_ADDRESS}:${port}`, creds);
      own.socket.destroy();
      expect(own.statusLine).toMatch(/^HTTP\/1\.1 403 .*is an address of the hub itself/);
      const denied = await connectVia(hub.connectAddress, `127.0.0.1:${port}`, creds);
      denied.socket.destroy();
      expect(denied.statusLine).toMatch(/^HTTP\/1\.1 403 .*127\.0\.0\.1 is a loopback/);
      expect(reached).toBe(0);
    } finally {
      cloud.close();
    }
  }, 60_000);

  test('a CONNECT to a destination the agent does not allow is refused with a clear error and log lines', async () => {
    const r = await kubectl(['get', '--raw', `/api/v1/nodes/${nodeName}:22/proxy/`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('port 22 is not allowed (allowed: 9100, 10250)');
    expect(agent.lines('tunnel stream refused').some((l) => l.port === 22)).toBe(true);
    expect(hub.lines('connect refused').some((l) => l.port === 22 && l.failure === 'agent_refused')).toBe(true);
    expect(await hub.metrics()).toMatch(/tether_hub_dial_errors_total\{reason="agent_refused"\} [1-9]/);
  }, 60_000);

  test('an agent without valid credentials is refused with a clear error and a log line', async () => {
    const foreignCa = await createCa({ certFile: `${rig.dir}/foreign-ca.crt`, keyFile: `${rig.dir}/foreign-ca.key` }, 'not-the-cluster');
    const forged = await issueCert(foreignCa, { certFile: `${rig.dir}/forged.crt`, keyFile: `${rig.dir}/forged.key` }, { cn: `system:node:${nodeName}`, orgs: ['system:nodes'], usage: ['client'] });
    const before = hub.lines('agent refused').length;
    const bad = rig.startAgent(node, { hubs: [hub.agentUrl], cert: forged });
    try {
      const refused = await until('refusal logged by the agent', async () => bad.lines('the hub refused the tunnel'), (l) => l.length > 0, 30_000);
      expect(String(refused[0]!.reason)).toMatch(/refused: 401 .*not signed by a trusted CA/);
      expect(hub.lines('agent refused').length).toBeGreaterThan(before);
      expect(String(hub.lines('agent refused').at(-1)!.reason)).toContain('not signed by a trusted CA');
    } finally {
      await bad.stop();
    }
    // The real node's tunnel was not disturbed.
    expect((await ok(['exec', pod, '-c', 'app', '--', 'echo', 'still here'])).trim()).toBe('still here');
  }, 60_000);

  test("an agent claiming another node's name is refused with a clear error and a log line", async () => {
    const impostor = `impostor-${process.pid}`;
    const cert = await rig.cluster.issueClientCert(`system:node:${impostor}`, ['system:nodes']);
    const bad = rig.startAgent(node, { hubs: [hub.agentUrl], cert, nodeName });
    try {
      const refused = await until('refusal logged by the agent', async () => bad.lines('the hub refused the tunnel'), (l) => l.length > 0, 30_000);
      expect(String(refused[0]!.reason)).toContain(`authenticated as node ${impostor} but announced node ${nodeName}`);
      expect(hub.lines('agent refused at hello').some((l) => l.node === impostor && l.announced === nodeName)).toBe(true);
    } finally {
      await bad.stop();
    }
    expect((await ok(['exec', pod, '-c', 'app', '--', 'echo', 'still mine'])).trim()).toBe('still mine');
  }, 60_000);

  test('a stuck client on one port-forward does not slow an exec on the same node', async () => {
    const pf = await portForward(rig.cluster.adminKubeconfig, pod, node.sourcePort);
    const stuck = netConnect({ host: '127.0.0.1', port: pf.port });
    stuck.pause(); // connected, never reads
    const sourceState = () => {
      const last = node.services.log.filter((l) => l.startsWith('{"source"')).at(-1);
      return last ? (JSON.parse(last).source as { sent: number; blocked: boolean; connections: number }) : undefined;
    };
    try {
      await until('the port-forward stream is stuck end to end', async () => sourceState(), (s) => !!s && s.connections >= 1 && s.blocked, 60_000);
      const queued = await hub.metrics();
      expect(queued).toMatch(new RegExp(`tether_hub_tunnel_stream_queued_bytes\\{node="${nodeName}",stream="\\d+"\\} [1-9]`));
      const out = await ok(['exec', pod, '-c', 'app', '--', 'echo', 'exec beside a stuck stream']);
      expect(out.trim()).toBe('exec beside a stuck stream');
      // The port-forward is still stuck: nothing moved it on while the exec ran.
      const after = sourceState()!;
      expect(after.blocked).toBe(true);
      expect(after.connections).toBeGreaterThanOrEqual(1);
      expect(stuck.destroyed).toBe(false);
    } finally {
      stuck.destroy();
      pf.stop();
    }
  }, 120_000);
});
