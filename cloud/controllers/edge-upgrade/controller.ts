/**
 * The EdgeUpgrade controllers.
 *   edge-upgrade (key: EdgeUpgrade name): one reconcile of the rollout (plan.ts) — sets and takes
 *     off target annotations (merge patches of metadata.annotations only), then writes the status
 *     through the status subresource with the resourceVersion it was computed from (a stale
 *     cache gets 409 and the key is retried), only when it changed.
 *   edge-upgrade-orphans (key: node name): takes off a target whose EdgeUpgrade (name and uid)
 *     no longer exists — deleted, or deleted and created again — or that does not parse.
 * Triggers: an EdgeUpgrade added, deleted, or its spec or phase changing (a finished rollout lets
 * the next one start); a node's pool label, Ready condition or upgrade annotations changing; a
 * NodePool appearing or going. Pauses and node timeouts requeue the key for when they end.
 */
import { messageOf } from '../../../shared/errors.ts';
import { UPGRADE_TARGET_ANNOTATION, type UpgradeTarget } from '../../../shared/upgrade/contract.ts';
import { API_VERSION, EDGE_VERSION_ANNOTATION, POOL_LABEL, UPGRADE_STATUS_ANNOTATION } from '../../api/keys.ts';
import { TERMINAL_PHASES, edgeUpgradeSchema, type EdgeUpgrade } from '../../api/edge-upgrade.ts';
import { jsonEqual, setCondition } from '../conditions.ts';
import type { ControllerContext } from '../context.ts';
import type { SharedInformer } from '../informers.ts';
import type { Node } from '../kube-types.ts';
import { createController, type Controller, type ReconcileResult } from '../runner.ts';
import { isReady, reportOf, targetOf } from './nodes.ts';
import { isStarted, missingPools, runningUpgrade, type UpgradeLike } from './order.ts';
import { planRollout } from './plan.ts';

const nodePath = (name: string) => `/api/v1/nodes/${encodeURIComponent(name)}`;
const upgradePath = (name: string) => `/apis/${API_VERSION}/edgeupgrades/${encodeURIComponent(name)}`;

/** The agent appends `/<file>`: no trailing slash (contract). */
const trimSlash = (u: string) => u.replace(/\/+$/, '');

