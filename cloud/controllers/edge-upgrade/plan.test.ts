import { describe, expect, test } from 'bun:test';
import { EDGE_VERSION_ANNOTATION, UPGRADE_STATUS_ANNOTATION, UPGRADE_TARGET_ANNOTATION, type UpgradePhase } from '../../../shared/upgrade/contract.ts';
import { edgeUpgradeSchema, type EdgeUpgrade } from '../../api/edge-upgrade.ts';
import { POOL_LABEL } from '../../api/keys.ts';
import { jsonEqual } from '../conditions.ts';
import type { Node } from '../kube-types.ts';
import { nodeState } from './nodes.ts';
import { runningUpgrade } from './order.ts';
import { planRollout, type Plan } from './plan.ts';

const UID = 'uid-1';
const T0 = Date.parse('2026-12-04T01:00:00Z');

function upgrade(spec: Record<string, unknown> = {}, status?: EdgeUpgrade['status']): EdgeUpgrade {
  return edgeUpgradeSchema.parse({
    metadata: { name: 'up', uid: UID, generation: 1 },
    spec: { version: '0.2.0', baseURL: 'https://releases.example.com/tether/0.2.0', pools: ['a', 'b'], ...spec },
    ...(status ? { status } : {}),
  });
}

function node(name: string, pool: string, o: { version?: string; ready?: boolean } = {}): Node {
  return {
    metadata: { name, labels: { [POOL_LABEL]: pool }, annotations: { [EDGE_VERSION_ANNOTATION]: o.version ?? '0.1.0' } },
    status: { conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }] },
  };
}

const annotations = (n: Node) => n.metadata.annotations!;
const targetUid = (n: Node) => {
  const t = annotations(n)[UPGRADE_TARGET_ANNOTATION];
  return t === undefined ? undefined : (JSON.parse(t).uid as string);
};

/** The node's agent, as far as the hub sees it: a status report, and the version after a swap. */
function report(n: Node, phase: UpgradePhase, o: { reason?: string; uid?: string; version?: string } = {}) {
  annotations(n)[UPGRADE_STATUS_ANNOTATION] = JSON.stringify({
    upgrade: 'up',
    uid: o.uid ?? UID,
    version: '0.2.0',
    phase,
    ...(o.reason ? { reason: o.reason } : {}),
    time: '2026-12-04T01:00:00Z',
  });
  if (o.version) annotations(n)[EDGE_VERSION_ANNOTATION] = o.version;
}
const healthy = (n: Node) => report(n, 'Healthy', { version: '0.2.0' });

/** Runs the planner and applies its result the way the controller and the apiserver would. */
class Rig {
  eu: EdgeUpgrade;
  now = T0;
  plans: Plan[] = [];
  constructor(
    readonly nodes: Node[],
    spec: Record<string, unknown> = {},
  ) {
    this.eu = upgrade(spec);
  }
  step(blocked?: string): Plan {
    const plan = planRollout({ upgrade: this.eu, nodes: this.nodes, now: this.now, ...(blocked !== undefined ? { blocked } : {}) });
    for (const name of plan.setTargets) {
      annotations(this.get(name))[UPGRADE_TARGET_ANNOTATION] = JSON.stringify({ upgrade: 'up', uid: UID, version: '0.2.0', baseURL: this.eu.spec.baseURL });
    }
    for (const name of plan.removeTargets) delete annotations(this.get(name))[UPGRADE_TARGET_ANNOTATION];
    this.eu = { ...this.eu, status: plan.status };
    this.plans.push(plan);
    return plan;
  }
  get(name: string): Node {
    return this.nodes.find((n) => n.metadata.name === name)!;
  }
  targeted(): string[] {
    return this.nodes.filter((n) => targetUid(n) === UID).map((n) => n.metadata.name);
  }
}

