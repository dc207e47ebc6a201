/**
 * The EdgeUpgrade controller on the real control plane: three simulated kubelets (each in its own
 * edge site, with its own node certificate) in two NodePools, the hub's controllers in-process as
 * the hub's service account with exactly the RBAC of deploy/rbac.yaml, driven by the real kubectl.
 * The agent's side of shared/upgrade/contract.ts is played by this suite, with each node's own
 * credentials (the real upgrader has its own suite): the node reports its phases and its running
 * version in its Node's annotations.
 *
 * Covered: a node may write its own annotations and not another node's; the CRD refuses an http
 * baseURL and a changed version; a rollout goes pool by pool, one node at a time, pauses between
 * pools, ends Complete with every target removed, and `kubectl get edgeupgrades` shows it; a
 * second rollout waits Pending while the first runs; a RolledBack node stops a rollout in its
 * wave with the node and reason in the status, nothing targeted in the next pool; a NotReady node
 * is never targeted; deleting an EdgeUpgrade takes its targets off.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { EDGE_VERSION_ANNOTATION, UPGRADE_STATUS_ANNOTATION, UPGRADE_TARGET_ANNOTATION, upgradeTargetSchema, type UpgradePhase } from '../shared/upgrade/contract.ts';
import { sharedCluster, type Cluster } from './support/cluster.ts';
import { prepareHub, kubectlOf, nodeReady, startHub, startSimNode, tokenKubeconfig, until, type InProcessHub, type SimNode } from './support/pools.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('edge-upgrade-controller.e2e.test.ts skipped: edge network namespaces need root');

const id = String(process.pid);
const ns = `eu-e2e-${id}`;
const north = `eu-north-${id}`;
const south = `eu-south-${id}`;
const names = [1, 2, 3].map((i) => `eu-n${i}-${id}`);
const [n1, n2, n3] = names as [string, string, string];
/** A Node without a kubelet (never Ready), in the south pool; its name sorts before n3's. */
const n0 = `eu-n0-${id}`;
const first = `eu-first-${id}`;
const second = `eu-second-${id}`;
const third = `eu-third-${id}`;
const fourth = `eu-fourth-${id}`;

const edgeUpgrade = (name: string, spec: Record<string, unknown>) =>
  JSON.stringify({ apiVersion: 'apps.tether.dev/v1alpha1', kind: 'EdgeUpgrade', metadata: { name }, spec });

