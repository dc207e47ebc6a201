/**
 * A real edge node on the real control plane: containerd, runc and the CNI plugins from Debian, the
 * upstream kubelet and kube-proxy (built from the same module as the control plane) and
 * tether-edge, joined with `tether-edge join` and a bootstrap token, in an edge site the cloud
 * cannot dial (only site → cloud connections pass). kube-apiserver's `cluster` egress goes to
 * tether-hub, so `kubectl logs` and `exec` reach the kubelet through the tunnel the agent dialed.
 *
 * In order: join → Ready → a Deployment's pod runs a real container (a ConfigMap and a Secret
 * mounted); the link is cut → the container keeps running, the kubelet restarts nothing, kubectl on
 * the node answers from the store, the kubelet's status writes queue; still cut, a power cut (every
 * process and container SIGKILLed, /run emptied) and a boot → the pod's container runs again from the
 * cached pod spec with its volumes from the store; heal → Ready, the apiserver's pod status matches
 * what runs, the pod was never deleted or rescheduled, and the apiserver saw no relist from the node.
 * Then kube-proxy's rules for a Service with endpoints in two pools hold only the node's own pool's,
 * online and after a restart offline.
 *
 * The pod tolerates the unreachable/not-ready taints without a time limit (as tether-hub's autonomy
 * controller makes an autonomous node's pods do, test/pools-autonomy.e2e.test.ts), so the node
 * lifecycle controller does not evict it during the cut: what is tested is the node's side.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUSYBOX_IMAGE } from '../scripts/images/test-images.ts';
import { startCsrApprover, type CsrApprover } from './support/cluster.ts';
import { localClient, type LocalClient } from './support/edge-agent.ts';
import type { HubProcess } from './support/hub-process.ts';
import { kubectlBinary } from './support/kubectl.ts';
import { createEdgeSite, type EdgeSite } from './support/netns.ts';
import { allowOutboundOnly } from './support/one-way-firewall.ts';
import { realNode, type RealNode } from './support/real-node.ts';
import { bunBin, run } from './support/run.ts';
import { startTunnelRig, type TunnelRig } from './support/tunnel-rig.ts';
import { until } from './support/wait.ts';

const isRoot = process.getuid?.() === 0;
const hubMain = fileURLToPath(new URL('../cloud/main.ts', import.meta.url));
const edgeMain = fileURLToPath(new URL('../edge/main.ts', import.meta.url));
const id = process.pid;
const nodeName = `edge-real-${id}`;
const app = `real-app-${id}`;
const [poolA, poolB, other] = [`real-a-${id}`, `real-b-${id}`, `real-b1-${id}`];
const ns = 'default';
const work = mkdtempSync(join(tmpdir(), 'tether-real-node-'));

interface PodJson {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  spec: { nodeName?: string };
  status: { phase?: string; containerStatuses?: { name: string; containerID?: string; restartCount: number; ready: boolean; state: { running?: { startedAt: string } } }[] };
}

describe.skipIf(!isRoot)('a real kubelet, containerd and kube-proxy behind tether-edge', () => {
  let rig: TunnelRig;
  let hub: HubProcess;
  let approver: CsrApprover;
  let site: EdgeSite;
  let node: RealNode;
  let operator: LocalClient;
  let pod: PodJson;
  /** The containerd task ids of the pod's app container, and the PID it ran as, before the cut. */
  let appContainerId = '';
  let podUid = '';

  const kubectl = (args: string[], input?: string) => rig.cluster.kubectl(args, { input, timeoutMs: 60_000 });
  const ok = async (args: string[], input?: string) => {
    const r = await kubectl(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const explain = (e: unknown): never => {
    const p = node?.processes();
    const tail = (what: string, lines?: string[]) => `\n--- ${what} ---\n${(lines ?? []).slice(-30).join('\n')}`;
    throw new Error(
      `${(e as Error).message}${tail('agent', p?.agent?.log.filter((l) => !l.includes('"msg":"request"')))}${tail('kubelet', p?.kubelet?.log.filter((l) => /^[EW]\d{4}/.test(l)))}${tail('containerd', p?.containerd?.log.filter((l) => /level=(error|warning)/.test(l)))}`,
    );
  };
  const thePod = async (): Promise<PodJson> => {
    const items = JSON.parse(await ok(['get', 'pods', '-n', ns, '-l', `app=${app}`, '-o', 'json'])).items as PodJson[];
    if (items.length !== 1) throw new Error(`expected one pod of ${app}, found ${items.length}`);
    return items[0]!;
  };
  /** kubectl on the node: through the agent, with an operator's local certificate. */
  const onNode = (args: string[]) =>
    node.exec([kubectlBinary(), `--kubeconfig=${operator.kubeconfig}`, `--cache-dir=${mkdtempSync(join(work, 'kc-'))}`, '--request-timeout=20s', ...args], { timeoutMs: 60_000 });
  const agentStatus = async () => {
    const r = await node.exec([bunBin, edgeMain, 'status', '--json'], { timeoutMs: 20_000 });
    return JSON.parse(r.stdout) as { online: boolean; store: { outbox: Record<string, number> } };
  };
  /** The app container as containerd runs it: its id and whether its task is RUNNING. */
  const runningApp = async () => {
    const r = await node.ctr(['tasks', 'ls']);
    const ids = new Set(r.stdout.split('\n').filter((l) => /\bRUNNING\b/.test(l)).map((l) => l.split(/\s+/)[0]!));
    const c = await node.ctr(['containers', 'ls', 'labels."io.kubernetes.container.name"==app']);
    return c.stdout.split('\n').slice(1).map((l) => l.split(/\s+/)[0]!).filter((cid) => cid && ids.has(cid));
  };
  const apiserverMetrics = async () => (await ok(['get', '--raw', '/metrics'])).split('\n');
  /** LISTs and watch-lists the apiserver counted for the kinds a kubelet and kube-proxy relist. */
  const relists = (lines: string[]) => {
    let n = 0;
    for (const l of lines) {
      const m = /^apiserver_request_total\{([^}]*)\} (\d+)/.exec(l) ?? /^apiserver_watch_list_duration_seconds_count\{([^}]*)\} (\d+)/.exec(l);
      if (!m) continue;
      const labels = m[1]!;
      const isList = l.startsWith('apiserver_watch_list') || /verb="LIST"/.test(labels);
      if (isList && /resource="(pods|nodes|services|endpointslices|configmaps|secrets)"/.test(labels)) n += Number(m[2]);
    }
    return n;
  };

  beforeAll(async () => {
    rig = await startTunnelRig({ replicas: 1 });
    hub = await rig.startHub(0);
    approver = await startCsrApprover(rig.cluster);
    const apply = await kubectl(['apply', '--server-side', '--force-conflicts', '-f', fileURLToPath(new URL('../deploy/crds/', import.meta.url)),
      '-f', fileURLToPath(new URL('../deploy/namespace.yaml', import.meta.url)), '-f', fileURLToPath(new URL('../deploy/rbac.yaml', import.meta.url))]);
    if (apply.code !== 0) throw new Error(apply.stderr);
    // Two pools: the node joins the first; the second has a node of its own (a Node object only).
    await rig.cluster.admin.ensure('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: other, labels: { 'apps.tether.dev/pool': poolB } } });
    for (const [pool, members] of [[poolA, [nodeName]], [poolB, [other]]] as const) {
      await rig.cluster.admin.ensure('/apis/apps.tether.dev/v1alpha1/nodepools', { apiVersion: 'apps.tether.dev/v1alpha1', kind: 'NodePool', metadata: { name: pool }, spec: { type: 'Edge' } });
      // The pool's members, as tether-hub's NodePool controller would write them (test/pools.e2e.test.ts covers it).
      const r = await rig.cluster.admin.request('PATCH', `/apis/apps.tether.dev/v1alpha1/nodepools/${pool}/status`, { status: { nodes: [...members] } });
      if (r.status !== 200) throw new Error(`nodepool ${pool} status: ${r.status} ${JSON.stringify(r.body)}`);
    }
    site = await createEdgeSite(`real-${id % 100000}`);
    // The cloud cannot dial the site: only connections the site opens pass (the apiserver, the hub).
    const hubPort = Number(new URL(hub.agentUrl).port);
    await allowOutboundOnly(site, [Number(new URL(rig.cluster.edgeServer).port), hubPort]);
    const token = await run([bunBin, hubMain, 'token', 'create', '--kubeconfig', rig.cluster.adminKubeconfig, '--ttl', '30m', '--hub', hub.agentUrl, '--pool', poolA]);
    if (token.code !== 0) throw new Error(`tether-hub token create: ${token.stderr}`);
    const words = token.stdout.trim().split(/\s+/).slice(2);
    node = await realNode({ cluster: rig.cluster, site, name: nodeName, join: words, agentArgs: ['--hub-ca-file', rig.hubCaFile] }).catch(explain);
    operator = localClient(join(node.root, 'etc/tether/pki/local'), 'operator', work);
  }, 1_800_000);

  afterAll(async () => {
    await kubectl(['delete', 'deployment', app, '-n', ns, '--ignore-not-found', '--wait=false']).catch(() => {});
    await rig?.cluster.admin.request('DELETE', `/api/v1/nodes/${other}`).catch(() => {});
    await node?.destroy();
    await site?.destroy();
    await approver?.stop();
    await rig?.stop();
    rmSync(work, { recursive: true, force: true });
  }, 300_000);

  test('the node joined with tether-edge join becomes Ready, and a Deployment runs a real container on it', async () => {
    const ready = await until('node Ready', async () => JSON.parse((await kubectl(['get', 'node', nodeName, '-o', 'json'])).stdout || '{}'),
      (n) => n.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True'), 240_000).catch(explain);
    expect(ready.status.nodeInfo.kubeletVersion).toBe('v1.37.2');
    expect(ready.status.nodeInfo.containerRuntimeVersion).toMatch(/^containerd:\/\/1\.6\./);
    expect(ready.metadata.labels['apps.tether.dev/pool']).toBe(poolA);

    await ok(['create', 'configmap', `${app}-cfg`, '-n', ns, '--from-literal=greeting=hello-from-configmap']);
    await ok(['create', 'secret', 'generic', `${app}-secret`, '-n', ns, '--from-literal=word=from-the-secret']);
    const deployment = {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: app, namespace: ns },
      spec: {
        replicas: 1, selector: { matchLabels: { app } },
        template: {
          metadata: { labels: { app } },
          spec: {
            nodeSelector: { 'kubernetes.io/hostname': nodeName },
            tolerations: [
              { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
              { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
            ],
            terminationGracePeriodSeconds: 2,
            containers: [{
              name: 'app', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never',
              command: ['/bin/sh', '-c', 'i=0; while :; do i=$((i+1)); echo "tick $i $(cat /cfg/greeting) $(cat /secret/word)"; sleep 1; done'],
              volumeMounts: [{ name: 'cfg', mountPath: '/cfg' }, { name: 'secret', mountPath: '/secret' }],
            }],
            volumes: [{ name: 'cfg', configMap: { name: `${app}-cfg` } }, { name: 'secret', secret: { secretName: `${app}-secret` } }],
          },
        },
      },
    };
    await ok(['apply', '-f', '-'], JSON.stringify(deployment));
    pod = await until('pod Running and ready', thePod, (p) => p.status.phase === 'Running' && !!p.status.containerStatuses?.[0]?.ready, 240_000).catch(explain);
    podUid = pod.metadata.uid;
    expect(pod.spec.nodeName).toBe(nodeName);
    const running = await runningApp();
    expect(running).toHaveLength(1);
    appContainerId = running[0]!;
    expect(pod.status.containerStatuses![0]!.containerID).toBe(`containerd://${appContainerId}`);
  }, 600_000);

  test('kubectl logs and exec reach the container through tether-hub, from a site the cloud cannot dial', async () => {
    const logs = await until('log lines', () => ok(['logs', pod.metadata.name, '-n', ns, '--tail=3']), (s) => s.includes('tick'), 60_000).catch(explain);
    expect(logs).toContain('hello-from-configmap from-the-secret');
    const out = await ok(['exec', pod.metadata.name, '-n', ns, '--', 'sh', '-c', 'echo $((6 * 7)) $(cat /cfg/greeting)']);
    expect(out.trim()).toBe('42 hello-from-configmap');
    expect(await hub.metrics()).toMatch(/tether_hub_connect_requests_total\{[^}]*route="tunnel"[^}]*\} [1-9]/);
  }, 120_000);

  let relistsBeforeHeal = 0;

  test('link cut: the container keeps running, the kubelet restarts nothing, kubectl on the node answers from the store, status writes queue', async () => {
    // The operator lists once online: offline, the agent answers an identity only what the
    // apiserver allowed it online (docs/offline.md, "Authorization offline").
    for (const args of [['-o', 'json'], []]) {
      const online = await onNode(['get', 'pods', '-n', ns, '-l', `app=${app}`, '--field-selector', `spec.nodeName=${nodeName}`, ...args]);
      expect(online.stderr).toBe('');
    }
    await site.cut();
    await until('agent offline', agentStatus, (s) => !s.online, 120_000).catch(explain);
    // The kubelet keeps syncing; give it several status intervals against an unreachable cloud.
    await until('status writes queued', agentStatus, (s) => Object.values(s.store.outbox).reduce((a, b) => a + b, 0) > 0, 120_000).catch(explain);
    expect(await runningApp()).toEqual([appContainerId]);
    const r = await onNode(['get', 'pods', '-n', ns, '-l', `app=${app}`, '--field-selector', `spec.nodeName=${nodeName}`, '-o', 'json']);
    expect(r.stderr.trim()).toBe("Warning: tether-edge: the apiserver is unreachable; answered from the node's cache");
    const seen = JSON.parse(r.stdout).items as PodJson[];
    expect(seen.map((p) => p.metadata.uid)).toEqual([podUid]);
    expect(seen[0]!.status.containerStatuses?.[0]?.restartCount).toBe(0);
    const table = await onNode(['get', 'pods', '-n', ns, '-l', `app=${app}`, '--field-selector', `spec.nodeName=${nodeName}`]);
    expect(table.stdout).toMatch(new RegExp(`${pod.metadata.name}\\s+1/1\\s+Running\\s+0`));
  }, 300_000);

  let bootSeconds = 0;

  test('offline reboot: after a power cut, the pod runs again from the cached spec, its ConfigMap and Secret from the store', async () => {
    const before = await runningApp();
    expect(before).toEqual([appContainerId]);
    await node.powerCut();
    expect(node.containerPids()).toEqual([]);
    expect(await runningApp().catch(() => [])).toEqual([]);
    const t0 = performance.now();
    await node.boot();
    const again = await until('app container running again', runningApp, (ids) => ids.length === 1, 300_000).catch(explain);
    bootSeconds = (performance.now() - t0) / 1000;
    console.log(`offline reboot: boot → app container running in ${bootSeconds.toFixed(1)} s`);
    expect(again[0]).not.toBe(appContainerId); // a new container, from the cached spec
    const cat = await node.ctr(['tasks', 'exec', '--exec-id', `check-${id}`, again[0]!, 'cat', '/cfg/greeting', '/secret/word']);
    expect(cat.stdout).toBe('hello-from-configmapfrom-the-secret');
    expect((await agentStatus()).online).toBe(false);
    relistsBeforeHeal = relists(await apiserverMetrics());
  }, 600_000);

  test('heal: the node is Ready again, the pod status matches what runs, the pod was never deleted or rescheduled, no relist from the node', async () => {
    await site.heal();
    await until('agent online', agentStatus, (s) => s.online, 120_000).catch(explain);
    const ids = await runningApp();
    expect(ids).toHaveLength(1);
    // By name (a GET): the test's own LISTs would count in the apiserver's LIST metrics below.
    const byName = async (): Promise<PodJson> => JSON.parse(await ok(['get', 'pod', pod.metadata.name, '-n', ns, '-o', 'json']));
    const p = await until('pod status caught up', byName, (x) => x.status.containerStatuses?.[0]?.containerID === `containerd://${ids[0]}` && !!x.status.containerStatuses?.[0]?.ready, 180_000).catch(explain);
    expect(p.metadata.uid).toBe(podUid);
    expect(p.metadata.deletionTimestamp).toBeUndefined();
    expect(p.spec.nodeName).toBe(nodeName);
    const n = JSON.parse(await ok(['get', 'node', nodeName, '-o', 'json']));
    expect(n.status.conditions.find((c: { type: string }) => c.type === 'Ready').status).toBe('True');
    await until('outbox drained', agentStatus, (s) => Object.values(s.store.outbox).reduce((a, b) => a + b, 0) === 0, 120_000).catch(explain);
    expect(relists(await apiserverMetrics())).toBe(relistsBeforeHeal);
  }, 600_000);

  test("kube-proxy programs only its own pool's endpoints of a Service with endpoints in two pools, online and offline", async () => {
    const svc = `real-svc-${id}`;
    const mine = `198.18.${site.index}.250`;
    const theirs = '198.18.251.7';
    await rig.cluster.admin.ensure(`/api/v1/namespaces/${ns}/services`, {
      apiVersion: 'v1', kind: 'Service', metadata: { name: svc, namespace: ns, annotations: { 'apps.tether.dev/topology': 'apps.tether.dev/pool' } },
      spec: { ports: [{ port: 80, protocol: 'TCP' }] },
    });
    await rig.cluster.admin.ensure(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `${svc}-1`, namespace: ns, labels: { 'kubernetes.io/service-name': svc, 'endpointslice.kubernetes.io/managed-by': 'tether-e2e' } },
      addressType: 'IPv4', ports: [{ port: 80, protocol: 'TCP' }],
      endpoints: [{ addresses: [mine], nodeName, conditions: { ready: true } }, { addresses: [theirs], nodeName: other, conditions: { ready: true } }],
    });
    const clusterIp = (await rig.cluster.admin.request('GET', `/api/v1/namespaces/${ns}/services/${svc}`)).body.spec.clusterIP as string;
    const rules = async () => (await node.exec(['iptables-save', '-t', 'nat'])).stdout;
    const programmed = (r: string) => r.includes(`-d ${clusterIp}/32`) && r.includes(`--to-destination ${mine}:80`);
    const online = await until('kube-proxy programmed the service', rules, programmed, 120_000).catch(explain);
    expect(online).not.toContain(theirs);

    // Offline: kube-proxy restarted with its rules flushed builds them again from what the agent serves.
    await site.cut();
    await until('agent offline', agentStatus, (s) => !s.online, 120_000).catch(explain);
    await node.stopComponent('kube-proxy');
    await node.exec(['iptables', '-t', 'nat', '-F', 'KUBE-SERVICES']);
    expect(programmed(await rules())).toBe(false);
    await node.startComponent('kube-proxy');
    const offline = await until('kube-proxy programmed the service offline', rules, programmed, 120_000).catch(explain);
    expect(offline).not.toContain(theirs);
    await site.heal();
    await until('agent online', agentStatus, (s) => s.online, 120_000).catch(explain);
    await rig.cluster.admin.request('DELETE', `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices/${svc}-1`);
    await rig.cluster.admin.request('DELETE', `/api/v1/namespaces/${ns}/services/${svc}`);
  }, 600_000);
});
