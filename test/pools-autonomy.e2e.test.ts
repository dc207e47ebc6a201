/**
 * Autonomy on a real control plane of its own, with the apiserver's default eviction tolerations
 * shortened to 10 s: two simulated kubelets in edge sites, one annotated
 * apps.tether.dev/autonomy-duration=0, and a third whose link stays up (with every node of the
 * zone unreachable the node lifecycle controller assumes its own network is cut and evicts
 * nothing: "full disruption"). When the two links are cut, the node lifecycle controller
 * taints both nodes unreachable (NoExecute); past the 10 s, the pods of the node without autonomy
 * are evicted while those of the autonomous node stay bound — the hub's controller had removed
 * their tolerationSeconds (kube-apiserver allows changing tolerationSeconds of a running pod).
 * Removing the annotation gives the pods their original tolerations back.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { startCluster, type Cluster } from './support/cluster.ts';
import { crdDir, kubectlOf, nodeReady, startHub, startSimNode, until, type InProcessHub, type SimNode } from './support/pools.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('pools-autonomy.e2e.test.ts skipped: edge network namespaces need root');

const id = String(process.pid);
const TOLERATION_SECONDS = 10;
const autonomous = `auto-${id}`;
const plain = `plain-${id}`;
const keeper = `keeper-${id}`;

describe.skipIf(!isRoot)('autonomy: pods stay bound on an autonomous node while its link is down', () => {
  let cluster: Cluster;
  let kubectl: ReturnType<typeof kubectlOf>;
  let sims: SimNode[] = [];
  let hub: InProcessHub | undefined;

  const getJson = async (args: string[]) => JSON.parse(await kubectl([...args, '-o', 'json']));
  const podsOn = async (node: string) => ((await getJson(['get', 'pods', '-n', 'default', '-l', `app=on-${node}`])).items as any[]).filter((p) => p.spec.nodeName === node);
  const eviction = (p: any, key: string) => p.spec.tolerations.find((t: any) => t.key === key && t.effect === 'NoExecute');
  const explain = (e: unknown): never => {
    throw new Error(`${(e as Error).message}\n--- hub log ---\n${(hub?.log ?? []).slice(-30).join('\n')}`);
  };

  beforeAll(async () => {
    cluster = await startCluster({
      apiserverArgs: [`--default-unreachable-toleration-seconds=${TOLERATION_SECONDS}`, `--default-not-ready-toleration-seconds=${TOLERATION_SECONDS}`],
      nodeMonitorGracePeriod: '20s',
    });
    kubectl = kubectlOf(cluster);
    await kubectl(['apply', '-f', crdDir]);
    sims = await Promise.all([startSimNode(cluster, autonomous, `auto1-${id}`), startSimNode(cluster, plain, `auto2-${id}`), startSimNode(cluster, keeper, `auto3-${id}`)]);
    hub = startHub(cluster.adminKubeconfig, `hub-${id}`, 'kube-system');
    await until('nodes Ready', () => Promise.all([autonomous, plain, keeper].map((n) => getJson(['get', 'node', n]))), (ns) => ns.every(nodeReady), 120_000);
    await kubectl(['annotate', 'node', autonomous, 'apps.tether.dev/autonomy-duration=0']);
    for (const node of [autonomous, plain]) {
      await kubectl(['apply', '-f', '-'], JSON.stringify({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: `on-${node}`, namespace: 'default' },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: `on-${node}` } },
          template: { metadata: { labels: { app: `on-${node}` } }, spec: { nodeSelector: { 'kubernetes.io/hostname': node }, containers: [{ name: 'app', image: 'registry.invalid/app:1' }] } },
        },
      }));
    }
  }, 1_800_000);

  afterAll(async () => {
    await hub?.controllers.stop();
    await Promise.all(sims.map((s) => s.stop()));
    await cluster?.stop();
  }, 120_000);

  test('pods on the autonomous node tolerate unreachable and not-ready forever; the others keep the default', async () => {
    const auto = await until('autonomous pods running, tolerations forever', () => podsOn(autonomous), (ps) =>
      ps.length === 2 && ps.every((p) => p.status.phase === 'Running' && eviction(p, 'node.kubernetes.io/unreachable')?.tolerationSeconds === undefined && eviction(p, 'node.kubernetes.io/not-ready')?.tolerationSeconds === undefined),
    ).catch(explain);
    for (const p of auto) {
      expect(JSON.parse(p.metadata.annotations['apps.tether.dev/original-tolerations']).seconds).toEqual(
        Object.fromEntries(p.spec.tolerations.map((t: any, i: number) => [t, i]).filter(([t]: any) => t.effect === 'NoExecute').map(([, i]: any) => [String(i), TOLERATION_SECONDS])),
      );
    }
    const others = await until('other pods running', () => podsOn(plain), (ps) => ps.length === 2 && ps.every((p) => p.status.phase === 'Running'));
    for (const p of others) expect(eviction(p, 'node.kubernetes.io/unreachable').tolerationSeconds).toBe(TOLERATION_SECONDS);
  }, 120_000);

  test('with both links cut past the toleration time, the autonomous node keeps its pods bound while the other node\'s are evicted', async () => {
    const before = await podsOn(autonomous);
    await Promise.all(sims.slice(0, 2).map((s) => s.site.cut()));
    // Eviction of the plain node's pods: the taint manager deletes them once their 10 s are up.
    await until('plain pods evicted', () => podsOn(plain), (ps) => ps.length > 0 && ps.every((p) => p.metadata.deletionTimestamp), 180_000).catch(explain);
    // The autonomous node got the same NoExecute taint; wait until its pods would have been evicted too.
    const tainted = await until('autonomous node tainted unreachable', () => getJson(['get', 'node', autonomous]), (n) =>
      (n.spec.taints ?? []).some((t: any) => t.key === 'node.kubernetes.io/unreachable' && t.effect === 'NoExecute'),
    );
    const since = Date.parse(tainted.spec.taints.find((t: any) => t.key === 'node.kubernetes.io/unreachable').timeAdded);
    await until('twice the toleration time past the taint', async () => Date.now(), (now) => now - since > 2 * TOLERATION_SECONDS * 1000 + 5000, 120_000);
    const after = await podsOn(autonomous);
    expect(after.map((p) => p.metadata.uid).sort()).toEqual(before.map((p) => p.metadata.uid).sort());
    for (const p of after) {
      expect(p.metadata.deletionTimestamp).toBeUndefined();
      expect(p.spec.nodeName).toBe(autonomous);
    }
  }, 300_000);

  test('removing the annotation restores the original tolerations', async () => {
    await Promise.all(sims.slice(0, 2).map((s) => s.site.heal()));
    await kubectl(['annotate', 'node', autonomous, 'apps.tether.dev/autonomy-duration-']);
    const ps = await until('tolerations restored', () => podsOn(autonomous), (ps) =>
      ps.length > 0 && ps.every((p) => eviction(p, 'node.kubernetes.io/unreachable')?.tolerationSeconds === TOLERATION_SECONDS && !p.metadata.annotations?.['apps.tether.dev/original-tolerations']),
    ).catch(explain);
    expect(ps.every((p) => eviction(p, 'node.kubernetes.io/not-ready').tolerationSeconds === TOLERATION_SECONDS)).toBe(true);
  }, 120_000);
});
