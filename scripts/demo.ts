#!/usr/bin/env bun
/**
 * `npm run demo`: the Tether story on a real control plane, start to finish, then everything is
 * stopped. Needs root (network namespaces).
 *
 *   1. start kube-apiserver, etcd, controller manager and scheduler (built once from source);
 *   2. an edge site (a network namespace) runs tether-edge and a kubelet simulator behind it;
 *   3. a Deployment runs on the edge node; kubectl on the node reads through the agent;
 *   4. the link is cut: the node keeps answering from its store, writes its status locally;
 *   5. the link heals: the offline writes reach the apiserver.
 *
 *   bun scripts/demo.ts [--keep]   # --keep leaves it all running until Ctrl-C
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Cluster, startCluster } from '../test/support/cluster.ts';
import { localClient, spawnAgent, until } from '../test/support/edge-agent.ts';
import { kubectlBinary } from '../test/support/kubectl.ts';
import { createEdgeSite, destroyAllSites } from '../test/support/netns.ts';

const keep = process.argv.includes('--keep');
const node = 'shop-floor-1';
const root = join(import.meta.dir, '..');
const work = mkdtempSync(join(tmpdir(), 'tether-demo-'));
// Local clients of the agent present certificates from its local CA (join writes them on a real node).
const localCaDir = join(work, 'local-ca');
const say = (s: string) => console.log(`\n\x1b[1m== ${s}\x1b[0m`);
const show = (s: string) => console.log(s.trimEnd().replace(/^/gm, '   '));

if (process.getuid?.() !== 0) {
  console.error('demo: needs root (it creates a network namespace for the edge site)');
  process.exit(1);
}

let cluster: Cluster | undefined;
try {
  say('starting the control plane (kube-apiserver, etcd, controller manager, scheduler v1.34)');
  cluster = await startCluster({ dir: join(work, 'cluster'), nodeMonitorGracePeriod: '20s' });
  const c = cluster;
  show(`apiserver ${c.server} (edge sites reach it at ${c.edgeServer})`);
  const admin = async (args: string[], input?: string) => (await c.kubectl(args, { input })).stdout;

  say(`edge site "${node}": tether-edge and a kubelet in a network namespace`);
  const site = await createEdgeSite('demo');
  const cert = await c.issueClientCert(`system:node:${node}`, ['system:nodes']);
  const kubelet = localClient(localCaDir, 'kubelet', work);
  const operator = localClient(localCaDir, 'kubectl', work);
  const agent = spawnAgent(site, ['--node-name', node, '--servers', c.edgeServer, '--ca-file', c.caFile, '--cert-file', cert.certFile,
    '--key-file', cert.keyFile, '--data-dir', join(work, 'store'), '--local-ca-dir', localCaDir, '--log-format', 'text', '--log-level', 'warn']);
  await until('agent', async () => agent.log.join('\n'), (l) => l.includes('proxy on'));
  const sim = site.spawn([process.execPath, join(root, 'test/support/kubelet-sim/main.ts'), '--node-name', node, '--kubeconfig', kubelet.kubeconfig,
    '--address', site.address, '--log-level', 'warn']);
  await until('node Ready', () => admin(['get', 'node', node, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']), (s) => s === 'True');
  show(await admin(['get', 'nodes', '-o', 'wide']));

  say('a workload on the edge node');
  const labels = { app: 'sensor-reader' };
  await admin(['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'sensor-reader', namespace: 'default' },
    spec: { replicas: 2, selector: { matchLabels: labels }, template: { metadata: { labels },
      spec: { nodeSelector: { 'kubernetes.io/hostname': node }, containers: [{ name: 'sensor', image: 'registry.invalid/sensor:1' }] } } },
  }));
  await until('pods Running', () => admin(['get', 'pods', '-l', 'app=sensor-reader', '--field-selector=status.phase=Running', '-o', 'name']), (s) => s.trim().split('\n').length === 2 && !s.includes('\n\n'));
  const onNode = (args: string[]) =>
    site.exec([kubectlBinary(), `--kubeconfig=${operator.kubeconfig}`, `--cache-dir=${mkdtempSync(join(work, 'kc-'))}`, '--request-timeout=10s', ...args]);
  const nodeView = async () => (await onNode(['get', 'pods', '-A', `--field-selector=spec.nodeName=${node}`, '-o', 'wide'])).stdout;
  say('kubectl on the edge node, through the agent (online)');
  show(await nodeView());

  say('cutting the link between the edge site and the cloud');
  await site.cut();
  const status = async () => JSON.parse((await site.exec([process.execPath, join(root, 'edge/main.ts'), 'status', '--json'])).stdout) as { online: boolean };
  const t0 = Date.now();
  await until('offline', status, (s) => !s.online);
  show(`tether-edge noticed in ${Date.now() - t0} ms`);
  say('kubectl on the edge node, through the agent (OFFLINE, empty kubectl cache: answered from the store)');
  show(await nodeView());
  say('meanwhile the cloud stops hearing from the node (node-monitor-grace-period 20s)');
  await until('node NotReady in the cloud', () => admin(['get', 'node', node, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']), (s) => s !== 'True', 120_000);
  show(await admin(['get', 'nodes']));
  say('while on the node, tether-edge keeps answering, and queues the status the kubelet keeps writing');
  show((await site.exec([process.execPath, join(root, 'edge/main.ts'), 'status'])).stdout);
  show(await nodeView());

  say('healing the link');
  await site.heal();
  await until('online', status, (s) => s.online);
  await until('outbox replayed', async () => JSON.parse((await site.exec([process.execPath, join(root, 'edge/main.ts'), 'status', '--json'])).stdout).store.outbox.status ?? 0, (n) => n === 0);
  await until('node Ready', () => admin(['get', 'node', node, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']), (s) => s === 'True', 120_000);
  show(await admin(['get', 'nodes']));
  show('the status the node wrote offline reached the apiserver; its pods were never lost:');
  show(await admin(['get', 'pods', '-o', 'wide']));

  if (keep) {
    say(`running; KUBECONFIG=${c.adminKubeconfig}; Ctrl-C stops everything`);
    await new Promise<void>((r) => process.once('SIGINT', () => r()));
  }
  sim.kill('SIGTERM');
  await agent.stop();
  await site.destroy();
  say('done');
} finally {
  await destroyAllSites();
  await cluster?.stop();
}
