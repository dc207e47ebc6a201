/**
 * One reconcile of one EdgeUpgrade, as a pure function: from the object, the Nodes and the clock,
 * the status to write, the nodes to target and the targets to take off. The algorithm (waves,
 * pauses, failures, clean-up) is in docs/controllers.md ("EdgeUpgrade").
 */
import { FINAL_PHASES } from '../../../shared/upgrade/contract.ts';
import { POOL_LABEL } from '../../api/keys.ts';
import type { EdgeUpgrade, EdgeUpgradePhase, EdgeUpgradeStatus, NodeUpgradeStatus } from '../../api/edge-upgrade.ts';
import { setCondition } from '../conditions.ts';
import { rfc3339, type Node } from '../kube-types.ts';
import { nodeState, targetOf, type NodeState, type Rollout } from './nodes.ts';

/** status.nodes lists at most this many nodes (etcd limits an object to ~1.5 MB); targeted and failed ones first. */
export const MAX_LISTED_NODES = 1000;

export interface PlanInput {
  upgrade: EdgeUpgrade;
  /** Every Node (members of the listed pools, and any other carrying this rollout's target). */
  nodes: Node[];
  now: number;
  /** Why this rollout may not start yet (another runs; a pool is missing); undefined when it may. */
  blocked?: string;
  /** Nodes this hub targeted for this rollout (name → when) that its cache may not show yet. */
  justTargeted?: ReadonlyMap<string, number>;
}

export interface Plan {
  status: EdgeUpgradeStatus;
  setTargets: string[];
  removeTargets: string[];
  requeueAfterMs?: number;
}

const parseTime = (s: string | undefined) => {
  const t = s === undefined ? NaN : Date.parse(s);
  return Number.isNaN(t) ? undefined : t;
};

/** A started node (non-final report) keeps its target: it finishes or rolls back by itself. */
const started = (s: NodeState) => s.stage === 'inFlight' && s.report !== undefined && !FINAL_PHASES.has(s.report.phase);

/** A readable list: the first five, and how many there are. */
const few = (xs: string[]) => (xs.length > 5 ? `${xs.slice(0, 5).join(', ')}, … (${xs.length})` : xs.join(', '));

function failureMessage(failed: NodeState[]): string {
  const shown = failed.slice(0, 3).map((s) => `node ${s.name}: ${s.reason}`);
  return `${shown.join('; ')}${failed.length > 3 ? ` (and ${failed.length - 3} more)` : ''}`;
}

function listed(states: NodeState[]): NodeUpgradeStatus[] {
  const entry = (s: NodeState): NodeUpgradeStatus => ({
    name: s.name,
    pool: s.pool,
    phase: s.report?.phase ?? (s.stage === 'updated' ? 'Healthy' : 'Waiting'),
    ...(s.version !== undefined ? { version: s.version } : {}),
    ...(s.reason !== undefined ? { reason: s.reason.slice(0, 4096) } : s.stage === 'updated' && !s.report ? { reason: `ran ${s.version} before this rollout` } : {}),
    ...(s.targetedAt !== undefined ? { targetedAt: rfc3339(s.targetedAt) } : {}),
  });
  if (states.length <= MAX_LISTED_NODES) return states.map(entry);
  // The timeouts live in targetedAt: targeted and failed nodes are always listed.
  const important = new Set(states.filter((s) => s.targetedAt !== undefined || s.stage === 'failed').slice(0, MAX_LISTED_NODES));
  const rest = states.filter((s) => !important.has(s)).slice(0, MAX_LISTED_NODES - important.size);
  const keep = new Set([...important, ...rest]);
  return states.filter((s) => keep.has(s)).map(entry);
}

