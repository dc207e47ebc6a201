/**
 * One rollout at a time: which EdgeUpgrade may progress. A rollout that has started (Progressing
 * or Paused) keeps going; otherwise the oldest (creationTimestamp, then name) that is not final,
 * not being deleted and whose pools all exist. Every other one waits, Pending.
 */
import { TERMINAL_PHASES } from '../../api/edge-upgrade.ts';
import type { KubeObject } from '../kube-types.ts';

export interface UpgradeLike extends KubeObject {
  spec?: { pools?: string[] };
  status?: { phase?: string };
}

const ACTIVE_PHASES = new Set(['Progressing', 'Paused']);

const older = (a: UpgradeLike, b: UpgradeLike) =>
  (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || a.metadata.name.localeCompare(b.metadata.name);

export function isStarted(u: UpgradeLike): boolean {
  return ACTIVE_PHASES.has(u.status?.phase ?? '');
}

/** Pools the rollout lists that have no NodePool. */
export function missingPools(u: UpgradeLike, poolExists: (name: string) => boolean): string[] {
  return (u.spec?.pools ?? []).filter((p) => !poolExists(p));
}

/** The name of the EdgeUpgrade that may progress now, if any. */
export function runningUpgrade(all: UpgradeLike[], poolExists: (name: string) => boolean): string | undefined {
  const open = all.filter((u) => !u.metadata.deletionTimestamp && !TERMINAL_PHASES.has(u.status?.phase ?? '')).sort(older);
  const started = open.find(isStarted);
  if (started) return started.metadata.name;
  return open.find((u) => missingPools(u, poolExists).length === 0)?.metadata.name;
}
