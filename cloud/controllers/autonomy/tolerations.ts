/**
 * The eviction tolerations of a pod on an autonomous node — pure functions.
 *
 * What kube-apiserver allows on a running pod (ValidatePodUpdate → validateOnlyAddedTolerations,
 * k8s.io/kubernetes v1.34 pkg/apis/core/validation): every existing toleration must still be
 * there, equal except for tolerationSeconds, which may change to anything — including being
 * removed (tolerate forever); new tolerations may be added; none may be removed.
 *
 * So with autonomy on, every NoExecute toleration for node.kubernetes.io/unreachable and
 * node.kubernetes.io/not-ready gets the node's duration (none for `0` = forever), and one is
 * added for a key the pod has none for. The pod annotation apps.tether.dev/original-tolerations
 * records, by index, the tolerationSeconds each changed toleration had (null: none) and which
 * indexes were added. With autonomy off again, the recorded values come back; an added
 * toleration cannot be removed, so it gets `restoreSeconds` (the apiserver's default, 300 s).
 */
import { AUTONOMY_ORIGINAL_ANNOTATION } from '../../api/keys.ts';
import { jsonEqual } from '../conditions.ts';
import type { Pod, Toleration } from '../kube-types.ts';
import type { Autonomy } from './duration.ts';

export const EVICTION_KEYS = ['node.kubernetes.io/unreachable', 'node.kubernetes.io/not-ready'] as const;

interface Original {
  /** index → original tolerationSeconds (null: had none). */
  seconds: Record<string, number | null>;
  /** indexes of tolerations the controller added. */
  added: number[];
}

const isEviction = (t: Toleration, key: string) =>
  t.key === key && t.effect === 'NoExecute' && (t.operator === 'Exists' || ((t.operator ?? 'Equal') === 'Equal' && !t.value));

export function readOriginal(pod: Pod): Original | undefined {
  const raw = pod.metadata.annotations?.[AUTONOMY_ORIGINAL_ANNOTATION];
  if (!raw) return undefined;
  try {
    const o = JSON.parse(raw) as Partial<Original>;
    return { seconds: o.seconds ?? {}, added: o.added ?? [] };
  } catch {
    return undefined;
  }
}

export interface TolerationPatch {
  metadata: { resourceVersion?: string; annotations: Record<string, string | null> };
  spec: { tolerations: Toleration[] };
}

const withSeconds = (t: Toleration, s: number | null | undefined): Toleration => {
  const { tolerationSeconds: _, ...rest } = t;
  return s === null || s === undefined ? rest : { ...rest, tolerationSeconds: s };
};

/**
 * The merge patch (tolerations + record, guarded by resourceVersion) that gives `pod` the
 * tolerations for `autonomy` (undefined: autonomy off), or null when it has them already.
 */
export function tolerationPatch(pod: Pod, autonomy: Autonomy | undefined, restoreSeconds: number): TolerationPatch | null {
  const current = pod.spec?.tolerations ?? [];
  const original = readOriginal(pod);
  let next: Toleration[];
  let record: Original | undefined;
  if (autonomy) {
    const want = autonomy.forever ? null : autonomy.seconds;
    record = original ? { seconds: { ...original.seconds }, added: [...original.added] } : { seconds: {}, added: [] };
    next = current.map((t) => ({ ...t }));
    for (const key of EVICTION_KEYS) {
      let found = false;
      next.forEach((t, i) => {
        if (!isEviction(t, key)) return;
        found = true;
        if (!record!.added.includes(i) && !(String(i) in record!.seconds)) record!.seconds[String(i)] = t.tolerationSeconds ?? null;
        next[i] = withSeconds(t, want);
      });
      if (!found) {
        record.added.push(next.length);
        next.push(withSeconds({ key, operator: 'Exists', effect: 'NoExecute' }, want));
      }
    }
  } else {
    if (!original) return null;
    next = current.map((t, i) => {
      if (original.added.includes(i)) return withSeconds(t, restoreSeconds);
      if (String(i) in original.seconds) return withSeconds(t, original.seconds[String(i)]);
      return t;
    });
  }
  const recordText = record ? JSON.stringify(record) : undefined;
  const same =
    recordText === pod.metadata.annotations?.[AUTONOMY_ORIGINAL_ANNOTATION] &&
    next.length === current.length &&
    next.every((t, i) => jsonEqual(t, current[i]));
  if (same) return null;
  return {
    metadata: { resourceVersion: pod.metadata.resourceVersion, annotations: { [AUTONOMY_ORIGINAL_ANNOTATION]: recordText ?? null } },
    spec: { tolerations: next },
  };
}

/** Pods the autonomy controller leaves alone: DaemonSet pods, static (mirror) pods, finished or terminating pods. */
export function isExempt(pod: Pod): boolean {
  if (pod.metadata.annotations?.['kubernetes.io/config.mirror']) return true;
  if (pod.metadata.ownerReferences?.some((o) => o.controller && o.kind === 'DaemonSet')) return true;
  if (pod.metadata.deletionTimestamp) return true;
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}
