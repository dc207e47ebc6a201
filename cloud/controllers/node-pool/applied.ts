/**
 * What a NodePool puts on a member node, and how it is taken off again — pure functions.
 *
 * The node annotation apps.tether.dev/pool-applied records, as JSON, the labels, annotations and
 * taints the pool set, and the values (or taints) they replaced (`prior`). On every reconcile:
 *   1. entries recorded but no longer wanted are undone — only when the node still has the
 *      value the pool set (someone else changed it since: left alone); the prior value comes
 *      back, or the entry goes when there was none;
 *   2. wanted entries are set, remembering what they replace (the pool wins a clash);
 *   3. the record is rewritten (removed when the node is in no pool and nothing is applied).
 * Nothing else on the node is touched. Taints are identified by key and effect.
 */
import { POOL_APPLIED_ANNOTATION } from '../../api/keys.ts';
import type { NodePoolSpec } from '../../api/node-pool.ts';
import type { Node, Taint } from '../kube-types.ts';

type Str = Record<string, string>;
interface TaintEntry {
  key: string;
  value?: string;
  effect: string;
}

export interface AppliedRecord {
  pool: string;
  labels: Str;
  annotations: Str;
  taints: TaintEntry[];
  prior: { labels: Str; annotations: Str; taints: TaintEntry[] };
}

export interface Desired {
  pool: string;
  spec: Pick<NodePoolSpec, 'labels' | 'annotations' | 'taints'>;
}

/** A JSON merge patch for the node (with its resourceVersion, so concurrent writers conflict). */
export interface NodePatch {
  metadata: { resourceVersion?: string; labels?: Record<string, string | null>; annotations?: Record<string, string | null> };
  spec?: { taints: Taint[] | null };
}

export function readRecord(node: Node): AppliedRecord | undefined {
  const raw = node.metadata.annotations?.[POOL_APPLIED_ANNOTATION];
  if (!raw) return undefined;
  try {
    const r = JSON.parse(raw) as Partial<AppliedRecord>;
    return {
      pool: String(r.pool ?? ''),
      labels: r.labels ?? {},
      annotations: r.annotations ?? {},
      taints: r.taints ?? [],
      prior: { labels: r.prior?.labels ?? {}, annotations: r.prior?.annotations ?? {}, taints: r.prior?.taints ?? [] },
    };
  } catch {
    return undefined; // unreadable: treat as nothing applied (never undo what we cannot prove is ours)
  }
}

function mergeMap(current: Str, prev: Str, prevPrior: Str, want: Str): { result: Str; prior: Str } {
  const result = { ...current };
  for (const [k, v] of Object.entries(prev)) {
    if (k in want || result[k] !== v) continue;
    if (k in prevPrior) result[k] = prevPrior[k]!;
    else delete result[k];
  }
  const prior: Str = {};
  for (const [k, v] of Object.entries(want)) {
    if (k in prev) {
      if (k in prevPrior) prior[k] = prevPrior[k]!;
    } else if (k in result) prior[k] = result[k]!;
    result[k] = v;
  }
  return { result, prior };
}

const sameTaint = (a: TaintEntry, b: TaintEntry) => a.key === b.key && a.effect === b.effect;
const entry = (t: TaintEntry): TaintEntry => (t.value ? { key: t.key, value: t.value, effect: t.effect } : { key: t.key, effect: t.effect });

function mergeTaints(current: Taint[], prev: TaintEntry[], prevPrior: TaintEntry[], want: TaintEntry[]): { result: Taint[]; prior: TaintEntry[] } {
  let result: Taint[] = current.map((t) => ({ ...t }));
  for (const p of prev) {
    if (want.some((w) => sameTaint(w, p))) continue;
    const i = result.findIndex((t) => sameTaint(t, p));
    if (i < 0 || (result[i]!.value ?? '') !== (p.value ?? '')) continue;
    const before = prevPrior.find((t) => sameTaint(t, p));
    if (before) result[i] = entry(before);
    else result = result.filter((_, j) => j !== i);
  }
  const prior: TaintEntry[] = [];
  for (const w of want) {
    const i = result.findIndex((t) => sameTaint(t, w));
    if (prev.some((p) => sameTaint(p, w))) {
      const before = prevPrior.find((t) => sameTaint(t, w));
      if (before) prior.push(before);
    } else if (i >= 0) prior.push(entry(result[i]!));
    if (i >= 0) {
      if ((result[i]!.value ?? '') !== (w.value ?? '')) result[i] = entry(w);
    } else result.push(entry(w));
  }
  return { result, prior };
}

const taintsEqual = (a: Taint[], b: Taint[]) =>
  a.length === b.length && a.every((t, i) => sameTaint(t, b[i]!) && (t.value ?? '') === (b[i]!.value ?? ''));

/** The merge patch that brings `node` in line with `desired` (undefined: in no pool), or null when it already is. */
export function nodePatch(node: Node, desired: Desired | undefined): NodePatch | null {
  const prev = readRecord(node) ?? { pool: '', labels: {}, annotations: {}, taints: [], prior: { labels: {}, annotations: {}, taints: [] } };
  const want = {
    labels: desired?.spec.labels ?? {},
    annotations: desired?.spec.annotations ?? {},
    taints: (desired?.spec.taints ?? []).map(entry),
  };
  const curLabels = node.metadata.labels ?? {};
  const curAnnotations = { ...(node.metadata.annotations ?? {}) };
  delete curAnnotations[POOL_APPLIED_ANNOTATION];
  const curTaints = node.spec?.taints ?? [];

  const labels = mergeMap(curLabels, prev.labels, prev.prior.labels, want.labels);
  const annotations = mergeMap(curAnnotations, prev.annotations, prev.prior.annotations, want.annotations);
  const taints = mergeTaints(curTaints, prev.taints, prev.prior.taints, want.taints);

  const record: AppliedRecord | undefined = !desired
    ? undefined
    : {
        pool: desired.pool,
        labels: want.labels,
        annotations: want.annotations,
        taints: want.taints,
        prior: { labels: labels.prior, annotations: annotations.prior, taints: taints.prior },
      };
  const recordText = record ? JSON.stringify(record) : undefined;

  const patch: NodePatch = { metadata: { resourceVersion: node.metadata.resourceVersion } };
  const labelDiff = diffMap(curLabels, labels.result);
  const annDiff = diffMap(curAnnotations, annotations.result);
  if (recordText !== node.metadata.annotations?.[POOL_APPLIED_ANNOTATION]) annDiff[POOL_APPLIED_ANNOTATION] = recordText ?? null;
  if (Object.keys(labelDiff).length) patch.metadata.labels = labelDiff;
  if (Object.keys(annDiff).length) patch.metadata.annotations = annDiff;
  if (!taintsEqual(curTaints, taints.result)) patch.spec = { taints: taints.result.length ? taints.result : null };
  return patch.metadata.labels || patch.metadata.annotations || patch.spec ? patch : null;
}

function diffMap(from: Str, to: Str): Record<string, string | null> {
  const d: Record<string, string | null> = {};
  for (const k of Object.keys(from)) if (!(k in to)) d[k] = null;
  for (const [k, v] of Object.entries(to)) if (from[k] !== v) d[k] = v;
  return d;
}

/** Whether `node` carries everything `spec` asks for (the pool's Applied condition). */
export function isApplied(node: Node, pool: string, spec: Desired['spec']): boolean {
  return nodePatch(node, { pool, spec }) === null;
}
