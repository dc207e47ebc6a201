/**
 * Where one node stands in one rollout, from its annotations (shared/upgrade/contract.ts) and its
 * Ready condition. Pure: the planner (plan.ts) decides from these.
 *
 *   updated   runs the version and reported Healthy for this rollout — or runs it and reported
 *             nothing for this rollout (it was already there: counted, never targeted)
 *   inFlight  carries this rollout's target and has not reported a final phase (yet)
 *   failed    reported Failed or RolledBack for this rollout, or stayed in flight past the timeout
 *   waiting   not targeted yet
 */
import {
  EDGE_VERSION_ANNOTATION,
  FINAL_PHASES,
  UPGRADE_STATUS_ANNOTATION,
  UPGRADE_TARGET_ANNOTATION,
  parseAnnotation,
  upgradeStatusSchema,
  upgradeTargetSchema,
  type UpgradeStatus,
  type UpgradeTarget,
} from '../../../shared/upgrade/contract.ts';
import type { Node } from '../kube-types.ts';

export type NodeStage = 'updated' | 'inFlight' | 'failed' | 'waiting';

export interface Rollout {
  name: string;
  uid: string;
  version: string;
  nodeTimeoutSeconds: number;
}

export interface NodeState {
  name: string;
  pool: string;
  ready: boolean;
  /** The running version (EDGE_VERSION_ANNOTATION). */
  version?: string;
  /** This rollout's target is on the node (or this hub just set it). */
  targeted: boolean;
  /** Name of another rollout whose target the node carries: not ours to replace. */
  otherTarget?: string;
  /** What the node reported for this rollout (a report about another uid is ignored). */
  report?: UpgradeStatus;
  /** When this rollout targeted the node (ms). */
  targetedAt?: number;
  stage: NodeStage;
  /** Why it failed or waits (for status.nodes[].reason and the failure message). */
  reason?: string;
}

export const isReady = (n: Node) => n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';

/** The node's target: undefined when absent, 'malformed' when it does not parse (only the hub writes it). */
export function targetOf(n: Node): UpgradeTarget | 'malformed' | undefined {
  const raw = n.metadata.annotations?.[UPGRADE_TARGET_ANNOTATION];
  if (raw === undefined) return undefined;
  return parseAnnotation(upgradeTargetSchema, raw) ?? 'malformed';
}

export function reportOf(n: Node): UpgradeStatus | undefined {
  return parseAnnotation(upgradeStatusSchema, n.metadata.annotations?.[UPGRADE_STATUS_ANNOTATION]);
}

export interface StateOptions {
  now: number;
  /** When this rollout targeted the node, as recorded (status, or this hub's memory of its own write). */
  targetedAt?: number;
  /** This hub set the target a moment ago; its cache may not show it yet. */
  justTargeted?: boolean;
}

export function nodeState(node: Node, pool: string, r: Rollout, o: StateOptions): NodeState {
  const target = targetOf(node);
  const ours = target !== undefined && target !== 'malformed' && target.uid === r.uid;
  const rep = reportOf(node);
  const report = rep && rep.uid === r.uid ? rep : undefined;
  const version = node.metadata.annotations?.[EDGE_VERSION_ANNOTATION];
  const targeted = ours || o.justTargeted === true;
  const base = {
    name: node.metadata.name,
    pool,
    ready: isReady(node),
    ...(version !== undefined ? { version } : {}),
    targeted,
    ...(target && target !== 'malformed' && !ours ? { otherTarget: target.upgrade } : {}),
    ...(report ? { report } : {}),
  };
  const targetedAt = targeted ? (o.targetedAt ?? o.now) : o.targetedAt;
  const at = targetedAt !== undefined ? { targetedAt } : {};

  if (report && (report.phase === 'Failed' || report.phase === 'RolledBack')) {
    return { ...base, ...at, stage: 'failed', reason: `${report.phase}: ${report.reason ?? 'the node gave no reason'}` };
  }
  // Without any report for this rollout the node got there by itself (it already ran the version,
  // or was upgraded by other means): waiting for a report it has no reason to write would time out.
  if (version === r.version && (report === undefined || report.phase === 'Healthy')) {
    return { ...base, ...at, stage: 'updated' };
  }
  const started = report !== undefined && !FINAL_PHASES.has(report.phase);
  if (targeted || started) {
    const since = targetedAt ?? o.now;
    if (o.now - since >= r.nodeTimeoutSeconds * 1000) {
      const last = report ? ` (last report: ${report.phase}${report.phase === 'Healthy' ? `, but it runs ${version ?? 'an unknown version'}` : ''})` : '';
      return { ...base, targetedAt: since, stage: 'failed', reason: `no report from the node in ${r.nodeTimeoutSeconds} s${last}${base.ready ? '' : '; the node is NotReady'}` };
    }
    return { ...base, targetedAt: since, stage: 'inFlight' };
  }
  const why = base.otherTarget ? `carries the target of EdgeUpgrade ${base.otherTarget}` : base.ready ? undefined : 'NotReady';
  return { ...base, ...at, stage: 'waiting', ...(why ? { reason: why } : {}) };
}
