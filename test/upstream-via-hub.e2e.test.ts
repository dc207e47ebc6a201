/**
 * One connection per node (issue 16), end to end on the real control plane: an edge site whose only
 * way out is TCP to the two hub replicas' agent ports (allowOutboundOnly; no route to kube-apiserver
 * at all) and which the cloud cannot dial (blockInbound). tether-edge runs there with
 * --upstream-via-hub: the kubelet simulator talks to the agent over local TLS, the agent's upstream
 * requests travel as compressed api streams of its tunnel session, and tether-hub (as deployed: the
 * tether-hub ServiceAccount with deploy/'s RBAC, never the admin) forwards them as the node.
 *
 * Claims: pods run; kubectl logs/exec reach the pod through the hub; what the node's requests may do
 * is exactly what the node may do (the apiserver's own 403s name system:node:<name>, even for a
 * request that asks to impersonate someone else); the link is cut and healed with offline answers
 * from the store and no relist; the agent moves to the other replica when one stops; the hub counts
 * the node's bytes before and after compression.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hubKubeconfig } from './support/cluster.ts';
import { type LocalClient, localClient, until } from './support/edge-agent.ts';
import type { HubProcess } from './support/hub-process.ts';
import { kubectlBinary } from './support/kubectl.ts';
import { CONTROL_PLANE_ADDRESS, createEdgeSite, type EdgeSite } from './support/netns.ts';
import { allowOutboundOnly, blockInbound } from './support/one-way-firewall.ts';
import { spawnLogged, startTunnelRig, type LoggedProcess, type TunnelRig } from './support/tunnel-rig.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('upstream-via-hub.e2e.test.ts skipped: edge network namespaces need root');

const simMain = fileURLToPath(new URL('./support/kubelet-sim/main.ts', import.meta.url));
const edgeMain = fileURLToPath(new URL('../edge/main.ts', import.meta.url));
const node = `edge-via-${process.pid}`;
const app = `via-app-${process.pid}`;
const PROXY = 'https://127.0.0.1:10261';

/** Sum of a metric's samples whose labels pass `match`, from Prometheus text. */
function metricSum(text: string, name: string, match: (labels: string) => boolean = () => true): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = line.match(new RegExp(`^${name}(\\{[^}]*\\})? ([0-9.e+]+)$`));
    if (m && match(m[1] ?? '')) sum += Number(m[2]);
  }
  return sum;
}