describe('a node in a rollout', () => {
  const r = { name: 'up', uid: UID, version: '0.2.0', nodeTimeoutSeconds: 900 };
  test('Healthy for this rollout on the version is updated; a report about another rollout is ignored', () => {
    const n = node('n1', 'a');
    annotations(n)[UPGRADE_TARGET_ANNOTATION] = JSON.stringify({ upgrade: 'up', uid: UID, version: '0.2.0', baseURL: 'https://x.example' });
    report(n, 'RolledBack', { uid: 'other', reason: 'about another rollout' });
    expect(nodeState(n, 'a', r, { now: T0, targetedAt: T0 }).stage).toBe('inFlight');
    report(n, 'Restarting', { version: '0.2.0' });
    expect(nodeState(n, 'a', r, { now: T0, targetedAt: T0 }).stage).toBe('inFlight');
    healthy(n);
    expect(nodeState(n, 'a', r, { now: T0, targetedAt: T0 }).stage).toBe('updated');
  });
  test('a node that runs the version and reported nothing for this rollout is updated, targeted or not', () => {
    expect(nodeState(node('n1', 'a', { version: '0.2.0' }), 'a', r, { now: T0 })).toMatchObject({ stage: 'updated', targeted: false });
    expect(nodeState(node('n1', 'a', { version: '0.2.0' }), 'a', r, { now: T0, justTargeted: true }).stage).toBe('updated');
    const trial = node('n1', 'a', { version: '0.2.0' });
    report(trial, 'Restarting');
    expect(nodeState(trial, 'a', r, { now: T0, justTargeted: true }).stage).toBe('inFlight');
  });
  test('RolledBack and Failed are failures with their reason; silence past the timeout is one too', () => {
    const n = node('n1', 'a');
    report(n, 'RolledBack', { reason: 'new version did not become healthy in 120 s: store did not open' });
    expect(nodeState(n, 'a', r, { now: T0 })).toMatchObject({ stage: 'failed', reason: 'RolledBack: new version did not become healthy in 120 s: store did not open' });
    const quiet = node('n2', 'a', { ready: false });
    expect(nodeState(quiet, 'a', r, { now: T0 + 899_000, targetedAt: T0, justTargeted: true }).stage).toBe('inFlight');
    expect(nodeState(quiet, 'a', r, { now: T0 + 900_000, targetedAt: T0, justTargeted: true })).toMatchObject({
      stage: 'failed',
      reason: 'no report from the node in 900 s; the node is NotReady',
    });
  });
  test("another rollout's target makes the node wait", () => {
    const n = node('n1', 'a');
    annotations(n)[UPGRADE_TARGET_ANNOTATION] = JSON.stringify({ upgrade: 'older', uid: 'uid-0', version: '0.1.5', baseURL: 'https://x.example' });
    expect(nodeState(n, 'a', r, { now: T0 })).toMatchObject({ stage: 'waiting', otherTarget: 'older', reason: 'carries the target of EdgeUpgrade older' });
  });
});

