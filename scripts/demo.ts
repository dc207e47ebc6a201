#!/usr/bin/env bun
/**
 * `npm run demo`: the Tether story on the real control plane, start to finish, then everything is
 * stopped. Needs root (network namespaces, containerd).
 *
 *   1. tether-hub's release image is built (`npm run build`'s OCI archive);
 *   2. kube-apiserver, etcd, controller manager and scheduler start, the apiserver's egress to
 *      nodes pointing at the hub's CONNECT NodePort;
 *   3. a cloud node (kubelet + containerd + kube-proxy) imports the image, and `kubectl apply -k`
 *      on an overlay of deploy/ runs two hub replicas as Pods there;
 *   4. an edge node (a real kubelet and containerd behind tether-edge) on a site the cloud cannot
 *      dial joins with `tether-edge join` and a bootstrap token; the hub's Pods approve it;
 *   5. a PoolSet places a workload in two pools (the shop floor and the cloud);
 *   6. `kubectl logs` and `kubectl exec` reach the edge pod through the tunnel the node dialed;
 *   7. the link is cut: the pod keeps running, kubectl on the node answers from the store;
 *      the node loses power and boots while still offline: its pod runs again from the store;
 *   8. the link heals: the node is Ready, its pod was never rescheduled.
 *
 *   bun scripts/demo.ts [--keep]   # --keep leaves it all running until Ctrl-C
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUSYBOX_IMAGE } from './images/test-images.ts';
import { CLOUD_NODE_KEY, HUB_NAMESPACE, HUB_NODE_PORTS, buildHubImage, createCloudSite, deployHub, routeSites, startCloudNode } from '../test/support/cloud-hub.ts';
import { type Cluster, startCluster } from '../test/support/cluster.ts';
import { localClient } from '../test/support/edge-agent.ts';
import { kubectlBinary } from '../test/support/kubectl.ts';
import { createEdgeSite, destroyAllSites } from '../test/support/netns.ts';
import { allowOutboundOnly } from '../test/support/one-way-firewall.ts';
import { type RealNode, realNode } from '../test/support/real-node.ts';
import { bunBin, run } from '../test/support/run.ts';
import { until } from '../test/support/wait.ts';

const keep = process.argv.includes('--keep');
const root = join(import.meta.dir, '..');
const hubMain = join(root, 'cloud/main.ts');
const edgeMain = join(root, 'edge/main.ts');
const edgeName = 'shop-floor-1';
const cloudName = 'cloud-1';
const [edgePool, cloudPool] = ['shop-floor', 'cloud'];
const ns = 'factory';
const app = 'sensor-reader';
const work = mkdtempSync(join(tmpdir(), 'tether-demo-'));
const started = performance.now();
const say = (s: string) => console.log(`\n\x1b[1m== ${s}\x1b[0m  (${((performance.now() - started) / 1000).toFixed(0)} s)`);
const show = (s: string) => console.log(s.trimEnd().replace(/^/gm, '   '));

if (process.getuid?.() !== 0) {
  console.error('demo: needs root (it creates network namespaces and runs containerd and kubelets)');
  process.exit(1);
}

let cluster: Cluster | undefined;
const nodes: RealNode[] = [];
try {
  say("building tether-hub's release image (the OCI archive `npm run build` writes)");
  const image = await buildHubImage(join(work, 'dist'));
  show(`${image.archive} → ${image.ref}`);

  say('starting the control plane (kube-apiserver, etcd, controller manager, scheduler, built from source)');
  const cloud = await createCloudSite('demo-cloud', mkdtempSync(join(work, 'cloud-')));
  cluster = await startCluster({ dir: join(work, 'cluster'), hub: cloud.egress, nodeMonitorGracePeriod: '20s' });
  const c = cluster;
  show(`apiserver ${c.server}; its egress to nodes goes to tether-hub's CONNECT NodePort ${HUB_NODE_PORTS.connect}`);
  const kubectl = async (args: string[], input?: string) => {
    const r = await c.kubectl(args, { input, timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const nodeReady = (name: string) => () => kubectl(['get', 'node', name, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);

  say(`a cloud node "${cloudName}": a real kubelet, containerd and kube-proxy, the hub's image imported`);
  const cloudNode = await startCloudNode({ cluster: c, cloud, name: cloudName, images: [image.archive] });
  nodes.push(cloudNode);
  await until('cloud node Ready', nodeReady(cloudName), (s) => s === 'True', 240_000);

  say('kubectl apply -k: tether-hub from its image, two replicas as Pods (PodSecurity restricted)');
  const hub = await deployHub({ cluster: c, cloud, cloudNode, image, replicas: 2 });
  show(`kubectl apply -k ${hub.overlay}`);
  show(hub.applied);
  show(await kubectl(['get', 'pods', '-n', HUB_NAMESPACE, '-o', 'wide']));

  say(`node pools: "${edgePool}" (autonomous: its pods ride out a lost link) and "${cloudPool}"`);
  await kubectl(['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'v1', kind: 'List', items: [
      { apiVersion: 'apps.tether.dev/v1alpha1', kind: 'NodePool', metadata: { name: edgePool }, spec: { type: 'Edge', annotations: { 'apps.tether.dev/autonomy-duration': '0' } } },
      { apiVersion: 'apps.tether.dev/v1alpha1', kind: 'NodePool', metadata: { name: cloudPool }, spec: { type: 'Cloud' } },
    ],
  }));
  await kubectl(['label', 'node', cloudName, `apps.tether.dev/pool=${cloudPool}`]);

  say(`edge node "${edgeName}": a site the cloud cannot dial, joined with tether-edge join`);
  const site = await createEdgeSite('demo-edge');
  await routeSites(cloud.site, site);
  // Only connections the site opens pass: to the apiserver and to the hub's tunnel NodePort.
  await allowOutboundOnly(site, [Number(new URL(c.edgeServer).port), HUB_NODE_PORTS.tunnel]);
  const token = await run([bunBin, hubMain, 'token', 'create', '--kubeconfig', c.adminKubeconfig, '--ttl', '30m', '--hub', hub.agentUrl, '--pool', edgePool]);
  if (token.code !== 0) throw new Error(`tether-hub token create: ${token.stderr}`);
  const join_ = token.stdout.trim().split(/\s+/).slice(2);
  show(`tether-hub token create → tether-edge join ${join_.map((w) => (w.length > 40 ? `${w.slice(0, 12)}…` : w)).join(' ')}`);
  const edge = await realNode({ cluster: c, site, name: edgeName, join: join_, agentArgs: ['--hub-ca-file', hub.hubCaFile] });
  nodes.push(edge);
  await until('edge node Ready', nodeReady(edgeName), (s) => s === 'True', 240_000);
  show(await kubectl(['get', 'nodes', '-L', 'apps.tether.dev/pool', '-o', 'wide']));
  show(await kubectl(['get', 'csr']));

  say('a PoolSet places the workload in both pools');
  await kubectl(['create', 'namespace', ns]);
  await kubectl(['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'apps.tether.dev/v1alpha1', kind: 'PoolSet', metadata: { name: app, namespace: ns },
    spec: {
      pools: [edgePool, cloudPool],
      workload: {
        kind: 'Deployment',
        spec: {
          replicas: 1, selector: { matchLabels: { app } },
          template: {
            metadata: { labels: { app } },
            spec: {
              tolerations: [{ key: CLOUD_NODE_KEY, operator: 'Exists', effect: 'NoSchedule' }],
              terminationGracePeriodSeconds: 2,
              containers: [{ name: 'reader', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never',
                command: ['/bin/sh', '-c', 'i=0; while :; do i=$((i+1)); echo "reading $i on $(hostname)"; sleep 1; done'] }],
            },
          },
        },
      },
    },
  }));
  const podOn = async (node: string) => {
    const items = JSON.parse(await kubectl(['get', 'pods', '-n', ns, '-l', `app=${app}`, '-o', 'json'])).items as {
      metadata: { name: string; uid: string }; spec: { nodeName?: string }; status: { phase?: string; containerStatuses?: { ready: boolean }[] };
    }[];
    return items.find((p) => p.spec.nodeName === node && p.status.phase === 'Running' && p.status.containerStatuses?.[0]?.ready);
  };
  const edgePod = (await until('edge pod running', () => podOn(edgeName), (p) => !!p, 300_000))!;
  await until('cloud pod running', () => podOn(cloudName), (p) => !!p, 300_000);
  await until('PoolSet ready', () => kubectl(['get', 'poolset', app, '-n', ns, '-o', 'jsonpath={.status.readyReplicas}']), (s) => s === '2', 120_000);
  show(await kubectl(['get', 'poolsets,deployments', '-n', ns]));
  show(await kubectl(['get', 'pods', '-n', ns, '-o', 'wide']));

  say('kubectl logs and kubectl exec into the edge pod, through the tunnel the node dialed out');
  show(`$ kubectl logs -n ${ns} ${edgePod.metadata.name} --tail=3`);
  show(await until('log lines', () => kubectl(['logs', '-n', ns, edgePod.metadata.name, '--tail=3']), (s) => s.includes('reading'), 60_000));
  show(`$ kubectl exec -n ${ns} ${edgePod.metadata.name} -- sh -c 'echo "$(hostname): $((6 * 7))"'`);
  show(await kubectl(['exec', '-n', ns, edgePod.metadata.name, '--', 'sh', '-c', 'echo "$(hostname): $((6 * 7))"']));

  const operator = localClient(join(edge.root, 'etc/tether/pki/local'), 'operator', work);
  const onNode = async (args: string[]) => {
    const r = await edge.exec([kubectlBinary(), `--kubeconfig=${operator.kubeconfig}`, `--cache-dir=${mkdtempSync(join(work, 'kc-'))}`, '--request-timeout=20s', ...args], { timeoutMs: 60_000 });
    return `${r.stderr}${r.stdout}`;
  };
  const nodeView = () => onNode(['get', 'pods', '-n', ns, `--field-selector=spec.nodeName=${edgeName}`, '-o', 'wide']);
  const status = async () => JSON.parse((await edge.exec([bunBin, edgeMain, 'status', '--json'], { timeoutMs: 20_000 })).stdout) as { online: boolean; store: { outbox: Record<string, number> } };
  const running = async () => {
    const tasks = (await edge.ctr(['tasks', 'ls'])).stdout.split('\n').filter((l) => /\bRUNNING\b/.test(l)).map((l) => l.split(/\s+/)[0]!);
    const mine = (await edge.ctr(['containers', 'ls', 'labels."io.kubernetes.container.name"==reader'])).stdout.split('\n').slice(1).map((l) => l.split(/\s+/)[0]!);
    return mine.filter((id) => id && tasks.includes(id));
  };
  say('kubectl on the edge node, through tether-edge (online)');
  show(await nodeView());

  say('cutting the link between the shop floor and the cloud');
  await site.cut();
  const t0 = performance.now();
  await until('agent offline', status, (s) => !s.online, 120_000);
  show(`tether-edge noticed in ${((performance.now() - t0) / 1000).toFixed(1)} s; the container keeps running: ${(await running()).join(', ')}`);
  say('kubectl on the edge node, OFFLINE (an empty kubectl cache: answered from the store)');
  show(await nodeView());
  say('the cloud stops hearing from the node; the pool is autonomous, so nothing is evicted');
  await until('edge node NotReady in the cloud', nodeReady(edgeName), (s) => s !== 'True', 120_000);
  show(await kubectl(['get', 'nodes']));
  show(await kubectl(['get', 'pods', '-n', ns, '-o', 'wide']));

  say('power cut on the edge node, still offline: every process and container is killed, /run emptied');
  const before = await running();
  await edge.powerCut();
  show(`containers running after the power cut: ${(await running().catch(() => [])).length}`);
  const t1 = performance.now();
  await edge.boot();
  const again = await until('pod running again', running, (ids) => ids.length === 1, 300_000);
  show(`booted offline: the pod's container runs again from the stored pod spec in ${((performance.now() - t1) / 1000).toFixed(1)} s (${before[0]?.slice(0, 12)} → ${again[0]?.slice(0, 12)})`);
  show(`tether-edge online: ${(await status()).online}`);
  show(await nodeView());

  say('healing the link');
  await site.heal();
  await until('agent online', status, (s) => s.online, 120_000);
  await until('edge node Ready', nodeReady(edgeName), (s) => s === 'True', 180_000);
  await until('outbox drained', status, (s) => Object.values(s.store.outbox).reduce((a, b) => a + b, 0) === 0, 120_000);
  show(await kubectl(['get', 'nodes']));
  const healed = await until('pod status caught up', () => podOn(edgeName), (p) => !!p, 180_000);
  show(`the same pod (uid ${healed!.metadata.uid === edgePod.metadata.uid ? 'unchanged' : 'CHANGED'}), never rescheduled:`);
  show(await kubectl(['get', 'pods', '-n', ns, '-o', 'wide']));
  show(await until('log lines', () => kubectl(['logs', '-n', ns, edgePod.metadata.name, '--tail=2']), (s) => s.includes('reading'), 60_000));
  if (healed!.metadata.uid !== edgePod.metadata.uid) throw new Error('the edge pod was replaced during the outage');

  if (keep) {
    say(`running; KUBECONFIG=${c.adminKubeconfig}; Ctrl-C stops everything`);
    await new Promise<void>((r) => process.once('SIGINT', () => r()));
  }
  say(`done in ${((performance.now() - started) / 1000).toFixed(0)} s; stopping everything`);
} finally {
  for (const n of nodes.reverse()) await n.destroy().catch((e) => console.error(`demo: stop ${n.name}: ${(e as Error).message}`));
  await destroyAllSites();
  await cluster?.stop();
  rmSync(work, { recursive: true, force: true });
}
