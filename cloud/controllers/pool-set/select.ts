/** Which NodePools a PoolSet (or one of its tweaks) selects. */
import type { z } from 'zod';
import type { labelSelectorSchema } from '../../api/_schema.ts';

export type LabelSelector = z.output<typeof labelSelectorSchema>;

/** Kubernetes semantics: every matchLabels entry and every expression must hold; `{}` matches all. */
export function matchesSelector(sel: LabelSelector, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = e.key in l;
    const inValues = has && (e.values ?? []).includes(l[e.key]!);
    const ok = e.operator === 'In' ? inValues : e.operator === 'NotIn' ? !inValues : e.operator === 'Exists' ? has : !has;
    if (!ok) return false;
  }
  return true;
}

export interface PoolRef {
  name: string;
  labels: Record<string, string>;
}

/** Pools named in `names` or matched by `selector`, among existing pools; plus named ones that do not exist. */
export function selectPools(
  names: string[] | undefined,
  selector: LabelSelector | undefined,
  pools: PoolRef[],
): { selected: PoolRef[]; missing: string[] } {
  const byName = new Map(pools.map((p) => [p.name, p]));
  const selected = new Map<string, PoolRef>();
  const missing: string[] = [];
  for (const n of names ?? []) {
    const p = byName.get(n);
    if (p) selected.set(n, p);
    else if (!missing.includes(n)) missing.push(n);
  }
  if (selector) for (const p of pools) if (matchesSelector(selector, p.labels)) selected.set(p.name, p);
  return { selected: [...selected.values()].sort((a, b) => a.name.localeCompare(b.name)), missing: missing.sort() };
}
