import { describe, expect, test } from 'bun:test';
import type { Pod, Toleration } from '../kube-types.ts';
import { parseAutonomyDuration } from './duration.ts';
import { isExempt, readOriginal, tolerationPatch } from './tolerations.ts';

const defaults: Toleration[] = [
  { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
  { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
];
const pod = (tolerations: Toleration[] = defaults, annotations: Record<string, string> = {}): Pod => ({
  metadata: { name: 'p', namespace: 'ns', resourceVersion: '9', annotations },
  spec: { nodeName: 'n1', tolerations },
});
const apply = (p: Pod, patch: ReturnType<typeof tolerationPatch>): Pod => {
  if (!patch) return p;
  const annotations = { ...p.metadata.annotations };
  for (const [k, v] of Object.entries(patch.metadata.annotations)) if (v === null) delete annotations[k];
  else annotations[k] = v;
  return { metadata: { ...p.metadata, annotations }, spec: { ...p.spec, tolerations: patch.spec.tolerations } };
};

describe('autonomy duration', () => {
  test('Go durations become whole seconds, rounded up; 0 is forever', () => {
    expect(parseAutonomyDuration('0')).toEqual({ forever: true });
    expect(parseAutonomyDuration('0s')).toEqual({ forever: true });
    expect(parseAutonomyDuration('90s')).toEqual({ forever: false, seconds: 90 });
    expect(parseAutonomyDuration('1h30m')).toEqual({ forever: false, seconds: 5400 });
    expect(parseAutonomyDuration('1.5h')).toEqual({ forever: false, seconds: 5400 });
    expect(parseAutonomyDuration('1500ms')).toEqual({ forever: false, seconds: 2 });
    expect(parseAutonomyDuration('1ns')).toEqual({ forever: false, seconds: 1 });
  });
  test('anything else is an error with the text in it', () => {
    for (const bad of ['', '10', '-5s', '1d', 'h', 'forever', '5s ago']) {
      const r = parseAutonomyDuration(bad);
      expect('error' in r).toBe(true);
    }
  });
});

describe('eviction tolerations for autonomy', () => {
  test('0 removes tolerationSeconds (tolerate forever) and records the originals', () => {
    const p = apply(pod(), tolerationPatch(pod(), { forever: true }, 300));
    expect(p.spec!.tolerations).toEqual([
      { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
      { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
    ]);
    expect(readOriginal(p)).toEqual({ seconds: { '0': 300, '1': 300 }, added: [] });
  });

  test('a duration sets tolerationSeconds; the patch keeps every existing toleration in place', () => {
    const extra = { key: 'dedicated', operator: 'Equal', value: 'edge', effect: 'NoSchedule' };
    const before = pod([extra, ...defaults]);
    const patch = tolerationPatch(before, { forever: false, seconds: 3600 }, 300)!;
    expect(patch.metadata.resourceVersion).toBe('9');
    expect(patch.spec.tolerations[0]).toEqual(extra);
    expect(patch.spec.tolerations.slice(1).map((t) => t.tolerationSeconds)).toEqual([3600, 3600]);
  });

  test('a missing eviction toleration is added (existing ones cannot be removed, only added)', () => {
    const p = apply(pod([]), tolerationPatch(pod([]), { forever: true }, 300));
    expect(p.spec!.tolerations!.map((t) => t.key)).toEqual(['node.kubernetes.io/unreachable', 'node.kubernetes.io/not-ready']);
    expect(readOriginal(p)).toEqual({ seconds: {}, added: [0, 1] });
  });

  test('is idempotent, and a changed duration keeps the first originals', () => {
    const once = apply(pod(), tolerationPatch(pod(), { forever: true }, 300));
    expect(tolerationPatch(once, { forever: true }, 300)).toBeNull();
    const longer = apply(once, tolerationPatch(once, { forever: false, seconds: 600 }, 300));
    expect(readOriginal(longer)).toEqual({ seconds: { '0': 300, '1': 300 }, added: [] });
  });

  test('autonomy off restores the originals and drops the record; added ones get the restore value', () => {
    const mixed = pod([defaults[0]!]);
    const on = apply(mixed, tolerationPatch(mixed, { forever: true }, 300));
    const off = apply(on, tolerationPatch(on, undefined, 250));
    expect(off.spec!.tolerations).toEqual([defaults[0]!, { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 250 }]);
    expect(off.metadata.annotations).toEqual({});
    expect(tolerationPatch(off, undefined, 250)).toBeNull();
  });

  test('pods never touched need nothing when autonomy is off', () => {
    expect(tolerationPatch(pod(), undefined, 300)).toBeNull();
  });

  test('DaemonSet, mirror, terminating and finished pods are exempt', () => {
    const base = pod();
    expect(isExempt(base)).toBe(false);
    expect(isExempt({ ...base, metadata: { ...base.metadata, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'd', uid: 'u', controller: true }] } })).toBe(true);
    expect(isExempt({ ...base, metadata: { ...base.metadata, annotations: { 'kubernetes.io/config.mirror': 'x' } } })).toBe(true);
    expect(isExempt({ ...base, metadata: { ...base.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } })).toBe(true);
    expect(isExempt({ ...base, status: { phase: 'Succeeded' } })).toBe(true);
  });
});
