/**
 * tether-edge on the real control plane: the agent and the kubelet simulator run inside an edge
 * site; the simulator uses the kubelet's local client certificate (from the agent's local CA, over
 * HTTPS, as join sets it up); kubectl (the real one) talks to the agent from inside the site, as an
 * operator on the node would, with a local client certificate of its own (CN=kubectl): the agent
 * lends it the node's identity and the Node authorizer shows it what the node may see. Online, everything passes through; with the link cut,
 * reads, watches and the node's own writes are answered from the store (the agent runs with its
 * default cached components, so kubectl is served from what the kubelet cached); after kill -9 the
 * restarted agent answers the same; after the heal the offline writes reach the apiserver and
 * clients resume their watches without relisting.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Cluster, sharedCluster } from './support/cluster.ts';
import { type EdgeAgentProcess, type LocalClient, localClient, requestInSite, spawnAgent, until } from './support/edge-agent.ts';
import { kubectlBinary } from './support/kubectl.ts';
import { type EdgeSite, createEdgeSite } from './support/netns.ts';

const isRoot = process.getuid?.() === 0;
const simMain = fileURLToPath(new URL('./support/kubelet-sim/main.ts', import.meta.url));
const edgeMain = fileURLToPath(new URL('../edge/main.ts', import.meta.url));
const node = `edge-agent-${process.pid}`;
const app = `agent-app-${process.pid}`;
const ns = 'default';
const PROXY = 'https://127.0.0.1:10261';

describe.skipIf(!isRoot)('tether-edge on the real control plane', () => {
  let cluster: Cluster;
  let site: EdgeSite;
  let agent: EdgeAgentProcess;
  let sim: ChildProcess;
  let agentArgs: string[];
  const work = mkdtempSync(join(tmpdir(), 'tether-agent-e2e-'));
  const caDir = join(work, 'local-ca');
  const kubelet: LocalClient = localClient(caDir, 'kubelet', work);
  const kubectlClient: LocalClient = localClient(caDir, 'kubectl', work);
  const before: Record<string, string[]> = {};

  const admin = async (args: string[], input?: string) => {
    const r = await cluster.kubectl(args, { input, timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  /** kubectl inside the edge site, through the agent, with a fresh (empty) kubectl cache each time. */
  const viaAgent = async (args: string[]) => {
    const cacheDir = mkdtempSync(join(work, 'kcache-'));
    return site.exec(
      [kubectlBinary(), `--kubeconfig=${kubectlClient.kubeconfig}`, `--cache-dir=${cacheDir}`, '--request-timeout=20s', ...args],
      { timeoutMs: 60_000 },
    );
  };
  const namesVia = async (args: string[]) => {
    const r = await viaAgent([...args, '-o', 'json']);
    if (r.code !== 0) throw new Error(`kubectl via agent ${args.join(' ')}: ${r.stderr}`);
    return (JSON.parse(r.stdout).items as { metadata: { name: string } }[]).map((o) => o.metadata.name).sort();
  };
  const agentStatus = async () => {
    const r = await site.exec([process.execPath, edgeMain, 'status', '--json'], { timeoutMs: 20_000 });
    return JSON.parse(r.stdout) as {
      online: boolean;
      offlineWatches: number;
      store: { ok: boolean; objects: Record<string, number>; outbox: Record<string, number>; views: Record<string, number> };
    };
  };
  const metric = async (name: string, match: (labels: string) => boolean) => {
    const r = await site.exec([process.execPath, '-e', `console.log(await (await fetch('http://127.0.0.1:10267/metrics')).text())`], { timeoutMs: 20_000 });
    let sum = 0;
    for (const line of r.stdout.split('\n')) {
      const m = line.match(new RegExp(`^${name}(\\{[^}]*\\})? ([0-9.e+]+)$`));
      if (m && match(m[1] ?? '')) sum += Number(m[2]);
    }
    return sum;
  };
  const explain = (e: unknown): never => {
    throw new Error(`${(e as Error).message}\n--- agent log ---\n${agent?.log.slice(-40).join('\n')}`);
  };

  beforeAll(async () => {
    cluster = await sharedCluster();
    site = await createEdgeSite(`agent-${process.pid}`);
    const cert = await cluster.issueClientCert(`system:node:${node}`, ['system:nodes']);
    agentArgs = [
      '--node-name', node, '--servers', cluster.edgeServer, '--ca-file', cluster.caFile, '--cert-file', cert.certFile,
      '--key-file', cert.keyFile, '--data-dir', join(work, 'store'), '--local-ca-dir', caDir, '--log-format', 'text',
    ];
    agent = spawnAgent(site, agentArgs);
    await until('agent listening', async () => agent.log.join('\n'), (l) => l.includes(`proxy on ${PROXY}`)).catch(explain);
    sim = site.spawn([process.execPath, simMain, '--node-name', node, '--kubeconfig', kubelet.kubeconfig, '--address', site.address]);
  }, 1_800_000);

  afterAll(async () => {
    if (cluster) {
      await cluster.kubectl(['delete', 'deployment', app, '--ignore-not-found', '--wait=false']);
      await cluster.kubectl(['delete', 'node', node, '--ignore-not-found', '--wait=false']);
      await cluster.kubectl(['delete', 'configmap,service', '-n', ns, '-l', `tether-e2e=${process.pid}`, '--ignore-not-found']);
    }
    sim?.kill('SIGTERM');
    await agent?.stop();
    await site?.destroy();
  });

  test('online: the kubelet simulator and kubectl work through the agent', async () => {
    const ready = async () =>
      ((JSON.parse((await admin(['get', 'node', node, '-o', 'json', '--ignore-not-found'])) || '{}').status?.conditions ?? []) as { type: string; status: string }[])
        .find((c) => c.type === 'Ready')?.status;
    await until('node Ready', ready, (s) => s === 'True').catch(explain);
    const labels = { app, 'tether-e2e': String(process.pid) };
    await admin(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1', kind: 'List', items: [
        { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: app, namespace: ns, labels },
          spec: { replicas: 2, selector: { matchLabels: { app } }, template: { metadata: { labels },
            spec: {
              nodeSelector: { 'kubernetes.io/hostname': node },
              containers: [{ name: 'app', image: 'registry.invalid/app:1', volumeMounts: [{ name: 'config', mountPath: '/config' }] }],
              volumes: [{ name: 'config', configMap: { name: `${app}-config` } }],
            } } } },
        { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${app}-config`, namespace: ns, labels }, data: { mode: 'edge' } },
        { apiVersion: 'v1', kind: 'Service', metadata: { name: `${app}-svc`, namespace: ns, labels }, spec: { selector: { app }, ports: [{ port: 80 }] } },
      ],
    }));
    const onNode = `--field-selector=spec.nodeName=${node}`;
    await until('pods Running', async () => JSON.parse(await admin(['get', 'pods', '-n', ns, '-l', `app=${app}`, '-o', 'json'])).items as { status: { phase: string } }[],
      (ps) => ps.length === 2 && ps.every((p) => p.status.phase === 'Running'));
    const pods = await until('pods Running through the agent',
      async () => namesVia(['get', 'pods', '-A', `--field-selector=spec.nodeName=${node},status.phase=Running`, '-l', `app=${app}`]), (p) => p.length === 2);
    expect(pods).toHaveLength(2);
    before.pods = pods;
    before.nodePods = await namesVia(['get', 'pods', '-n', ns, onNode]);
    expect(before.nodePods).toEqual(expect.arrayContaining(pods));
    before.nodes = await namesVia(['get', 'nodes', `--field-selector=metadata.name=${node}`]);
    expect(before.nodes).toEqual([node]);
    const cm = await until('the node may read its pods\' ConfigMap', () => viaAgent(['get', 'configmap', `${app}-config`, '-n', ns, '-o', 'json']), (r) => r.code === 0);
    before.configmap = [JSON.parse(cm.stdout).data.mode];
    expect(before.configmap).toEqual(['edge']);
    before.services = await namesVia(['get', 'services', '-n', ns]);
    expect(before.services).toContain(`${app}-svc`);
    // The Node authorizer still applies through the agent: the node may not list every pod.
    const forbidden = await viaAgent(['get', 'pods', '-A']);
    expect(forbidden.code).not.toBe(0);
    expect(forbidden.stderr).toContain('can only list/watch pods with spec.nodeName field selector');
    const st = await agentStatus();
    expect(st.online).toBe(true);
    expect(st.store.views.kubelet).toBeGreaterThan(0);
    expect(st.store.objects['v1/pods']).toBeGreaterThanOrEqual(2);
  }, 300_000);

  test('offline: kubectl through the agent gets the cached data, with selectors, discovery included', async () => {
    await site.cut();
    await until('agent offline', agentStatus, (s) => !s.online).catch(explain);
    const onNode = `--field-selector=spec.nodeName=${node}`;
    expect(await namesVia(['get', 'pods', '-A', onNode, '-l', `app=${app}`])).toEqual(before.pods!);
    expect(await namesVia(['get', 'pods', '-n', ns, onNode])).toEqual(before.nodePods!);
    expect(await namesVia(['get', 'pods', '-A', onNode, '-l', `app=${app},tether-e2e!=${process.pid}`])).toEqual([]);
    expect(await namesVia(['get', 'pods', '-A', `--field-selector=spec.nodeName=${node},status.phase=Running`, '-l', `app in (${app})`])).toEqual(before.pods!);
    expect(await namesVia(['get', 'nodes', `--field-selector=metadata.name=${node}`])).toEqual(before.nodes!);
    const cm = await viaAgent(['get', 'configmap', `${app}-config`, '-n', ns, '-o', 'json']);
    expect(cm.code).toBe(0);
    expect(JSON.parse(cm.stdout).data.mode).toBe(before.configmap![0]!);
    expect(await namesVia(['get', 'services', '-n', ns])).toEqual(before.services!);
    // The table form kubectl prints by default works too (discovery from the agent, empty kubectl cache).
    const table = await viaAgent(['get', 'pods', '-A', onNode, '-l', `app=${app}`, '-o', 'wide']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/NAMESPACE\s+NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE/);
    for (const p of before.pods!) expect(table.stdout).toMatch(new RegExp(`${p}\\s+1/1\\s+Running\\s+0\\s+\\S+\\s+198\\.18\\.\\S+\\s+${node}`));
    expect(table.stderr).toContain("answered from the node's cache"); // kubectl prints the agent's Warning
  }, 180_000);

  test('offline: a watch opened offline receives the events of offline status writes', async () => {
    const cacheDir = mkdtempSync(join(work, 'kcache-'));
    const watchesBefore = (await agentStatus()).offlineWatches;
    const watch = site.spawn([kubectlBinary(), `--kubeconfig=${kubectlClient.kubeconfig}`, `--cache-dir=${cacheDir}`,
      'get', 'nodes', `--field-selector=metadata.name=${node}`, '--watch-only', '--output-watch-events', '-o', 'json']);
    let out = '';
    watch.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    try {
      // A status write the node makes while offline, with a condition only this test writes.
      const patch = JSON.stringify({ status: { conditions: [{ type: 'TetherOfflineProbe', status: 'True', reason: 'WrittenOffline', message: 'written while the link was cut' }] } });
      await until('kubectl watching the agent', agentStatus, (st) => st.offlineWatches > watchesBefore, 60_000).catch(explain);
      // As the kubelet: with its local certificate (its User-Agent alone would not do).
      const r = await requestInSite(site, {
        method: 'PATCH', path: `/api/v1/nodes/${node}/status`, body: patch, headers: { 'content-type': 'application/strategic-merge-patch+json' },
        caPem: kubelet.caPem, certPem: kubelet.certPem, keyPem: kubelet.keyPem,
      }, work);
      expect(r.status).toBe(200);
      expect(r.body.status.conditions.map((c: { type: string }) => c.type)).toContain('TetherOfflineProbe');
      const ev = await until('MODIFIED event with the offline write', async () => out, (o) => o.includes('TetherOfflineProbe'), 60_000).catch(explain);
      const events = ev.trim().split('\n').map((l) => JSON.parse(l) as { type: string; object: { status: { conditions: { type: string }[] } } });
      const probe = events.find((e) => e.object.status.conditions.some((c) => c.type === 'TetherOfflineProbe'));
      expect(probe?.type).toBe('MODIFIED');
      const st = await agentStatus();
      expect(st.store.outbox.status).toBeGreaterThan(0);
    } finally {
      watch.kill();
    }
  }, 120_000);

  test('kill -9 while offline: the restarted agent gives the same answers without the cloud', async () => {
    const watching = (await agentStatus()).offlineWatches;
    expect(watching).toBeGreaterThan(0); // the kubelet simulator's watches, served from the store
    const exitCode = await agent.stop('SIGKILL');
    expect(exitCode).toBeNull();
    agent = spawnAgent(site, agentArgs);
    await until('agent listening again', async () => agent.log.join('\n'), (l) => l.includes('proxy on'), 30_000).catch(explain);
    expect(await namesVia(['get', 'pods', '-A', `--field-selector=spec.nodeName=${node}`, '-l', `app=${app}`])).toEqual(before.pods!);
    expect(await namesVia(['get', 'nodes', `--field-selector=metadata.name=${node}`])).toEqual(before.nodes!);
    expect((await agentStatus()).online).toBe(false);
    // The kubelet simulator finds the restarted agent and watches through it again, offline.
    await until('the kubelet watching again', agentStatus, (st) => st.offlineWatches >= watching, 90_000).catch(explain);
  }, 180_000);

  test('heal: the outbox reaches the apiserver, and clients resume their watches without relisting', async () => {
    const listsBefore = await metric('tether_proxy_requests_total', (l) => l.includes('verb="list"') && l.includes('source="upstream"'));
    await site.heal();
    await until('agent online', agentStatus, (s) => s.online).catch(explain);
    const conditions = await until(
      'offline write replayed',
      async () => (JSON.parse(await admin(['get', 'node', node, '-o', 'json'])).status.conditions as { type: string; reason?: string }[]),
      (cs) => cs.some((c) => c.type === 'TetherOfflineProbe'),
      60_000,
    ).catch(explain);
    expect(conditions.find((c) => c.type === 'TetherOfflineProbe')?.reason).toBe('WrittenOffline');
    await until('outbox empty', agentStatus, (s) => (s.store.outbox.status ?? 0) === 0, 60_000).catch(explain);
    // The kubelet simulator's watches were re-watched upstream by the agent in the same response from their resourceVersion.
    await until('watches resumed upstream', () => metric('tether_proxy_requests_total', (l) => l.includes('verb="watch"') && l.includes('source="upstream"')), (n) => n > 0, 60_000);
    const listsAfter = await metric('tether_proxy_requests_total', (l) => l.includes('verb="list"') && l.includes('source="upstream"'));
    if (listsAfter !== listsBefore) explain(new Error(`relisted upstream: ${listsBefore} -> ${listsAfter}`));
    expect(listsAfter).toBe(listsBefore);
    // Nothing reverted: the pods are still there and Running.
    const pods = JSON.parse(await admin(['get', 'pods', '-n', ns, '-l', `app=${app}`, '-o', 'json'])).items as { status: { phase: string } }[];
    expect(pods.map((p) => p.status.phase)).toEqual(['Running', 'Running']);
  }, 180_000);
});
