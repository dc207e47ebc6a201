/**
 * The apps.tether.dev API and deploy/ on the real control plane: the generated CRDs install,
 * kube-apiserver refuses invalid NodePools and PoolSets with messages a person can act on,
 * `kubectl explain` shows the schema's descriptions, and `kubectl apply -k deploy/` passes a
 * server-side dry run.
 */
import { beforeAll, describe, expect, test } from 'bun:test';
import * as cloudKeys from '../cloud/api/keys.ts';
import * as edgeKeys from '../shared/topology/keys.ts';
import { sharedCluster, type Cluster } from './support/cluster.ts';
import { crdDir, deployDir, kubectlOf } from './support/pools.ts';

const id = String(process.pid);

describe('apps.tether.dev API on kube-apiserver', () => {
  let cluster: Cluster;
  let kubectl: ReturnType<typeof kubectlOf>;
  /** stderr of a server-side dry-run create that must fail. */
  const refused = async (obj: unknown) => {
    const r = await cluster.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(obj) });
    expect(r.code).not.toBe(0);
    return r.stderr;
  };
  const accepted = async (obj: unknown) => {
    const r = await cluster.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(obj) });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  };
  const nodePool = (name: string, spec: unknown) => ({ apiVersion: 'apps.tether.dev/v1alpha1', kind: 'NodePool', metadata: { name }, spec });
  const poolSet = (spec: unknown) => ({ apiVersion: 'apps.tether.dev/v1alpha1', kind: 'PoolSet', metadata: { name: `ps-${id}`, namespace: 'default' }, spec });
  const workload = { kind: 'Deployment', spec: { template: { spec: { containers: [{ name: 'a', image: 'x' }] } } } };

  beforeAll(async () => {
    cluster = await sharedCluster();
    kubectl = kubectlOf(cluster);
    await kubectl(['apply', '-f', crdDir]);
    await kubectl(['wait', '--for', 'condition=established', 'crd/nodepools.apps.tether.dev', 'crd/poolsets.apps.tether.dev']);
  }, 600_000);

  test('a valid NodePool and PoolSet are accepted, with the pool type defaulted', async () => {
    await accepted(nodePool(`ok-${id}`, { labels: { site: 'a' }, annotations: { 'apps.tether.dev/autonomy-duration': '1h' }, taints: [{ key: 'edge', effect: 'NoSchedule' }] }));
    await accepted(poolSet({ pools: ['a'], workload, tweaks: [{ pools: ['a'], replicas: 2, patches: [{ op: 'add', path: '/spec/paused', value: true }] }] }));
    const out = await kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], JSON.stringify(nodePool(`ok-${id}`, {})));
    expect(JSON.parse(out).spec.type).toBe('Edge');
  });

  test('an invalid NodePool is refused with readable messages', async () => {
    const err = await refused(
      nodePool(`bad.pool-${id}`, {
        type: 'Fog',
        labels: { 'not a key': 'x', ok: 'not a value!' },
        taints: [{ key: 'edge', effect: 'NoSchedule' }, { key: 'edge', effect: 'NoSchedule' }],
      }),
    );
    expect(err).toContain('spec.type: Unsupported value: "Fog": supported values: "Edge", "Cloud"');
    const again = await refused(
      nodePool(`bad.pool-${id}`, {
        labels: { 'not a key': 'x', 'apps.tether.dev/pool': 'y', ok: 'not a value!' },
        taints: [{ key: 'edge', effect: 'NoSchedule' }, { key: 'edge', effect: 'NoSchedule' }],
      }),
    );
    expect(again).toContain('a NodePool name must be a DNS label');
    expect(again).toContain('spec.labels: Invalid value: label keys must be qualified names ([prefix/]name, e.g. example.com/site)');
    expect(again).toContain('keys under apps.tether.dev/ are reserved');
    expect(again).toContain('spec.labels[ok]: Invalid value: "not a value!": must be a label value');
    expect(again).toContain('spec.taints: Invalid value: taints must be unique by key and effect');
  });

  test('an invalid PoolSet is refused with readable messages', async () => {
    const kind = await refused(poolSet({ pools: ['a'], workload: { kind: 'Job', spec: {} } }));
    expect(kind).toContain('spec.workload.kind: Unsupported value: "Job": supported values: "Deployment", "StatefulSet"');
    expect(kind).toContain('spec.workload.spec.template: Required value');
    const rules = await refused(poolSet({ workload, tweaks: [{ replicas: 1 }, { pools: ['Not_A_Pool'] }, { pools: ['a'], patches: [{ op: 'move', path: 'spec' }] }] }));
    expect(rules).toContain('spec.tweaks[2].patches[0].op: Unsupported value: "move"');
    const cel = await refused(poolSet({ workload, tweaks: [{ replicas: 1 }, { pools: ['Not_A_Pool'] }, { pools: ['a'], patches: [{ op: 'add', path: 'spec', value: 1 }] }] }));
    expect(cel).toContain('spec: Invalid value: a PoolSet names its pools (pools) or selects them (poolSelector), or both');
    expect(cel).toContain('spec.tweaks[0]: Invalid value: a tweak names its pools (pools) or selects them (poolSelector)');
    expect(cel).toContain('spec.tweaks[1]: Invalid value: a tweak must change something: replicas, containerImages or patches');
    expect(cel).toContain('spec.tweaks[1].pools[0]: Invalid value: "Not_A_Pool": must be a DNS label');
    expect(cel).toContain('spec.tweaks[2].patches[0].path: Invalid value: "spec": must be a JSON pointer');
  });

  test('kubectl explain shows the descriptions from the zod schemas', async () => {
    expect(await kubectl(['explain', 'nodepools.spec.taints'])).toContain('Taints merged into every member node');
    expect(await kubectl(['explain', 'poolsets.spec.tweaks'])).toContain('Per-pool changes, applied in order');
  });

  test('kubectl apply -k deploy/ passes a server-side dry run', async () => {
    await kubectl(['apply', '-f', `${deployDir}namespace.yaml`]); // a dry run cannot create objects inside a namespace it only pretends to create
    const out = await kubectl(['apply', '-k', deployDir, '--dry-run=server']);
    for (const line of [
      'serviceaccount/tether-hub',
      'clusterrole.rbac.authorization.k8s.io/tether-hub-controllers',
      'role.rbac.authorization.k8s.io/tether-hub-leader-election',
      'clusterrolebinding.rbac.authorization.k8s.io/tether-node-pool-reader',
      'service/tether-hub',
      'deployment.apps/tether-hub',
      'poddisruptionbudget.policy/tether-hub',
      'customresourcedefinition.apiextensions.k8s.io/nodepools.apps.tether.dev',
    ]) {
      expect(out).toContain(line);
    }
    const rendered = await kubectl(['kustomize', deployDir]);
    expect(rendered).toContain('replicas: 2');
    expect(rendered).toContain('image: tether.local/tether-hub:0.1.0');
  });

  test("the edge filter's copies of the API names equal cloud/api's", () => {
    expect(edgeKeys.TOPOLOGY_ANNOTATION).toBe(cloudKeys.TOPOLOGY_ANNOTATION);
    expect(edgeKeys.TOPOLOGY_HOSTNAME).toBe(cloudKeys.TOPOLOGY_HOSTNAME);
    expect(edgeKeys.TOPOLOGY_POOL).toBe(cloudKeys.TOPOLOGY_POOL);
  });
});