describe('the rollout plan', () => {
  test('pool by pool, one node at a time; Complete removes every target', () => {
    const rig = new Rig([node('a-2', 'a'), node('a-1', 'a'), node('b-1', 'b')]);
    let p = rig.step();
    expect(p.setTargets).toEqual(['a-1']);
    expect(p.status).toMatchObject({ phase: 'Progressing', currentPool: 'a', updated: 0, total: 3, progress: '0/3', message: 'pool a: upgrading a-1' });
    expect(p.status.nodes!.map((n) => [n.name, n.phase])).toEqual([['a-1', 'Waiting'], ['a-2', 'Waiting'], ['b-1', 'Waiting']]);
    expect(p.status.nodes![0]!.targetedAt).toBe('2026-12-04T01:00:00Z');
    // In flight: nothing more is targeted, whatever the node reports before a final phase.
    report(rig.get('a-1'), 'Downloading');
    expect(rig.step().setTargets).toEqual([]);
    report(rig.get('a-1'), 'Restarting', { version: '0.2.0' });
    expect(rig.step().setTargets).toEqual([]);
    healthy(rig.get('a-1'));
    p = rig.step();
    expect(p.setTargets).toEqual(['a-2']);
    expect(p.status.progress).toBe('1/3');
    expect(rig.targeted().sort()).toEqual(['a-1', 'a-2']);
    healthy(rig.get('a-2'));
    p = rig.step();
    expect(p.setTargets).toEqual(['b-1']);
    expect(p.status.currentPool).toBe('b');
    healthy(rig.get('b-1'));
    p = rig.step();
    expect(p.status).toMatchObject({ phase: 'Complete', updated: 3, total: 3, progress: '3/3', message: '3 node(s) run 0.2.0' });
    expect(p.status.conditions!.find((c) => c.type === 'Complete')).toMatchObject({ status: 'True', reason: 'Complete' });
    expect(p.removeTargets.sort()).toEqual(['a-1', 'a-2', 'b-1']);
    expect(rig.targeted()).toEqual([]);
    // Waves never overlapped: at most one node was targeted by each step.
    expect(rig.plans.map((x) => x.setTargets.length).every((k) => k <= 1)).toBe(true);
  });

  test('maxUnavailable nodes of the current pool at once, never nodes of the next pool', () => {
    const rig = new Rig([node('a-1', 'a'), node('a-2', 'a'), node('a-3', 'a'), node('b-1', 'b')], { maxUnavailable: 2 });
    expect(rig.step().setTargets).toEqual(['a-1', 'a-2']);
    healthy(rig.get('a-1'));
    expect(rig.step().setTargets).toEqual(['a-3']);
    healthy(rig.get('a-2'));
    expect(rig.step().setTargets).toEqual([]); // a-3 still in flight: b waits
    healthy(rig.get('a-3'));
    expect(rig.step().setTargets).toEqual(['b-1']);
  });

  test('a pause between pools: Paused until pausedUntil, then the next pool', () => {
    const rig = new Rig([node('a-1', 'a'), node('b-1', 'b')], { pauseSeconds: 60 });
    rig.step();
    healthy(rig.get('a-1'));
    rig.now += 5_000;
    let p = rig.step();
    expect(p.status).toMatchObject({ phase: 'Paused', currentPool: 'b', pausedUntil: '2026-12-04T01:01:05Z', message: 'pausing 60 s before pool b' });
    expect(p.requeueAfterMs).toBe(60_000);
    expect(p.setTargets).toEqual([]);
    rig.now += 30_000;
    p = rig.step();
    expect(p.status.phase).toBe('Paused');
    expect(p.requeueAfterMs).toBe(30_000);
    rig.now += 30_000;
    p = rig.step();
    expect(p.status.phase).toBe('Progressing');
    expect(p.status.pausedUntil).toBeUndefined();
    expect(p.setTargets).toEqual(['b-1']);
  });

  test('RolledBack stops the rollout: Failed names the node and reason; not-started targets go, started ones stay until final', () => {
    const rig = new Rig([node('a-1', 'a'), node('a-2', 'a'), node('a-3', 'a'), node('b-1', 'b')], { maxUnavailable: 3 });
    expect(rig.step().setTargets).toEqual(['a-1', 'a-2', 'a-3']);
    report(rig.get('a-1'), 'Verifying');
    report(rig.get('a-2'), 'RolledBack', { reason: 'new version did not become healthy in 120 s: upstream unreachable' });
    let p = rig.step();
    expect(p.status).toMatchObject({ phase: 'Failed', message: 'node a-2: RolledBack: new version did not become healthy in 120 s: upstream unreachable' });
    expect(p.status.conditions!.find((c) => c.type === 'Failed')).toMatchObject({ status: 'True' });
    expect(p.setTargets).toEqual([]);
    expect(p.removeTargets.sort()).toEqual(['a-2', 'a-3']);
    expect(rig.targeted()).toEqual(['a-1']);
    expect(p.requeueAfterMs).toBe(900_000);
    // The node in flight finishes by itself; the rollout stays Failed, with the first message.
    healthy(rig.get('a-1'));
    p = rig.step();
    expect(p.status).toMatchObject({ phase: 'Failed', updated: 1, message: 'node a-2: RolledBack: new version did not become healthy in 120 s: upstream unreachable' });
    expect(p.removeTargets).toEqual(['a-1']);
    expect(rig.targeted()).toEqual([]);
    expect(rig.step().setTargets).toEqual([]);
  });

  test('a node that does not report in nodeTimeoutSeconds fails the rollout', () => {
    const rig = new Rig([node('a-1', 'a')], { nodeTimeoutSeconds: 60 });
    expect(rig.step().requeueAfterMs).toBe(60_000);
    rig.now += 59_000;
    expect(rig.step().status.phase).toBe('Progressing');
    rig.now += 1_000;
    const p = rig.step();
    expect(p.status).toMatchObject({ phase: 'Failed', message: 'node a-1: no report from the node in 60 s' });
    expect(p.removeTargets).toEqual(['a-1']);
  });

  test('a NotReady node is not targeted; the rollout waits for it and says so', () => {
    const rig = new Rig([node('a-1', 'a', { ready: false }), node('a-2', 'a'), node('b-1', 'b')]);
    let p = rig.step();
    expect(p.setTargets).toEqual(['a-2']);
    healthy(rig.get('a-2'));
    p = rig.step();
    expect(p.setTargets).toEqual([]);
    expect(p.status).toMatchObject({ phase: 'Progressing', currentPool: 'a', message: 'pool a: waiting for a-1 (NotReady)' });
    expect(p.status.nodes!.find((n) => n.name === 'a-1')).toMatchObject({ phase: 'Waiting', reason: 'NotReady' });
    rig.get('a-1').status = { conditions: [{ type: 'Ready', status: 'True' }] };
    expect(rig.step().setTargets).toEqual(['a-1']);
  });

  test('nodes that already run the version count as updated and are never targeted', () => {
    const rig = new Rig([node('a-1', 'a', { version: '0.2.0' }), node('a-2', 'a'), node('b-1', 'b', { version: '0.2.0' })]);
    const p = rig.step();
    expect(p.setTargets).toEqual(['a-2']);
    expect(p.status.progress).toBe('2/3');
    expect(p.status.nodes!.find((n) => n.name === 'a-1')).toMatchObject({ phase: 'Healthy', reason: 'ran 0.2.0 before this rollout' });
    healthy(rig.get('a-2'));
    expect(rig.step().status.phase).toBe('Complete');
    expect(rig.plans.flatMap((x) => x.setTargets)).toEqual(['a-2']);
  });

  test('a blocked rollout is Pending with the reason and targets nothing', () => {
    const rig = new Rig([node('a-1', 'a')]);
    const p = rig.step('waiting for EdgeUpgrade first to finish (one rollout at a time, oldest first)');
    expect(p.status).toMatchObject({ phase: 'Pending', message: 'waiting for EdgeUpgrade first to finish (one rollout at a time, oldest first)', progress: '0/1' });
    expect(p.setTargets).toEqual([]);
  });

  test('a node that leaves the listed pools loses the target unless it is mid-upgrade', () => {
    const rig = new Rig([node('a-1', 'a'), node('a-2', 'a'), node('a-3', 'a'), node('c-1', 'c')], { maxUnavailable: 2 });
    expect(rig.step().setTargets).toEqual(['a-1', 'a-2']);
    report(rig.get('a-2'), 'Downloading');
    rig.get('a-1').metadata.labels![POOL_LABEL] = 'c';
    rig.get('a-2').metadata.labels![POOL_LABEL] = 'c';
    const p = rig.step();
    expect(p.removeTargets).toEqual(['a-1']);
    expect(p.setTargets).toEqual(['a-3']);
    expect(rig.targeted()).toEqual(['a-2', 'a-3']);
  });

  test('the same state gives the same status: nothing to write (no write storms)', () => {
    const rig = new Rig([node('a-1', 'a'), node('a-2', 'a')], { pauseSeconds: 10 });
    const first = rig.step();
    rig.now += 1_000;
    const again = rig.step();
    expect(again.setTargets).toEqual([]);
    expect(jsonEqual(again.status, first.status)).toBe(true);
  });

  test('a Complete rollout keeps its status and only takes off leftover targets', () => {
    const rig = new Rig([node('a-1', 'a', { version: '0.2.0' })], { pools: ['a'] });
    const done = rig.step().status;
    expect(done.phase).toBe('Complete');
    annotations(rig.get('a-1'))[UPGRADE_TARGET_ANNOTATION] = JSON.stringify({ upgrade: 'up', uid: UID, version: '0.2.0', baseURL: 'https://x.example' });
    rig.get('a-1').metadata.annotations![EDGE_VERSION_ANNOTATION] = '0.1.0';
    const p = rig.step();
    expect(p.status).toBe(done);
    expect(p.removeTargets).toEqual(['a-1']);
  });
});

