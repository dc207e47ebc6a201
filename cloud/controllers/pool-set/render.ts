/**
 * The workload a PoolSet wants in one pool — a pure function of the PoolSet, the pool and the
 * pool's labels. Order, as docs/controllers.md ("PoolSet tweaks") states:
 *
 *   1. the template: apiVersion apps/v1, the kind, metadata (labels, annotations), spec;
 *   2. the fields the controller owns: name `<poolset>-<pool>`, namespace, owner reference,
 *      labels apps.tether.dev/poolset and apps.tether.dev/pool on the workload, its selector
 *      and its pod template, and the node selector apps.tether.dev/pool=<pool>;
 *   3. the tweaks that apply to the pool, in list order; inside one tweak: replicas, then
 *      containerImages (in order), then patches (in order), `{{pool}}` replaced in patch values.
 *
 * Every write of step 3 has a path. A write whose path equals, contains or lies inside a path an
 * earlier write of step 3 made is refused (it would silently undo or be undone by the earlier
 * one), as is any write touching a field of step 2. A refusal names both writes; the pool's
 * workload is then left as it is and the PoolSet's TweaksValid condition says why.
 */
import { createHash } from 'node:crypto';
import { API_VERSION, POOLSET_HASH_ANNOTATION, POOLSET_LABEL, POOLSET_POOL_LABEL, POOL_LABEL } from '../../api/keys.ts';
import type { PoolSet, Tweak } from '../../api/pool-set.ts';
import { applyOp, formatPointer, parsePointer, substitutePool, type JsonValue } from './json-patch.ts';
import { matchesSelector, type PoolRef } from './select.ts';

export type RenderResult =
  | { ok: true; name: string; kind: string; object: Record<string, any>; hash: string }
  | { ok: false; name: string; kind: string; errors: string[] };

const OWNED = [
  '/apiVersion',
  '/kind',
  '/metadata/name',
  '/metadata/namespace',
  '/metadata/ownerReferences',
  formatPointer(['metadata', 'labels', POOLSET_LABEL]),
  formatPointer(['metadata', 'labels', POOLSET_POOL_LABEL]),
  formatPointer(['metadata', 'annotations', POOLSET_HASH_ANNOTATION]),
  '/spec/selector',
  formatPointer(['spec', 'template', 'metadata', 'labels', POOLSET_LABEL]),
  formatPointer(['spec', 'template', 'metadata', 'labels', POOLSET_POOL_LABEL]),
  formatPointer(['spec', 'template', 'spec', 'nodeSelector', POOL_LABEL]),
].map((p) => ({ path: parsePointer(p), by: `the controller (${p})` }));

/** One path contains the other (or they are equal), segment by segment. */
export function overlaps(a: readonly string[], b: readonly string[]): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function workloadName(poolSet: string, pool: string): string {
  return `${poolSet}-${pool}`;
}

const clone = <T>(v: T): T => structuredClone(v);

function tweaksFor(tweaks: Tweak[], pool: PoolRef): { tweak: Tweak; index: number }[] {
  return tweaks
    .map((tweak, index) => ({ tweak, index }))
    .filter(({ tweak }) => (tweak.pools ?? []).includes(pool.name) || (tweak.poolSelector !== undefined && matchesSelector(tweak.poolSelector, pool.labels)));
}

export function renderWorkload(ps: PoolSet, pool: PoolRef): RenderResult {
  const kind = ps.spec.workload.kind;
  const name = workloadName(ps.metadata.name, pool.name);
  const errors: string[] = [];
  const maxName = kind === 'StatefulSet' ? 52 : 253;
  if (name.length > maxName) {
    return { ok: false, name, kind, errors: [`${pool.name}: the ${kind} name ${name} is longer than ${maxName} characters`] };
  }
  const ours = { [POOLSET_LABEL]: ps.metadata.name, [POOLSET_POOL_LABEL]: pool.name };
  const tpl = ps.spec.workload;
  const spec = clone(tpl.spec) as Record<string, any>;
  spec.selector = { ...(spec.selector ?? {}), matchLabels: { ...(spec.selector?.matchLabels ?? {}), ...ours } };
  spec.template = { ...spec.template };
  spec.template.metadata = { ...(spec.template.metadata ?? {}), labels: { ...(spec.template.metadata?.labels ?? {}), ...ours } };
  spec.template.spec = { ...(spec.template.spec ?? {}) };
  spec.template.spec.nodeSelector = { ...(spec.template.spec.nodeSelector ?? {}), [POOL_LABEL]: pool.name };
  const object: Record<string, any> = {
    apiVersion: 'apps/v1',
    kind,
    metadata: {
      name,
      namespace: ps.metadata.namespace,
      labels: { ...(tpl.metadata?.labels ?? {}), ...ours },
      ...(tpl.metadata?.annotations ? { annotations: { ...tpl.metadata.annotations } } : {}),
      ownerReferences: [{ apiVersion: API_VERSION, kind: 'PoolSet', name: ps.metadata.name, uid: ps.metadata.uid ?? '', controller: true, blockOwnerDeletion: true }],
    },
    spec,
  };

  const written: { path: string[]; by: string }[] = [];
  const write = (by: string, pointer: string, op: () => string) => {
    const path = parsePointer(pointer);
    const clash = OWNED.find((o) => overlaps(o.path, path)) ?? written.find((w) => overlaps(w.path, path));
    if (clash) {
      errors.push(`${pool.name}: ${by} (${pointer}) overlaps ${clash.by}`);
      return;
    }
    try {
      const concrete = op();
      written.push({ path: parsePointer(concrete), by: `${by} (${concrete})` });
    } catch (e) {
      errors.push(`${pool.name}: ${by}: ${(e as Error).message}`);
    }
  };

  for (const { tweak, index } of tweaksFor(ps.spec.tweaks ?? [], pool)) {
    const at = `tweaks[${index}]`;
    if (tweak.replicas !== undefined) {
      write(`${at}.replicas`, '/spec/replicas', () => ((spec.replicas = tweak.replicas), '/spec/replicas'));
    }
    (tweak.containerImages ?? []).forEach((ci, j) => {
      const by = `${at}.containerImages[${j}]`;
      const podSpec = spec.template.spec as { containers?: { name: string }[]; initContainers?: { name: string }[] };
      const list = (podSpec.containers ?? []).some((c) => c.name === ci.name) ? 'containers' : 'initContainers';
      const i = (podSpec[list] ?? []).findIndex((c) => c.name === ci.name);
      if (i < 0) {
        errors.push(`${pool.name}: ${by}: no container named ${ci.name}`);
        return;
      }
      const pointer = `/spec/template/spec/${list}/${i}/image`;
      write(by, pointer, () => applyOp(object as JsonValue, { op: 'replace', path: pointer, value: ci.image }));
    });
    (tweak.patches ?? []).forEach((p, j) => {
      const by = `${at}.patches[${j}]`;
      if (p.op !== 'remove' && p.value === undefined) {
        errors.push(`${pool.name}: ${by}: ${p.op} needs a value`);
        return;
      }
      write(by, p.path, () =>
        applyOp(object as JsonValue, p.op === 'remove' ? { op: 'remove', path: p.path } : { op: p.op, path: p.path, value: substitutePool(p.value, pool.name) }),
      );
    });
  }
  if (errors.length) return { ok: false, name, kind, errors };
  const hash = createHash('sha256').update(JSON.stringify(object)).digest('hex').slice(0, 16);
  object.metadata.annotations = { ...(object.metadata.annotations ?? {}), [POOLSET_HASH_ANNOTATION]: hash };
  return { ok: true, name, kind, object, hash };
}