export function planRollout(input: PlanInput): Plan {
  const { upgrade: eu, now } = input;
  const spec = eu.spec;
  const prev = eu.status ?? {};
  const uid = eu.metadata.uid ?? '';
  const rollout: Rollout = { name: eu.metadata.name, uid, version: spec.version, nodeTimeoutSeconds: spec.nodeTimeoutSeconds };
  const poolIndex = new Map(spec.pools.map((p, i) => [p, i]));
  const recorded = new Map((prev.nodes ?? []).map((n) => [n.name, parseTime(n.targetedAt)]));
  const stateOf = (n: Node, pool: string) =>
    nodeState(n, pool, rollout, {
      now,
      targetedAt: input.justTargeted?.get(n.metadata.name) ?? recorded.get(n.metadata.name),
      justTargeted: input.justTargeted?.has(n.metadata.name) ?? false,
    });

  const members: NodeState[] = [];
  const strays: NodeState[] = [];
  for (const n of input.nodes) {
    const pool = n.metadata.labels?.[POOL_LABEL] ?? '';
    if (poolIndex.has(pool)) members.push(stateOf(n, pool));
    else {
      const t = targetOf(n);
      if (t && t !== 'malformed' && t.uid === uid) strays.push(stateOf(n, pool));
    }
  }
  members.sort((a, b) => poolIndex.get(a.pool)! - poolIndex.get(b.pool)! || a.name.localeCompare(b.name));

  const total = members.length;
  const updated = members.filter((s) => s.stage === 'updated').length;
  const ours = [...members, ...strays].filter((s) => s.targeted);
  /** Names of the nodes carrying our target, but those `keep` holds for: the targets to take off. */
  const allBut = (keep: (s: NodeState) => boolean) => ours.filter((s) => !keep(s)).map((s) => s.name);
  // A node that left the listed pools keeps our target only while it is mid-upgrade.
  const strayRemovals = strays.filter((s) => !started(s)).map((s) => s.name);
  const timeoutOf = (s: NodeState) => (s.targetedAt ?? now) + spec.nodeTimeoutSeconds * 1000 - now;
  const nextTimeout = (xs: NodeState[]) => (xs.length ? Math.max(1, Math.min(...xs.map(timeoutOf))) : undefined);

  const result = (
    phase: EdgeUpgradePhase,
    message: string,
    o: { setTargets?: string[]; removeTargets?: string[]; currentPool?: string; pausedUntil?: number; requeueAfterMs?: number; states?: NodeState[] } = {},
  ): Plan => {
    const generation = eu.metadata.generation ?? 0;
    let conditions = prev.conditions;
    conditions = setCondition(conditions, { type: 'Complete', status: phase === 'Complete' ? 'True' : 'False', reason: phase, message, observedGeneration: generation }, now);
    conditions = setCondition(conditions, { type: 'Failed', status: phase === 'Failed' ? 'True' : 'False', reason: phase, message, observedGeneration: generation }, now);
    const status: EdgeUpgradeStatus = {
      phase,
      updated,
      total,
      progress: `${updated}/${total}`,
      ...(o.currentPool !== undefined ? { currentPool: o.currentPool } : {}),
      ...(o.pausedUntil !== undefined ? { pausedUntil: rfc3339(o.pausedUntil) } : {}),
      message,
      observedGeneration: generation,
      nodes: listed(o.states ?? members),
      conditions,
    };
    return {
      status,
      setTargets: o.setTargets ?? [],
      removeTargets: o.removeTargets ?? [],
      ...(o.requeueAfterMs !== undefined ? { requeueAfterMs: o.requeueAfterMs } : {}),
    };
  };

  // Complete is final and its status stays as written; only leftovers of its targets go.
  if (prev.phase === 'Complete') return { status: prev, setTargets: [], removeTargets: ours.map((s) => s.name) };

  const failed = members.filter((s) => s.stage === 'failed');
  if (prev.phase === 'Failed' || failed.length) {
    // No new targets; nodes not started lose theirs; started ones finish by themselves and lose
    // theirs once they report a final phase (or time out).
    const kept = ours.filter(started);
    return result('Failed', prev.phase === 'Failed' && prev.message ? prev.message : failureMessage(failed), {
      removeTargets: allBut(started),
      ...(prev.currentPool !== undefined ? { currentPool: prev.currentPool } : {}),
      ...(kept.length ? { requeueAfterMs: nextTimeout(kept)! } : {}),
    });
  }

  if (input.blocked !== undefined) return result('Pending', input.blocked, { removeTargets: allBut(started) });

  if (updated === total) {
    const message = total ? `${total} node(s) run ${spec.version}` : `no nodes in ${spec.pools.join(', ')}`;
    return result('Complete', message, { removeTargets: ours.map((s) => s.name) });
  }

  const i = Math.min(...members.filter((s) => s.stage !== 'updated').map((s) => poolIndex.get(s.pool)!));
  const pool = spec.pools[i]!;
  const inFlight = members.filter((s) => s.stage === 'inFlight');
  const prevIndex = prev.currentPool !== undefined ? poolIndex.get(prev.currentPool) : undefined;

  // A pause starts when the rollout moves on from a pool it worked on, and lasts until pausedUntil.
  let pausedUntil: number | undefined;
  if (spec.pauseSeconds > 0 && prevIndex !== undefined && prevIndex < i && inFlight.length === 0) pausedUntil = now + spec.pauseSeconds * 1000;
  else if (prev.phase === 'Paused' && prev.currentPool === pool) {
    const until = parseTime(prev.pausedUntil);
    if (until !== undefined && now < until) pausedUntil = until;
  }
  if (pausedUntil !== undefined) {
    return result('Paused', `pausing ${spec.pauseSeconds} s before pool ${pool}`, {
      currentPool: pool,
      pausedUntil,
      removeTargets: strayRemovals,
      requeueAfterMs: Math.max(1, pausedUntil - now),
    });
  }

  const free = Math.max(0, spec.maxUnavailable - inFlight.length);
  const candidates = members.filter((s) => s.pool === pool && s.stage === 'waiting' && s.ready && s.otherTarget === undefined);
  const chosen = new Set(candidates.slice(0, free).map((s) => s.name));
  const states = members.map((s) => (chosen.has(s.name) ? { ...s, targeted: true, targetedAt: now, stage: 'inFlight' as const, reason: undefined } : s));
  const upgrading = states.filter((s) => s.stage === 'inFlight');
  const held = states.filter((s) => s.pool === pool && s.stage === 'waiting' && (!s.ready || s.otherTarget !== undefined));
  const parts: string[] = [];
  if (upgrading.length) parts.push(`upgrading ${few(upgrading.map((s) => s.name))}`);
  if (held.length) parts.push(`waiting for ${few(held.map((s) => `${s.name} (${s.reason})`))}`);
  return result('Progressing', `pool ${pool}: ${parts.join('; ') || 'waiting'}`, {
    setTargets: [...chosen],
    removeTargets: strayRemovals,
    currentPool: pool,
    states,
    ...(upgrading.length ? { requeueAfterMs: nextTimeout(upgrading)! } : {}),
  });
}