describe('one rollout at a time', () => {
  const u = (name: string, created: string, phase?: string, pools = ['a']) => ({
    metadata: { name, creationTimestamp: created },
    spec: { pools },
    ...(phase ? { status: { phase } } : {}),
  });
  const exists = (p: string) => p !== 'missing';
  test('the oldest open rollout runs; final ones do not count; a started one keeps running', () => {
    expect(runningUpgrade([u('b', '2026-12-04T01:00:02Z'), u('a', '2026-12-04T01:00:01Z')], exists)).toBe('a');
    expect(runningUpgrade([u('a', '2026-12-04T01:00:01Z', 'Failed'), u('b', '2026-12-04T01:00:02Z', 'Pending')], exists)).toBe('b');
    expect(runningUpgrade([u('a', '2026-12-04T01:00:01Z', 'Pending'), u('b', '2026-12-04T01:00:02Z', 'Paused')], exists)).toBe('b');
    expect(runningUpgrade([u('a', '2026-12-04T01:00:01Z', 'Complete')], exists)).toBeUndefined();
  });
  test('a rollout naming a missing pool does not hold back the others', () => {
    expect(runningUpgrade([u('a', '2026-12-04T01:00:01Z', undefined, ['missing']), u('b', '2026-12-04T01:00:02Z')], exists)).toBe('b');
  });
});
