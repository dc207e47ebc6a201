/**
 * tether-hub as users deploy it, on the real control plane: the release image (scripts/build.ts)
 * imported into the containerd of a real cloud node (kubelet, containerd, kube-proxy), and
 * `kubectl apply -k` on an overlay of deploy/ (image, NodePort, TLS Secret, replicas on the cloud
 * node) bringing up two replicas as Pods in `tether-system` under PodSecurity `restricted`.
 * kube-apiserver's egress selector points at the hub's CONNECT NodePort on the cloud node; an edge
 * node (a real kubelet behind tether-edge, joined with `tether-edge join`) on a site the cloud
 * cannot dial dials the hub's tunnel NodePort. Its bootstrap CSR is approved, its NodePool
 * filled and a PoolSet's workload placed on it by the controllers in the Pods; `kubectl logs`
 * and `exec` reach that workload through the in-cluster hub; deleting the hub Pod that holds the
 * node's tunnel moves the tunnel to the other replica, and a `kubectl logs -f` started before
 * ends (kubectl does not reconnect a follow) with the lines it had, and a new one works at once;
 * a SIGKILLed hub container (a crash) is survived the same way: the agent dials the NodePort
 * again, exec works, the kubelet restarts the container.
 *
 * The cluster is the suite's own (startCluster): its egress configuration names the NodePort.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUSYBOX_IMAGE } from '../scripts/images/test-images.ts';
import {
  HUB_NAMESPACE,
  HUB_NODE_PORTS,
  buildHubImage,
  createCloudSite,
  deployHub,
  isReady,
  routeSites,
  startCloudNode,
  type CloudSite,
  type DeployedHub,
  type HubImage,
} from './support/cloud-hub.ts';
import { startCluster, type Cluster } from './support/cluster.ts';
import { kubectlBinary } from './support/kubectl.ts';
import { createEdgeSite, type EdgeSite } from './support/netns.ts';
import { allowOutboundOnly } from './support/one-way-firewall.ts';
import { realNode, type RealNode } from './support/real-node.ts';
import { bunBin, run } from './support/run.ts';
import { until } from './support/wait.ts';

const isRoot = process.getuid?.() === 0;
const hubMain = fileURLToPath(new URL('../cloud/main.ts', import.meta.url));
const id = process.pid;
const cloudName = `cloud-${id}`;
const edgeName = `edge-hub-${id}`;
const pool = `hubpod-${id}`;
const ns = `hubpod-${id}`;
const app = 'ticker';
const work = mkdtempSync(join(tmpdir(), 'tether-hub-in-cluster-'));

interface PodJson {
  metadata: { name: string; labels?: Record<string, string>; ownerReferences?: { kind: string; name: string }[] };
  spec: { nodeName?: string };
  status: { phase?: string; containerStatuses?: { ready: boolean }[] };
}

describe.skipIf(!isRoot)('tether-hub deployed with kubectl apply -k, as Pods on a real cloud node', () => {
  let cloud: CloudSite;
  let image: HubImage;
  let cluster: Cluster;
  let cloudNode: RealNode;
  let hub: DeployedHub;
  let edgeSite: EdgeSite;
  let edge: RealNode;
  let workloadPod = '';

  const kubectl = (args: string[], input?: string) => cluster.kubectl(args, { input, timeoutMs: 60_000 });
  const ok = async (args: string[], input?: string) => {
    const r = await kubectl(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const json = async (args: string[]) => JSON.parse(await ok([...args, '-o', 'json']));
  const explain = async (e: unknown): Promise<never> => {
    const tail = (what: string, lines: string[] = []) => `\n--- ${what} ---\n${lines.slice(-25).join('\n')}`;
    const hubLogs = cluster ? (await cluster.kubectl(['logs', '-n', HUB_NAMESPACE, '-l', 'app.kubernetes.io/name=tether-hub', '--tail=15', '--prefix'], { timeoutMs: 15_000 })).stdout : '';
    const p = edge?.processes();
    throw new Error(
      `${(e as Error).message}${tail('hub pods', hubLogs.split('\n'))}${tail('edge agent', p?.agent?.log.filter((l) => !l.includes('"msg":"request"')))}${tail('edge kubelet', p?.kubelet?.log.filter((l) => /^[EW]\d{4}/.test(l)))}`,
    );
  };
  const hubPodNames = async () => (await hub.pods()).filter(isReady).map((p) => p.metadata.name);
  const tunnelHolder = async () => (await json(['get', 'lease', `tunnel-${edgeName}`, '-n', HUB_NAMESPACE]).catch(() => ({ spec: {} }))).spec.holderIdentity as string | undefined;

  beforeAll(async () => {
    // Before the cluster: kube-apiserver reads its egress configuration (the hub's NodePort) once.
    cloud = await createCloudSite(`hubc-${id % 100000}`, mkdtempSync(join(work, 'cloud-')));
    image = await buildHubImage(join(work, 'dist'));
    cluster = await startCluster({ hub: cloud.egress });
    cloudNode = await startCloudNode({ cluster, cloud, name: cloudName, images: [image.archive] }).catch(explain);
    hub = await deployHub({ cluster, cloud, cloudNode, image, replicas: 2 }).catch(explain);

    // The edge node: its pool, its site (only connections it opens to the apiserver and the hub's
    // tunnel NodePort pass), and `tether-edge join` with a token that names the in-cluster hub.
    await ok(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'apps.tether.dev/v1alpha1', kind: 'NodePool', metadata: { name: pool }, spec: { type: 'Edge' } }));
    edgeSite = await createEdgeSite(`hube-${id % 100000}`);
    await routeSites(cloud.site, edgeSite);
    await allowOutboundOnly(edgeSite, [Number(new URL(cluster.edgeServer).port), HUB_NODE_PORTS.tunnel]);
    const token = await run([bunBin, hubMain, 'token', 'create', '--kubeconfig', cluster.adminKubeconfig, '--ttl', '30m', '--hub', hub.agentUrl, '--pool', pool]);
    if (token.code !== 0) throw new Error(`tether-hub token create: ${token.stderr}`);
    const words = token.stdout.trim().split(/\s+/).slice(2);
    // The bootstrap CSR is approved by the CSR approver in the hub's Pods: no approver in this process.
    edge = await realNode({ cluster, site: edgeSite, name: edgeName, join: words, agentArgs: ['--hub-ca-file', hub.hubCaFile] }).catch(explain);
    await ok(['create', 'namespace', ns]);
  }, 1_800_000);

  afterAll(async () => {
    await edge?.destroy();
    await edgeSite?.destroy();
    await cloudNode?.destroy();
    await cloud?.site.destroy();
    await cluster?.stop();
    rmSync(work, { recursive: true, force: true });
  }, 300_000);

  test('kubectl apply -k on an overlay of deploy/ runs two hub replicas as Ready Pods from the image, under PodSecurity restricted', async () => {
    for (const made of ['namespace/tether-system', 'customresourcedefinition.apiextensions.k8s.io/poolsets.apps.tether.dev', 'serviceaccount/tether-hub',
      'clusterrole.rbac.authorization.k8s.io/tether-hub-controllers', 'service/tether-hub-nodeport', 'deployment.apps/tether-hub', 'poddisruptionbudget.policy/tether-hub']) {
      expect(hub.applied).toContain(`${made} created`);
    }
    expect(hub.applied).toMatch(/secret\/tether-hub-tls-[a-z0-9]+ created/);
    const pods = await hub.pods();
    expect(pods).toHaveLength(2);
    for (const p of pods) {
      expect(isReady(p)).toBe(true);
      expect(p.spec.nodeName).toBe(cloudName);
      expect(p.spec.containers[0]!.image).toBe(image.ref);
      expect(p.status.containerStatuses![0]!.image).toBe(image.ref);
    }
    const table = await ok(['get', 'pods', '-n', HUB_NAMESPACE]);
    for (const p of pods) expect(table).toMatch(new RegExp(`${p.metadata.name}\\s+1/1\\s+Running\\s+0`));
    // The namespace enforces `restricted`, so these Pods passed it: a Pod that does not is refused there.
    const namespace = await json(['get', 'namespace', HUB_NAMESPACE]);
    expect(namespace.metadata.labels['pod-security.kubernetes.io/enforce']).toBe('restricted');
    const refused = await kubectl(['run', 'not-restricted', '-n', HUB_NAMESPACE, `--image=${BUSYBOX_IMAGE}`, '--dry-run=server', '--', 'sleep', '1']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('violates PodSecurity "restricted:latest"');
  }, 120_000);

  test('the controllers run in a hub Pod: the holder of the leader Lease is one of the Pods', async () => {
    const names = await hubPodNames();
    const lease = await until('controllers Lease held', () => json(['get', 'lease', 'tether-hub-controllers', '-n', HUB_NAMESPACE]), (l) => !!l.spec?.holderIdentity, 60_000).catch(explain);
    expect(names).toContain(lease.spec.holderIdentity);
  }, 90_000);

  test('an edge node on a site the cloud cannot dial joins (CSR approved in the Pods), its tunnel held by a hub Pod, its NodePool filled', async () => {
    const node = await until('edge node Ready', async () => JSON.parse((await kubectl(['get', 'node', edgeName, '-o', 'json'])).stdout || '{}'),
      (n) => n.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True'), 240_000).catch(explain);
    expect(node.metadata.labels['apps.tether.dev/pool']).toBe(pool);
    const csrs = (await json(['get', 'csr'])).items as { spec: { username: string }; status: { conditions?: { type: string; reason?: string }[] } }[];
    const bootstrap = csrs.filter((c) => c.spec.username.startsWith('system:bootstrap:'));
    expect(bootstrap.length).toBeGreaterThan(0);
    for (const c of bootstrap) expect(c.status.conditions?.find((x) => x.type === 'Approved')?.reason).toBe('TetherBootstrap');
    const holder = await until('tunnel Lease held', tunnelHolder, (h) => !!h, 60_000).catch(explain);
    expect(await hubPodNames()).toContain(holder!);
    const np = await until('NodePool members', () => json(['get', 'nodepool', pool]), (p) => (p.status?.nodes ?? []).includes(edgeName), 60_000).catch(explain);
    expect(np.status.nodes).toEqual([edgeName]);
  }, 360_000);

  test('a PoolSet places its workload in the pool: the controllers in the Pods make its Deployment, whose pod runs a real container on the edge node', async () => {
    await ok(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'apps.tether.dev/v1alpha1',
      kind: 'PoolSet',
      metadata: { name: app, namespace: ns },
      spec: {
        pools: [pool],
        workload: {
          kind: 'Deployment',
          spec: {
            replicas: 1,
            selector: { matchLabels: { app } },
            template: {
              metadata: { labels: { app } },
              spec: {
                terminationGracePeriodSeconds: 2,
                containers: [{ name: 'app', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never', command: ['/bin/sh', '-c', 'i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 1; done'] }],
              },
            },
          },
        },
      },
    }));
    const deployments = await until('PoolSet Deployment', async () => (await json(['get', 'deployments', '-n', ns])).items as PodJson[],
      (ds) => ds.some((d) => d.metadata.ownerReferences?.some((r) => r.kind === 'PoolSet' && r.name === app)), 60_000).catch(explain);
    expect(deployments).toHaveLength(1);
    const pods = await until('workload pod running', async () => (await json(['get', 'pods', '-n', ns, '-l', `app=${app}`])).items as PodJson[],
      (ps) => ps.length === 1 && ps[0]!.status.phase === 'Running' && !!ps[0]!.status.containerStatuses?.[0]?.ready, 240_000).catch(explain);
    expect(pods[0]!.spec.nodeName).toBe(edgeName);
    expect(pods[0]!.metadata.labels?.['apps.tether.dev/pool']).toBe(pool);
    workloadPod = pods[0]!.metadata.name;
    const status = await until('PoolSet status', () => json(['get', 'poolset', app, '-n', ns]), (s) => s.status?.readyReplicas === 1, 60_000).catch(explain);
    expect(status.status.pools.map((p: { name: string; ready: number }) => [p.name, p.ready])).toEqual([[pool, 1]]);
  }, 360_000);

  test('kubectl logs and exec reach the edge pod through the in-cluster hub', async () => {
    // Two lines once the container has written two (it writes one a second from its start).
    const logs = await until('two log lines', () => ok(['logs', workloadPod, '-n', ns, '--tail=2']), (s) => s.split('\n').length === 3, 60_000).catch(explain);
    const [a, b] = [...logs.matchAll(/^tick (\d+)$/gm)].map((m) => Number(m[1]));
    expect(logs).toMatch(/^tick \d+\ntick \d+\n$/);
    expect(b).toBe(a! + 1);
    const out = await ok(['exec', workloadPod, '-n', ns, '--', 'sh', '-c', 'echo $((6 * 7)) $(hostname)']);
    expect(out.trim()).toBe(`42 ${workloadPod}`);
  }, 120_000);

  test("deleting the hub Pod that holds the node's tunnel moves it to the other replica; a kubectl logs -f started before ends with its lines, a new one follows", async () => {
    const before = await hubPodNames();
    expect(before).toHaveLength(2);
    const holder = (await tunnelHolder())!;
    expect(before).toContain(holder);
    const other = before.find((n) => n !== holder)!;

    const follow = spawn(kubectlBinary(), [`--kubeconfig=${cluster.adminKubeconfig}`, 'logs', '-f', '--tail=1', workloadPod, '-n', ns]);
    let text = '';
    let errText = '';
    follow.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
    follow.stderr.setEncoding('utf8').on('data', (d: string) => (errText += d));
    const ended = new Promise<number | null>((r) => follow.once('exit', (code) => r(code)));
    try {
      const ticks = () => [...text.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
      await until('followed lines', async () => ticks(), (t) => t.length >= 3, 60_000);

      await ok(['delete', 'pod', holder, '-n', HUB_NAMESPACE, '--wait=false']);
      const moved = await until('tunnel Lease on the other replica', tunnelHolder, (h) => h === other, 90_000).catch(explain);
      expect(moved).toBe(other);

      // kubectl does not reconnect a follow: once the stream through the deleted replica closes
      // (at the latest after the hub's shutdown grace), it exits, with the lines it had streamed.
      const code = await Promise.race([ended, new Promise<'running'>((r) => setTimeout(() => r('running'), 90_000))]);
      expect(code).not.toBe('running');
      const seen = ticks();
      expect(seen.length).toBeGreaterThanOrEqual(3);
      for (let i = 1; i < seen.length; i++) expect(seen[i]).toBe(seen[i - 1]! + 1); // no line lost or repeated while it ran
      console.log(`kubectl logs -f after the hub Pod went: exit ${code}, ${seen.length} lines, stderr ${JSON.stringify(errText.trim())}`);
      expect(code).toBe(0);
    } finally {
      if (follow.exitCode === null) follow.kill();
    }

    // Through the replica that holds the node now.
    const again = await ok(['logs', workloadPod, '-n', ns, '--tail=1']);
    expect(again).toMatch(/^tick \d+\n$/);
    const out = await ok(['exec', workloadPod, '-n', ns, '--', 'echo', 'still-here']);
    expect(out.trim()).toBe('still-here');
    // The Deployment replaces the deleted replica; the controllers still run in a Pod.
    const after = await hub.ready(2);
    expect(after.map((p) => p.metadata.name)).not.toContain(holder);
    const lease = await until('controllers Lease held by a live Pod', () => json(['get', 'lease', 'tether-hub-controllers', '-n', HUB_NAMESPACE]),
      (l) => after.some((p) => p.metadata.name === l.spec?.holderIdentity), 60_000).catch(explain);
    expect(after.map((p) => p.metadata.name)).toContain(lease.spec.holderIdentity);
  }, 420_000);

  test("a crash of the hub container holding the node's tunnel (SIGKILL): the agent reconnects through the NodePort, exec works again, the kubelet restarts the container", async () => {
    const pods = await hub.ready(2);
    const holder = (await tunnelHolder())!;
    const victim = pods.find((p) => p.metadata.name === holder)!;
    expect(victim).toBeDefined();
    const containerId = victim.status.containerStatuses![0]!.containerID!.replace(/^containerd:\/\//, '');
    const restarts = victim.status.containerStatuses![0]!.restartCount;
    // From the agent's whole log file (the in-memory tail is cut at 3000 lines; the agent logs every request).
    const agentLog = fileURLToPath(new URL(`../.tether/test/real-node/${edgeName}/agent.log`, import.meta.url));
    const connected = () => readFileSync(agentLog, 'utf8').split('\n').filter((l) => l.includes('"msg":"tunnel connected"')).length;
    const sessionsBefore = connected();

    const kill = await cloudNode.ctr(['tasks', 'kill', '--signal', 'SIGKILL', containerId]);
    expect(kill.code).toBe(0);
    // A new session: the dead process's connections closed, so the agent dialed again (the
    // NodePort picks a live replica, or the restarted container of the same Pod).
    await until('agent reconnected', async () => connected(), (n) => n > sessionsBefore, 60_000).catch(explain);
    const out = await until('exec through the new session', () => kubectl(['exec', workloadPod, '-n', ns, '--', 'echo', 'after-crash']), (r) => r.code === 0, 60_000).catch(explain);
    expect(out.stdout.trim()).toBe('after-crash');
    const restarted = await until('container restarted by the kubelet', async () => (await hub.pods()).find((p) => p.metadata.name === holder),
      (p) => (p?.status.containerStatuses?.[0]?.restartCount ?? 0) > restarts, 120_000).catch(explain);
    expect(restarted!.metadata.uid).toBe(victim.metadata.uid);
    const now = await until('tunnel Lease held by a Ready Pod', async () => ({ holder: await tunnelHolder(), ready: await hubPodNames() }),
      (x) => !!x.holder && x.ready.includes(x.holder), 60_000).catch(explain);
    console.log(`after SIGKILL of ${holder}'s container the tunnel is held by ${now.holder === holder ? 'the same Pod, restarted' : 'the other replica'}`);
  }, 300_000);
});
