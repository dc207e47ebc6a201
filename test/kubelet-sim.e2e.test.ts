/**
 * The kubelet simulator on the real control plane, from inside an edge network namespace, with
 * the node's own client certificate (system:node:<name>, so the Node authorizer and
 * NodeRestriction apply), driven by the real kubectl: the node becomes Ready, a Deployment's
 * pods run on it, `kubectl logs` (and `kubectl exec`, when the streams module is present) reach
 * it through the apiserver, and cutting its link makes it NotReady until the link heals.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sharedCluster, type Cluster } from './support/cluster.ts';
import { followLogLines } from './support/follow-logs.ts';
import { createEdgeSite, type EdgeSite } from './support/netns.ts';
import { until } from './support/wait.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('kubelet-sim.e2e.test.ts skipped: edge network namespaces need root');
const simMain = fileURLToPath(new URL('./support/kubelet-sim/main.ts', import.meta.url));
const hasStreams = existsSync(fileURLToPath(new URL('./support/kubelet-sim/streams/index.ts', import.meta.url)));

const node = `edge-sim-${process.pid}`;
const app = `sim-app-${process.pid}`;

describe.skipIf(!isRoot)('kubelet simulator on the real control plane', () => {
  let cluster: Cluster;
  let site: EdgeSite;
  let sim: ChildProcess;
  const simLog: string[] = [];

  const kubectl = async (args: string[], input?: string) => {
    const r = await cluster.kubectl(args, { input, timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const nodeReady = async () => {
    const n = JSON.parse(await kubectl(['get', 'node', node, '-o', 'json', '--ignore-not-found']) || '{}');
    return (n.status?.conditions ?? []).find((c: any) => c.type === 'Ready')?.status as string | undefined;
  };
  const appPods = async () => JSON.parse(await kubectl(['get', 'pods', '-l', `app=${app}`, '-o', 'json'])).items as any[];

  beforeAll(async () => {
    cluster = await sharedCluster();
    site = await createEdgeSite(`ksim-${process.pid}`);
    const cert = await cluster.issueClientCert(`system:node:${node}`, ['system:nodes']);
    sim = site.spawn([process.execPath, simMain, '--node-name', node, '--server', cluster.edgeServer,
      '--ca', cluster.caFile, '--cert', cert.certFile, '--key', cert.keyFile, '--address', site.address]);
    const keep = (d: Buffer) => {
      simLog.push(...String(d).trimEnd().split('\n'));
      simLog.splice(0, Math.max(0, simLog.length - 200));
    };
    sim.stdout!.on('data', keep);
    sim.stderr!.on('data', keep);
  }, 1_800_000); // a cold control-plane build may happen here

  afterAll(async () => {
    if (cluster) {
      await cluster.kubectl(['delete', 'deployment', app, '--ignore-not-found', '--wait=false']);
      await cluster.kubectl(['delete', 'node', node, '--ignore-not-found', '--wait=false']);
    }
    if (sim && sim.exitCode === null) {
      const exited = new Promise((r) => sim.once('exit', r));
      sim.kill('SIGTERM');
      await exited;
    }
    await site?.destroy();
  });

  const explain = (e: unknown) => {
    throw new Error(`${(e as Error).message}\n--- simulator log (last lines) ---\n${simLog.slice(-40).join('\n')}`);
  };

  test('kubectl get nodes lists the simulated node, and it becomes Ready', async () => {
    await until('node Ready', nodeReady, (s) => s === 'True').catch(explain);
    const wide = await kubectl(['get', 'nodes', '-o', 'wide']);
    const row = wide.split('\n').find((l) => l.startsWith(node + ' '));
    expect(row).toMatch(/\sReady\s/);
    expect(row).toContain(site.address);
    expect(row).toContain('v1.37.2');
  }, 180_000);

  test("a Deployment's pods are scheduled onto it and reported Running with pod IPs", async () => {
    const manifest = {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: app, namespace: 'default' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app } },
        template: {
          metadata: { labels: { app } },
          spec: { nodeSelector: { 'kubernetes.io/hostname': node }, containers: [{ name: 'app', image: 'registry.invalid/app:1' }] },
        },
      },
    };
    await kubectl(['apply', '-f', '-'], JSON.stringify(manifest));
    const pods = await until('pods Running', appPods, (ps) =>
      ps.length === 2 && ps.every((p) => p.status?.phase === 'Running' && p.status?.podIP)).catch(explain);
    for (const p of pods) {
      expect(p.spec.nodeName).toBe(node);
      expect(p.status.podIP.startsWith(site.address.split('.').slice(0, 3).join('.') + '.')).toBe(true);
      expect(p.status.conditions.find((c: any) => c.type === 'Ready').status).toBe('True');
    }
    const ready = await until('deployment available', async () => JSON.parse(await kubectl(['get', 'deployment', app, '-o', 'json'])),
      (d) => d.status?.readyReplicas === 2);
    expect(ready.status.readyReplicas).toBe(2);
  }, 180_000);

  test('kubectl logs reaches the simulated kubelet through the apiserver, and --follow streams new lines', async () => {
    const pod = (await appPods())[0].metadata.name as string;
    const out = await until('log lines', () => kubectl(['logs', pod, '-c', 'app']), (s) => s.includes(`${pod}/app line`));
    expect(out).toContain(`${pod}/app line 1`);

    const n = await followLogLines(cluster.adminKubeconfig, pod);
    expect(n[1]).toBe(n[0]! + 1);
    expect(n[2]).toBe(n[1]! + 1);
  }, 120_000);

  test.skipIf(!hasStreams)('kubectl exec runs a command through the simulated kubelet', async () => {
    const pod = (await appPods())[0].metadata.name as string;
    const out = await kubectl(['exec', pod, '-c', 'app', '--', 'echo', 'hello from the edge']);
    expect(out.trim()).toBe('hello from the edge');
  }, 120_000);

  test('cutting the link makes the node NotReady after the grace period; healing makes it Ready again', async () => {
    await until('node Ready', nodeReady, (s) => s === 'True');
    await site.cut();
    const during = await until('node NotReady', nodeReady, (s) => s !== 'True', 180_000).catch(explain);
    expect(during).toBe('Unknown'); // the node lifecycle controller: "Kubelet stopped posting node status"
    await site.heal();
    expect(await until('node Ready again', nodeReady, (s) => s === 'True', 180_000).catch(explain)).toBe('True');
    const pods = await until('pods Ready again', appPods, (ps) =>
      ps.length === 2 && ps.every((p) => p.status.conditions.find((c: any) => c.type === 'Ready')?.status === 'True')).catch(explain);
    expect(pods.length).toBe(2);
  }, 420_000);
});
