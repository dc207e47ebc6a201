import { describe, expect, test } from 'bun:test';
import { POOL_APPLIED_ANNOTATION } from '../../api/keys.ts';
import type { Node } from '../kube-types.ts';
import { isApplied, nodePatch, readRecord, type NodePatch } from './applied.ts';

function node(labels: Record<string, string> = {}, annotations: Record<string, string> = {}, taints: Node['spec'] = {}): Node {
  return { metadata: { name: 'n1', resourceVersion: '7', labels, annotations }, spec: taints };
}

/** Applies a merge patch the way the apiserver does, for the fields nodePatch writes. */
function apply(n: Node, p: NodePatch | null): Node {
  if (!p) return n;
  const merge = (cur: Record<string, string> | undefined, d: Record<string, string | null> | undefined) => {
    const out = { ...(cur ?? {}) };
    for (const [k, v] of Object.entries(d ?? {})) if (v === null) delete out[k];
    else out[k] = v;
    return out;
  };
  return {
    metadata: { ...n.metadata, labels: merge(n.metadata.labels, p.metadata.labels), annotations: merge(n.metadata.annotations, p.metadata.annotations) },
    spec: p.spec ? { ...n.spec, taints: p.spec.taints ?? undefined } : n.spec,
  };
}

const spec = { labels: { site: 'north', tier: 'edge' }, annotations: { 'example.com/owner': 'ops' }, taints: [{ key: 'edge', effect: 'NoSchedule' as const }] };

describe('NodePool application to a member node', () => {
  test('merges labels, annotations and taints, and records them on the node', () => {
    const n = apply(node({ keep: 'me', [`apps.tether.dev/pool`]: 'a' }), nodePatch(node({ keep: 'me', 'apps.tether.dev/pool': 'a' }), { pool: 'a', spec }));
    expect(n.metadata.labels).toEqual({ keep: 'me', 'apps.tether.dev/pool': 'a', site: 'north', tier: 'edge' });
    expect(n.metadata.annotations!['example.com/owner']).toBe('ops');
    expect(n.spec!.taints).toEqual([{ key: 'edge', effect: 'NoSchedule' }]);
    expect(readRecord(n)!.pool).toBe('a');
    expect(isApplied(n, 'a', spec)).toBe(true);
  });

  test('is idempotent: a node already in line gets no patch', () => {
    const once = apply(node(), nodePatch(node(), { pool: 'a', spec }));
    expect(nodePatch(once, { pool: 'a', spec })).toBeNull();
  });

  test('the patch carries the resourceVersion so a concurrent writer causes a conflict', () => {
    expect(nodePatch(node(), { pool: 'a', spec })!.metadata.resourceVersion).toBe('7');
  });

  test('removes what a previous version of the pool added and leaves everything else', () => {
    const before = node({ keep: 'me' }, { other: 'x' }, { taints: [{ key: 'node.kubernetes.io/unreachable', effect: 'NoExecute' }] });
    const applied = apply(before, nodePatch(before, { pool: 'a', spec }));
    const changed = apply(applied, nodePatch(applied, { pool: 'a', spec: { labels: { site: 'north' } } }));
    expect(changed.metadata.labels).toEqual({ keep: 'me', site: 'north' });
    expect(changed.metadata.annotations).toEqual({ other: 'x', [POOL_APPLIED_ANNOTATION]: changed.metadata.annotations![POOL_APPLIED_ANNOTATION]! });
    expect(changed.spec!.taints).toEqual([{ key: 'node.kubernetes.io/unreachable', effect: 'NoExecute' }]);
  });

  test('leaving the pool takes everything off, record included', () => {
    const applied = apply(node({ keep: 'me' }), nodePatch(node({ keep: 'me' }), { pool: 'a', spec }));
    const left = apply(applied, nodePatch(applied, undefined));
    expect(left.metadata.labels).toEqual({ keep: 'me' });
    expect(left.metadata.annotations).toEqual({});
    expect(left.spec!.taints).toBeUndefined();
    expect(nodePatch(left, undefined)).toBeNull();
  });

  test('a value the pool replaced comes back when the pool no longer sets it', () => {
    const before = node({ site: 'original' }, {}, { taints: [{ key: 'edge', value: 'old', effect: 'NoSchedule' }] });
    const applied = apply(before, nodePatch(before, { pool: 'a', spec }));
    expect(applied.metadata.labels!.site).toBe('north');
    expect(applied.spec!.taints).toEqual([{ key: 'edge', effect: 'NoSchedule' }]);
    const reverted = apply(applied, nodePatch(applied, undefined));
    expect(reverted.metadata.labels).toEqual({ site: 'original' });
    expect(reverted.spec!.taints).toEqual([{ key: 'edge', value: 'old', effect: 'NoSchedule' }]);
  });

  test('a value someone else changed after the pool set it is not removed', () => {
    const applied = apply(node(), nodePatch(node(), { pool: 'a', spec }));
    applied.metadata.labels!.site = 'changed-by-hand';
    const left = apply(applied, nodePatch(applied, undefined));
    expect(left.metadata.labels).toEqual({ site: 'changed-by-hand' });
  });

  test('moving to another pool swaps one pool\'s entries for the other\'s', () => {
    const inA = apply(node(), nodePatch(node(), { pool: 'a', spec }));
    const inB = apply(inA, nodePatch(inA, { pool: 'b', spec: { labels: { site: 'south' }, taints: [{ key: 'b-only', effect: 'NoExecute' }] } }));
    expect(inB.metadata.labels).toEqual({ site: 'south' });
    expect(inB.spec!.taints).toEqual([{ key: 'b-only', effect: 'NoExecute' }]);
    expect(readRecord(inB)!.pool).toBe('b');
    expect(inB.metadata.annotations!['example.com/owner']).toBeUndefined();
  });

  test('an unreadable record is treated as nothing applied: nothing is removed', () => {
    const n = node({ site: 'north' }, { [POOL_APPLIED_ANNOTATION]: '{not json' });
    const p = nodePatch(n, undefined);
    expect(p!.metadata.labels).toBeUndefined();
    expect(p!.metadata.annotations).toEqual({ [POOL_APPLIED_ANNOTATION]: null });
  });
});