export function createEdgeUpgradeControllers(ctx: ControllerContext, upgrades: SharedInformer<UpgradeLike>): Controller[] {
  const nodes = ctx.informers.nodes();
  const pools = ctx.informers.nodePools();
  const log = ctx.log.child({ controller: 'edge-upgrade' });
  /** uid → node → when this hub set the target: its own writes, until the caches show them. */
  const justTargeted = new Map<string, Map<string, number>>();
  const poolExists = (name: string) => {
    const p = pools.get(name);
    return p !== undefined && !p.metadata.deletionTimestamp;
  };

  const setTarget = (node: string, target: UpgradeTarget | null) =>
    ctx.api.mergePatch(nodePath(node), { metadata: { annotations: { [UPGRADE_TARGET_ANNOTATION]: target === null ? null : JSON.stringify(target) } } });

  const writeStatus = async (raw: UpgradeLike, status: EdgeUpgrade['status']) => {
    if (jsonEqual(status, raw.status)) return;
    // Only status changes through this path; the resourceVersion makes a write from a stale cache fail (409).
    const { name, uid, resourceVersion } = raw.metadata;
    await ctx.api.put(`${upgradePath(name)}/status`, { apiVersion: API_VERSION, kind: 'EdgeUpgrade', metadata: { name, uid, resourceVersion }, spec: raw.spec, status });
  };

  const rolloutCtl = createController(
    'edge-upgrade',
    [upgrades, nodes, pools],
    async (name): Promise<ReconcileResult> => {
      const raw = upgrades.get(name);
      if (!raw || raw.metadata.deletionTimestamp) return;
      const now = ctx.now();
      const parsed = edgeUpgradeSchema.safeParse(raw);
      if (!parsed.success) {
        // The CRD refuses such objects; one stored before a schema change could still be here.
        const message = `invalid spec: ${messageOf(parsed.error).slice(0, 2000)}`;
        const generation = raw.metadata.generation ?? 0;
        let conditions = (raw.status as EdgeUpgrade['status'])?.conditions;
        conditions = setCondition(conditions, { type: 'Failed', status: 'True', reason: 'InvalidSpec', message, observedGeneration: generation }, now);
        await writeStatus(raw, { ...(raw.status as EdgeUpgrade['status']), phase: 'Failed', message, observedGeneration: generation, conditions });
        return;
      }
      const eu = parsed.data;
      const uid = eu.metadata.uid ?? '';
      const running = runningUpgrade(upgrades.list(), poolExists);
      const missing = missingPools(raw, poolExists);
      const blocked = isStarted(raw)
        ? undefined
        : missing.length
          ? `no NodePool named ${missing.join(', ')} (the rollout starts once they exist)`
          : running !== undefined && running !== name
            ? `waiting for EdgeUpgrade ${running} to finish (one rollout at a time, oldest first)`
            : undefined;

      const mine = justTargeted.get(uid) ?? new Map<string, number>();
      const plan = planRollout({ upgrade: eu, nodes: nodes.list(), now, blocked, justTargeted: mine });

      const target: UpgradeTarget = { upgrade: name, uid, version: eu.spec.version, baseURL: trimSlash(eu.spec.baseURL) };
      for (const n of plan.setTargets) {
        await setTarget(n, target);
        mine.set(n, now);
        justTargeted.set(uid, mine);
      }
      if (plan.setTargets.length) log.info('upgrade targets set', { upgrade: name, version: eu.spec.version, pool: plan.status.currentPool, nodes: plan.setTargets });
      for (const n of plan.removeTargets) {
        const t = nodes.get(n) && targetOf(nodes.get(n)!);
        mine.delete(n);
        // The cache may lag our own write: only patch when the node still shows a target of ours.
        if (t && t !== 'malformed' && t.uid === uid) await setTarget(n, null);
      }
      if (plan.removeTargets.length) log.info('upgrade targets removed', { upgrade: name, nodes: plan.removeTargets });
      // Forget our own writes once both the node cache and the recorded status show them.
      const recorded = new Set((eu.status?.nodes ?? []).filter((x) => x.targetedAt).map((x) => x.name));
      for (const n of [...mine.keys()]) {
        const t = nodes.get(n) && targetOf(nodes.get(n)!);
        if (t && t !== 'malformed' && t.uid === uid && recorded.has(n)) mine.delete(n);
      }
      if (mine.size === 0) justTargeted.delete(uid);

      const before = eu.status?.phase;
      await writeStatus(raw, plan.status);
      if (plan.status.phase !== before) {
        const fields = { upgrade: name, version: eu.spec.version, phase: plan.status.phase, progress: plan.status.progress, message: plan.status.message };
        (plan.status.phase === 'Failed' ? log.warn : log.info)('edge upgrade phase changed', fields);
      }
      return plan.requeueAfterMs !== undefined ? { requeueAfterMs: plan.requeueAfterMs } : undefined;
    },
    ctx.queue,
  );

  const orphanCtl = createController(
    'edge-upgrade-orphans',
    [upgrades, nodes],
    async (name) => {
      const node = nodes.get(name);
      const t = node && targetOf(node);
      if (!t) return;
      if (t !== 'malformed') {
        const owner = upgrades.get(t.upgrade);
        if (owner && owner.metadata.uid === t.uid) return;
      }
      await setTarget(name, null);
      log.info('upgrade target of a deleted EdgeUpgrade removed', { node: name, upgrade: t === 'malformed' ? '(malformed)' : t.upgrade });
    },
    ctx.queue,
  );

  /** Rollouts a node change matters to: every open one, and those the node's annotations name. */
  const enqueueFor = (n: Node) => {
    const uids = new Set<string>();
    const t = targetOf(n);
    if (t && t !== 'malformed') uids.add(t.uid);
    const r = reportOf(n);
    if (r) uids.add(r.uid);
    for (const u of upgrades.list()) {
      if (!TERMINAL_PHASES.has(u.status?.phase ?? '') || uids.has(u.metadata.uid ?? '')) rolloutCtl.queue.add(u.metadata.name);
    }
  };
  const enqueueAll = () => upgrades.list().forEach((u) => rolloutCtl.queue.add(u.metadata.name));
  const relevant = (n: Node) =>
    JSON.stringify([
      n.metadata.labels?.[POOL_LABEL],
      isReady(n),
      n.metadata.annotations?.[UPGRADE_TARGET_ANNOTATION],
      n.metadata.annotations?.[UPGRADE_STATUS_ANNOTATION],
      n.metadata.annotations?.[EDGE_VERSION_ANNOTATION],
    ]);
  const hasTarget = (n: Node) => n.metadata.annotations?.[UPGRADE_TARGET_ANNOTATION] !== undefined;

  // The informers' first list comes as adds: a hub that starts (or takes over) sees every target.
  nodes.on({
    add(n) {
      enqueueFor(n);
      if (hasTarget(n)) orphanCtl.queue.add(n.metadata.name);
    },
    update(n, old) {
      if (relevant(n) === relevant(old)) return;
      enqueueFor(n);
      if (old.metadata.labels?.[POOL_LABEL] !== n.metadata.labels?.[POOL_LABEL]) enqueueFor(old);
      if (hasTarget(n)) orphanCtl.queue.add(n.metadata.name);
    },
    delete(n) {
      enqueueFor(n);
    },
  });
  upgrades.on({
    add: (u) => rolloutCtl.queue.add(u.metadata.name),
    update(u, old) {
      if (u.metadata.generation !== old.metadata.generation || u.metadata.deletionTimestamp !== old.metadata.deletionTimestamp || u.status?.phase !== old.status?.phase) {
        enqueueAll();
      }
    },
    delete(u) {
      justTargeted.delete(u.metadata.uid ?? '');
      for (const n of nodes.list()) {
        const t = targetOf(n);
        if (t === 'malformed' || (t && t.uid === u.metadata.uid)) orphanCtl.queue.add(n.metadata.name);
      }
      enqueueAll();
    },
  });
  pools.on({ add: enqueueAll, delete: enqueueAll });
  return [rolloutCtl, orphanCtl];
}