describe.skipIf(!isRoot)('upstream via the hub: the tunnel is the node’s only link', () => {
  let rig: TunnelRig;
  const hubs: HubProcess[] = [];
  let site: EdgeSite;
  let agent: LoggedProcess;
  let sim: ChildProcess;
  let pod: string;
  let hubPorts: number[];
  const work = mkdtempSync(join(tmpdir(), 'tether-via-hub-'));
  const caDir = join(work, 'local-ca');
  const kubelet: LocalClient = localClient(caDir, 'kubelet', work);
  const operator: LocalClient = localClient(caDir, 'kubectl', work);

  const admin = async (args: string[], input?: string) => {
    const r = await rig.cluster.kubectl(args, { input, timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  /** kubectl inside the site through the agent (the node's identity lent), fresh kubectl cache. */
  const onNode = (args: string[]) =>
    site.exec([kubectlBinary(), `--kubeconfig=${operator.kubeconfig}`, `--cache-dir=${mkdtempSync(join(work, 'kc-'))}`, '--request-timeout=20s', ...args], { timeoutMs: 60_000 });
  const agentMetrics = async () =>
    (await site.exec([process.execPath, '-e', `console.log(await (await fetch('http://127.0.0.1:10267/metrics')).text())`], { timeoutMs: 20_000 })).stdout;
  const agentStatus = async () => JSON.parse((await site.exec([process.execPath, edgeMain, 'status', '--json'], { timeoutMs: 20_000 })).stdout);
  /** LISTs the agent sent upstream (a client that relists after a cut or a move shows here). */
  const lists = async () => metricSum(await agentMetrics(), 'tether_proxy_requests_total', (l) => l.includes('verb="list"') && l.includes('source="upstream"'));
  const firewall = async () => {
    await blockInbound(site);
    await allowOutboundOnly(site, hubPorts);
  };
  const explain = (e: unknown): never => {
    const tail = (name: string, l?: string[]) => `--- ${name} ---\n${(l ?? []).slice(-30).join('\n')}`;
    throw new Error([(e as Error).message, tail('agent', agent?.log), ...hubs.map((h, i) => tail(`hub-${i}`, h.log))].join('\n'));
  };
  const nodeReady = async () =>
    ((JSON.parse((await admin(['get', 'node', node, '-o', 'json', '--ignore-not-found'])) || '{}').status?.conditions ?? []) as { type: string; status: string }[]).find(
      (c) => c.type === 'Ready',
    )?.status;

  beforeAll(async () => {
    rig = await startTunnelRig({ replicas: 2 });
    const kubeconfig = await hubKubeconfig(rig.cluster);
    for (const i of [0, 1]) hubs.push(await rig.startHub(i, { kubeconfig, admitUnregisteredNodes: true }));
    hubPorts = hubs.map((h) => Number(new URL(h.agentUrl).port));
    site = await createEdgeSite(`via-${process.pid % 100000}`);
    await firewall();
    const cert = await rig.cluster.issueClientCert(`system:node:${node}`, ['system:nodes']);
    agent = spawnLogged(site, [process.execPath, edgeMain, 'run', '--node-name', node, '--upstream-via-hub',
      '--hub-urls', hubs.map((h) => h.agentUrl).join(','), '--hub-ca-file', rig.hubCaFile,
      '--servers', rig.cluster.edgeServer, '--ca-file', rig.cluster.caFile, '--cert-file', cert.certFile, '--key-file', cert.keyFile,
      '--rotate-certificates', 'false', '--data-dir', join(work, 'store'), '--local-ca-dir', caDir]);
    await until('agent proxy listening', async () => agent.log.join('\n'), (l) => l.includes(PROXY)).catch(explain);
    sim = site.spawn([process.execPath, simMain, '--node-name', node, '--kubeconfig', kubelet.kubeconfig, '--address', site.address]);
    await until('node Ready', nodeReady, (s) => s === 'True', 180_000).catch(explain);
    const labels = { app, 'tether-e2e': String(process.pid) };
    await admin(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: app, namespace: 'default', labels },
      spec: { replicas: 1, selector: { matchLabels: { app } }, template: { metadata: { labels },
        spec: { nodeSelector: { 'kubernetes.io/hostname': node }, containers: [{ name: 'app', image: 'registry.invalid/app:1' }] } } },
    }));
    const pods = await until('pod Running', async () => JSON.parse(await admin(['get', 'pods', '-l', `app=${app}`, '-o', 'json'])).items,
      (ps: { metadata: { name: string }; status?: { phase?: string } }[]) => ps.length === 1 && ps[0]!.status?.phase === 'Running', 180_000).catch(explain);
    pod = pods[0]!.metadata.name;
  }, 1_800_000);

  afterAll(async () => {
    if (rig) {
      await rig.cluster.kubectl(['delete', 'deployment', app, '--ignore-not-found', '--wait=false']);
      await rig.cluster.kubectl(['delete', 'node', node, '--ignore-not-found', '--wait=false']);
    }
    sim?.kill('SIGTERM');
    await agent?.stop();
    await site?.destroy();
    await rig?.stop();
  }, 120_000);

  test('the site has no route to kube-apiserver, and still the node is Ready and its pod Running through the hub', async () => {
    const apiPort = new URL(rig.cluster.edgeServer).port;
    const probe = `const s=require('net').connect(${apiPort}, '${CONTROL_PLANE_ADDRESS}', () => { console.log('connected'); s.destroy(); }); s.on('error', (e) => console.log(e.message)); setTimeout(() => { console.log('no answer'); process.exit(0); }, 1500);`;
    expect((await site.exec([process.execPath, '-e', probe], { timeoutMs: 10_000 })).stdout.trim().split('\n')[0]).toBe('no answer');
    expect(await nodeReady()).toBe('True');
    const status = await agentStatus();
    expect(status.online).toBe(true);
    expect(JSON.stringify(status)).toContain('via-hub');
  }, 60_000);

  test('kubectl logs and exec reach the pod through the hub', async () => {
    const out = await until('log lines', () => admin(['logs', pod, '-c', 'app']), (s) => s.includes(`${pod}/app line`)).catch(explain);
    expect(out).toContain(`${pod}/app line 1`);
    expect((await admin(['exec', pod, '-c', 'app', '--', 'sh', '-c', 'echo $((6 * 7))'])).trim()).toBe('42');
  }, 120_000);

  test("the node's requests through the hub are the node's: its own Node yes, another node's objects and admin actions no", async () => {
    const own = await onNode(['get', 'node', node, '-o', 'name']);
    expect(own.code).toBe(0);
    expect(own.stdout.trim()).toBe(`node/${node}`);
    // The apiserver's own view of who asks (SelfSubjectReview), also when the edge asks to be someone else.
    for (const extra of [[], ['--as=system:admin', '--as-group=system:masters']]) {
      const whoami = await onNode(['auth', 'whoami', '-o', 'json', ...extra]);
      expect(whoami.code).toBe(0);
      const user = JSON.parse(whoami.stdout).status.userInfo as { username: string; groups: string[] };
      expect(user.username).toBe(`system:node:${node}`);
      expect(user.groups).toContain('system:nodes');
      expect(user.groups).not.toContain('system:masters');
    }
    // kube-proxy's reads with the node's identity (deploy/rbac.yaml tether-node-proxier), through the hub.
    const slices = await onNode(['get', 'endpointslices', '-A', '-o', 'name']);
    expect(slices.code).toBe(0);
    expect(slices.stdout).toContain('endpointslice.discovery.k8s.io/kubernetes');
    // Read only: the grant lets nodes write no EndpointSlice.
    const write = await onNode(['delete', 'endpointslice', 'kubernetes', '-n', 'default']);
    expect(write.code).not.toBe(0);
    expect(write.stderr).toMatch(/forbidden/i);
    const secrets = await onNode(['get', 'secrets', '-A']);
    expect(secrets.code).not.toBe(0);
    expect(secrets.stderr).toContain(`User "system:node:${node}" cannot list resource "secrets"`);
    const crb = await onNode(['create', 'clusterrolebinding', `via-${process.pid}`, '--clusterrole=cluster-admin', `--user=system:node:${node}`]);
    expect(crb.code).not.toBe(0);
    // Refused either by the node's own authorization or, earlier, because the hub may not even act as a
    // node for that verb (deploy/rbac.yaml grants impersonate-on:arbitrary-node only for what nodes do).
    expect(crb.stderr).toMatch(new RegExp(`User "system:node:${node}" cannot create resource "clusterrolebindings"|cannot impersonate-on:arbitrary-node:create`));
    expect(crb.stderr).toMatch(/forbidden/i);
    // Impersonation headers from the edge are stripped: the request is still the node's, and still refused.
    const asAdmin = await onNode(['get', 'secrets', '-A', '--as=system:admin', '--as-group=system:masters']);
    expect(asAdmin.code).not.toBe(0);
    expect(asAdmin.stderr).toContain(`User "system:node:${node}" cannot list resource "secrets"`);
    const hubMetrics = (await Promise.all(hubs.map((h) => h.metrics()))).join('\n');
    expect(metricSum(hubMetrics, 'tether_hub_api_requests_total')).toBeGreaterThan(0);
  }, 120_000);

  test('the hub counts the node’s api bytes before and after compression, and compression saves', async () => {
    const text = (await Promise.all(hubs.map((h) => h.metrics()))).join('\n');
    const sum = (stage: string) => metricSum(text, 'tether_hub_api_bytes_total', (l) => l.includes(`node="${node}"`) && l.includes(`stage="${stage}"`));
    expect(sum('raw')).toBeGreaterThan(0);
    expect(sum('wire')).toBeGreaterThan(0);
    expect(sum('wire')).toBeLessThan(sum('raw'));
  }, 60_000);

  test('cut: the store answers on the node; heal: the node is Ready again without a relist', async () => {
    const listsBefore = await lists();
    await site.cut();
    try {
      await until('agent offline', async () => (await agentStatus()).online, (o) => o === false, 60_000).catch(explain);
      const offline = await onNode(['get', 'pods', '-A', '--field-selector', `spec.nodeName=${node}`, '-o', 'name']);
      expect(offline.code).toBe(0);
      expect(offline.stdout.trim()).toBe(`pod/${pod}`);
    } finally {
      await site.heal();
      await firewall();
    }
    await until('agent online', async () => (await agentStatus()).online, (o) => o === true, 120_000).catch(explain);
    await until('node Ready after heal', nodeReady, (s) => s === 'True', 180_000).catch(explain);
    expect(JSON.parse(await admin(['get', 'pod', pod, '-o', 'json'])).status.phase).toBe('Running');
    expect(await lists()).toBe(listsBefore);
  }, 600_000);

  test('when the replica holding the node stops, the agent moves its api streams to the other one', async () => {
    const holder = hubs.findIndex((h) => h.lines('agent connected').some((l) => l.node === node));
    expect(holder).toBeGreaterThanOrEqual(0);
    const listsBefore = await lists();
    await hubs[holder]!.stop();
    const other = hubs[1 - holder]!;
    await until('agent on the other replica', async () => other.lines('agent connected').filter((l) => l.node === node).length, (n) => n > 0, 120_000).catch(explain);
    await until('node answers through the other replica', async () => (await onNode(['get', 'node', node, '-o', 'name'])).stdout.trim(), (s) => s === `node/${node}`, 60_000).catch(explain);
    expect(await nodeReady()).toBe('True');
    // The kubelet's watches moved with the session: re-watched from their resourceVersion, no relist.
    const heartbeatsAfterMove = await until('node status written through the other replica', async () => {
      const n = JSON.parse(await admin(['get', 'lease', '-n', 'kube-node-lease', node, '-o', 'json'])) as { spec: { renewTime: string } };
      return Date.parse(n.spec.renewTime);
    }, (t) => t > Date.now() - 5_000, 120_000).catch(explain);
    expect(heartbeatsAfterMove).toBeGreaterThan(0);
    expect(await lists()).toBe(listsBefore);
  }, 300_000);
});