describe.skipIf(!isRoot)('EdgeUpgrade controller', () => {
  let cluster: Cluster;
  let kubectl: ReturnType<typeof kubectlOf>;
  let sims: SimNode[] = [];
  let hub: InProcessHub | undefined;

  const getJson = async (args: string[]) => JSON.parse(await kubectl([...args, '-o', 'json']));
  const node = (n: string) => getJson(['get', 'node', n]);
  const eu = (name: string) => getJson(['get', 'edgeupgrade', name]);
  const targetOf = (n: any) => {
    const raw = n.metadata.annotations?.[UPGRADE_TARGET_ANNOTATION];
    return raw === undefined ? undefined : JSON.parse(raw);
  };
  /** Names of the suite's nodes carrying a target, and of which rollout. */
  const targets = async () => {
    const out: Record<string, string> = {};
    for (const n of await Promise.all(names.map(node))) {
      const t = targetOf(n);
      if (t) out[n.metadata.name] = t.upgrade;
    }
    return out;
  };
  const explain = (e: unknown): never => {
    throw new Error(`${(e as Error).message}\n--- hub log ---\n${(hub?.log ?? []).slice(-40).join('\n')}`);
  };
  const sim = (name: string) => sims.find((s) => s.name === name)!;

  /** A merge patch of the node's own annotations, with the node's own certificate (as the agent does). */
  const asNode = async (name: string, annotations: Record<string, string | null>, onNode = name) => {
    const res = await cluster.client(sim(name).cert).request('PATCH', `/api/v1/nodes/${onNode}`, { metadata: { annotations } });
    return res.status;
  };
  /** The agent's report for rollout `upgrade`; `running` also changes the version annotation (after a swap or rollback). */
  const report = async (name: string, upgrade: any, phase: UpgradePhase, o: { reason?: string; running?: string } = {}) => {
    const status = {
      upgrade: upgrade.metadata.name,
      uid: upgrade.metadata.uid,
      version: upgrade.spec.version,
      phase,
      ...(o.reason ? { reason: o.reason } : {}),
      time: new Date().toISOString(),
    };
    const code = await asNode(name, { [UPGRADE_STATUS_ANNOTATION]: JSON.stringify(status), ...(o.running ? { [EDGE_VERSION_ANNOTATION]: o.running } : {}) });
    if (code !== 200) throw new Error(`node ${name} could not write its upgrade status: HTTP ${code}`);
  };
  const upgradeTo = async (name: string, upgrade: any) => {
    await report(name, upgrade, 'Downloading');
    await report(name, upgrade, 'Verifying');
    await report(name, upgrade, 'Restarting', { running: upgrade.spec.version });
    await report(name, upgrade, 'Healthy');
  };
  /** `kubectl get edgeupgrades` row of `name`, split into columns. */
  const row = async (name: string, wide = false) => {
    const out = await kubectl(['get', 'edgeupgrades', name, ...(wide ? ['-o', 'wide'] : [])]);
    const [header, line] = out.trim().split('\n');
    return { header: header!.split(/\s{2,}/), cells: line!.split(/\s{2,}/) };
  };

  beforeAll(async () => {
    cluster = await sharedCluster();
    kubectl = kubectlOf(cluster);
    const token = await prepareHub(cluster, ns, ['nodepools', 'edgeupgrades']);
    sims = await Promise.all(names.map((n, i) => startSimNode(cluster, n, `eu${i + 1}-${id}`)));
    await until('nodes Ready', () => Promise.all(names.map(node)), (xs) => xs.every(nodeReady), 120_000);
    await kubectl(['label', 'node', n1, n2, `apps.tether.dev/pool=${north}`]);
    await kubectl(['label', 'node', n3, `apps.tether.dev/pool=${south}`]);
    const pools = [north, south].map((name) => ({ apiVersion: 'apps.tether.dev/v1alpha1', kind: 'NodePool', metadata: { name }, spec: {} }));
    await kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: pools }));
    hub = startHub(tokenKubeconfig(cluster, token), `hub-${id}`, ns, { edgeUpgrades: true, poolSets: false, autonomy: false, csrApproval: false });
    await hub.controllers.running();
  }, 600_000);

  afterAll(async () => {
    await hub?.controllers.stop();
    if (cluster) {
      await cluster.kubectl(['delete', 'edgeupgrade', first, second, third, fourth, '--ignore-not-found']);
      await cluster.kubectl(['delete', 'namespace', ns, '--wait=false', '--ignore-not-found']);
      await cluster.kubectl(['delete', 'nodepool', north, south, '--ignore-not-found']);
      await cluster.kubectl(['delete', 'node', ...names, n0, '--ignore-not-found', '--wait=false']);
    }
    await Promise.all(sims.map((s) => s.stop()));
  }, 120_000);

  test("a node writes its own upgrade annotations with its own credentials, and may not write another node's", async () => {
    for (const n of names) expect(await asNode(n, { [EDGE_VERSION_ANNOTATION]: '0.1.0' })).toBe(200);
    expect((await node(n1)).metadata.annotations[EDGE_VERSION_ANNOTATION]).toBe('0.1.0');
    // The Node authorizer and NodeRestriction: a node changes only its own Node object.
    expect(await asNode(n1, { [UPGRADE_STATUS_ANNOTATION]: '{}' }, n2)).toBe(403);
    expect((await node(n2)).metadata.annotations[UPGRADE_STATUS_ANNOTATION]).toBeUndefined();
  }, 60_000);

  test('the CRD refuses an http baseURL without insecure, and a bad version, with readable messages', async () => {
    const http = await cluster.kubectl(['apply', '-f', '-'], { input: edgeUpgrade(`eu-bad-${id}`, { version: '0.2.0', baseURL: 'http://198.18.0.9/r', pools: [north] }) });
    expect(http.code).not.toBe(0);
    expect(http.stderr).toContain('baseURL must be https (http only with insecure: true)');
    const version = await cluster.kubectl(['apply', '-f', '-'], { input: edgeUpgrade(`eu-bad-${id}`, { version: '../x', baseURL: 'https://198.18.0.9/r', pools: [north] }) });
    expect(version.code).not.toBe(0);
    expect(version.stderr).toContain('must be a release version such as 1.2.3 or 1.2.3-rc.1');
  }, 60_000);

  test('a rollout goes pool by pool, one node at a time, pauses between pools, and ends Complete with its targets removed; a second one waits Pending', async () => {
    await kubectl(['apply', '-f', '-'], edgeUpgrade(first, { version: '0.2.0', baseURL: 'https://releases.example.com/tether/0.2.0/', pools: [north, south], pauseSeconds: 10 }));
    await until('the first node targeted', targets, (t) => Object.keys(t).length > 0).catch(explain);
    expect(await targets()).toEqual({ [n1]: first });
    const up = await until('status Progressing', () => eu(first), (u) => u.status?.phase === 'Progressing').catch(explain);
    expect(up.spec).toMatchObject({ maxUnavailable: 1, nodeTimeoutSeconds: 900, insecure: false });
    const target = targetOf(await node(n1));
    expect(upgradeTargetSchema.safeParse(target).success).toBe(true);
    expect(target).toEqual({ upgrade: first, uid: up.metadata.uid, version: '0.2.0', baseURL: 'https://releases.example.com/tether/0.2.0' });
    expect(up.status).toMatchObject({ updated: 0, total: 3, progress: '0/3', currentPool: north, message: `pool ${north}: upgrading ${n1}` });
    const r = await row(first);
    expect(r.header).toEqual(['NAME', 'VERSION', 'UPDATED', 'PHASE', 'AGE']);
    expect(r.cells.slice(0, 4)).toEqual([first, '0.2.0', '0/3', 'Progressing']);
    expect((await kubectl(['get', 'eu', first, '-o', 'name'])).trim()).toBe(`edgeupgrade.apps.tether.dev/${first}`);

    // The spec's what and where cannot change under a running rollout; how fast can.
    const changed = await cluster.kubectl(['patch', 'edgeupgrade', first, '--type=merge', '-p', JSON.stringify({ spec: { version: '0.2.1' } })]);
    expect(changed.code).not.toBe(0);
    expect(changed.stderr).toContain('version, baseURL, insecure and pools cannot change: create a new EdgeUpgrade');

    // A second rollout, created while the first runs, waits for it.
    await kubectl(['apply', '-f', '-'], edgeUpgrade(second, { version: '0.3.0', baseURL: 'https://releases.example.com/tether/0.3.0', pools: [north, south], maxUnavailable: 2 }));
    const waiting = await until('second Pending', () => eu(second), (u) => u.status?.phase === 'Pending').catch(explain);
    expect(waiting.status.message).toBe(`waiting for EdgeUpgrade ${first} to finish (one rollout at a time, oldest first)`);

    await upgradeTo(n1, up);
    await until(`${n2} targeted`, targets, (t) => t[n2] === first).catch(explain);
    expect(await targets()).toEqual({ [n1]: first, [n2]: first });
    expect((await eu(first)).status.progress).toBe('1/3');

    await upgradeTo(n2, up);
    const paused = await until('Paused before the south pool', () => eu(first), (u) => u.status?.phase === 'Paused').catch(explain);
    expect(paused.status).toMatchObject({ currentPool: south, progress: '2/3', message: `pausing 10 s before pool ${south}` });
    expect((await targets())[n3]).toBeUndefined();

    await until(`${n3} targeted after the pause`, targets, (t) => t[n3] === first).catch(explain);
    await upgradeTo(n3, up);
    const done = await until('Complete', () => eu(first), (u) => u.status?.phase === 'Complete').catch(explain);
    expect(done.status).toMatchObject({ updated: 3, total: 3, progress: '3/3', message: '3 node(s) run 0.2.0' });
    expect(done.status.nodes.map((n: any) => [n.name, n.pool, n.phase, n.version])).toEqual([
      [n1, north, 'Healthy', '0.2.0'],
      [n2, north, 'Healthy', '0.2.0'],
      [n3, south, 'Healthy', '0.2.0'],
    ]);
    expect(done.status.conditions.find((c: any) => c.type === 'Complete')).toMatchObject({ status: 'True' });
    const wide = await row(first, true);
    expect(wide.header).toEqual(['NAME', 'VERSION', 'UPDATED', 'PHASE', 'MESSAGE', 'AGE']);
    expect(wide.cells.slice(0, 5)).toEqual([first, '0.2.0', '3/3', 'Complete', '3 node(s) run 0.2.0']);
    // Every target of the first rollout is gone (the second one may have started meanwhile).
    await until('first targets removed', targets, (t) => !Object.values(t).includes(first)).catch(explain);
  }, 300_000);

  test('a node reporting RolledBack stops the rollout in its wave: the status names the node and the reason, the next pool gets no target', async () => {
    const up = await until('second Progressing', () => eu(second), (u) => u.status?.phase === 'Progressing').catch(explain);
    await until('the north pool targeted, two at a time', targets, (t) => t[n1] === second && t[n2] === second).catch(explain);
    expect((await targets())[n3]).toBeUndefined();
    await report(n1, up, 'Downloading');
    await report(n2, up, 'Restarting', { running: '0.3.0' });
    const reason = 'new version did not become healthy in 120 s: the store did not open';
    await report(n2, up, 'RolledBack', { reason, running: '0.2.0' });
    const failed = await until('second Failed', () => eu(second), (u) => u.status?.phase === 'Failed').catch(explain);
    expect(failed.status.message).toBe(`node ${n2}: RolledBack: ${reason}`);
    expect(failed.status.nodes.find((n: any) => n.name === n2)).toMatchObject({ phase: 'RolledBack', version: '0.2.0', reason: `RolledBack: ${reason}` });
    // n1 is mid-download: left alone, it keeps its target; n2 lost its own; south got none.
    await until(`${n2}'s target removed`, targets, (t) => t[n2] === undefined).catch(explain);
    expect(await targets()).toEqual({ [n1]: second });
    expect((await row(second)).cells.slice(0, 4)).toEqual([second, '0.3.0', '0/3', 'Failed']);
    // Once n1 ends too, its target goes; the rollout stays Failed with the first failure.
    await report(n1, up, 'Failed', { reason: 'download error after retries' });
    await until('no targets left', targets, (t) => Object.keys(t).length === 0).catch(explain);
    expect((await eu(second)).status).toMatchObject({ phase: 'Failed', message: `node ${n2}: RolledBack: ${reason}` });
  }, 300_000);

  test('a NotReady node is not targeted: the rollout waits for it and says so', async () => {
    await kubectl(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: n0, labels: { 'apps.tether.dev/pool': south } } }));
    await kubectl(['apply', '-f', '-'], edgeUpgrade(third, { version: '0.3.1', baseURL: 'https://releases.example.com/tether/0.3.1', pools: [south] }));
    const up = await until(`${n3} targeted`, () => Promise.all([eu(third), targets()]), ([, t]) => t[n3] === third).catch(explain);
    expect(targetOf(await node(n0))).toBeUndefined();
    await upgradeTo(n3, up[0]);
    const waiting = await until('waiting for the NotReady node', () => eu(third), (u) => u.status?.progress === '1/2').catch(explain);
    expect(waiting.status).toMatchObject({ phase: 'Progressing', message: `pool ${south}: waiting for ${n0} (NotReady)` });
    expect(waiting.status.nodes.find((n: any) => n.name === n0)).toMatchObject({ phase: 'Waiting', reason: 'NotReady' });
    expect(targetOf(await node(n0))).toBeUndefined();
    await kubectl(['delete', 'node', n0]);
    const done = await until('Complete without it', () => eu(third), (u) => u.status?.phase === 'Complete').catch(explain);
    expect(done.status.progress).toBe('1/1');
  }, 300_000);

  test('deleting an EdgeUpgrade takes its targets off the nodes', async () => {
    await kubectl(['apply', '-f', '-'], edgeUpgrade(fourth, { version: '0.4.0', baseURL: 'https://releases.example.com/tether/0.4.0', pools: [north] }));
    await until(`${n1} targeted`, targets, (t) => t[n1] === fourth).catch(explain);
    await kubectl(['delete', 'edgeupgrade', fourth]);
    await until('target removed', targets, (t) => Object.keys(t).length === 0).catch(explain);
  }, 120_000);
});
