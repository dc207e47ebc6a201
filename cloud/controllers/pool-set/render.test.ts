import { describe, expect, test } from 'bun:test';
import { poolSetSchema, type PoolSet } from '../../api/pool-set.ts';
import { applyOp, parsePointer, substitutePool } from './json-patch.ts';
import { renderWorkload } from './render.ts';
import { matchesSelector, selectPools } from './select.ts';

function poolSet(spec: Partial<PoolSet['spec']> = {}): PoolSet {
  return poolSetSchema.parse({
    metadata: { name: 'web', namespace: 'shop', uid: 'u-1' },
    spec: {
      workload: {
        kind: 'Deployment',
        metadata: { labels: { app: 'web' } },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' } },
            spec: { containers: [{ name: 'app', image: 'web:1' }, { name: 'side', image: 'side:1' }], initContainers: [{ name: 'init', image: 'init:1' }] },
          },
        },
      },
      pools: ['north', 'south'],
      ...spec,
    },
  });
}
const north = { name: 'north', labels: { region: 'eu' } };
const south = { name: 'south', labels: { region: 'us' } };

describe('PoolSet workload rendering', () => {
  test('names the workload <poolset>-<pool>, pins it to the pool and owns it', () => {
    const r = renderWorkload(poolSet(), north);
    if (!r.ok) throw new Error(r.errors.join('; '));
    expect(r.name).toBe('web-north');
    expect(r.object.metadata.namespace).toBe('shop');
    expect(r.object.spec.template.spec.nodeSelector).toEqual({ 'apps.tether.dev/pool': 'north' });
    expect(r.object.spec.selector.matchLabels).toEqual({ app: 'web', 'apps.tether.dev/poolset': 'web', 'apps.tether.dev/pool': 'north' });
    expect(r.object.spec.template.metadata.labels).toMatchObject(r.object.spec.selector.matchLabels);
    expect(r.object.metadata.ownerReferences).toEqual([
      { apiVersion: 'apps.tether.dev/v1alpha1', kind: 'PoolSet', name: 'web', uid: 'u-1', controller: true, blockOwnerDeletion: true },
    ]);
  });

  test('applies replicas, images (containers and init containers) and patches with {{pool}} to the chosen pools only', () => {
    const ps = poolSet({
      tweaks: [
        { pools: ['north'], replicas: 5, containerImages: [{ name: 'app', image: 'web:2' }, { name: 'init', image: 'init:2' }] },
        { poolSelector: { matchLabels: { region: 'eu' } }, patches: [{ op: 'add', path: '/spec/template/spec/containers/0/env', value: [{ name: 'SITE', value: 'site-{{pool}}' }] }] },
      ],
    });
    const n = renderWorkload(ps, north);
    const s = renderWorkload(ps, south);
    if (!n.ok || !s.ok) throw new Error('render failed');
    expect(n.object.spec.replicas).toBe(5);
    expect(n.object.spec.template.spec.containers[0].image).toBe('web:2');
    expect(n.object.spec.template.spec.initContainers[0].image).toBe('init:2');
    expect(n.object.spec.template.spec.containers[0].env).toEqual([{ name: 'SITE', value: 'site-north' }]);
    expect(s.object.spec.replicas).toBe(2);
    expect(s.object.spec.template.spec.containers[0].image).toBe('web:1');
    expect(s.object.spec.template.spec.containers[0].env).toBeUndefined();
    expect(n.hash).not.toBe(s.hash);
  });

  test('a later tweak touching a field an earlier tweak set is refused, naming both', () => {
    const ps = poolSet({
      tweaks: [
        { pools: ['north'], replicas: 5 },
        { pools: ['north', 'south'], patches: [{ op: 'replace', path: '/spec/replicas', value: 1 }] },
      ],
    });
    const n = renderWorkload(ps, north);
    expect(n.ok).toBe(false);
    if (!n.ok) expect(n.errors).toEqual(['north: tweaks[1].patches[0] (/spec/replicas) overlaps tweaks[0].replicas (/spec/replicas)']);
    expect(renderWorkload(ps, south).ok).toBe(true); // the overlap exists only where both apply
  });

  test('a patch over a whole object an earlier image tweak wrote into is refused too', () => {
    const ps = poolSet({
      tweaks: [
        { pools: ['north'], containerImages: [{ name: 'app', image: 'web:2' }] },
        { pools: ['north'], patches: [{ op: 'replace', path: '/spec/template/spec/containers/0', value: { name: 'app', image: 'x' } }] },
      ],
    });
    const r = renderWorkload(ps, north);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[0]).toContain('overlaps tweaks[0].containerImages[0] (/spec/template/spec/containers/0/image)');
  });

  test('two appends to the same list do not overlap', () => {
    const env = (v: string) => ({ op: 'add' as const, path: '/spec/template/spec/containers/0/env/-', value: { name: v, value: v } });
    const ps = poolSet({ tweaks: [{ pools: ['north'], patches: [env('A')] }, { pools: ['north'], patches: [env('B')] }] });
    (ps.spec.workload.spec.template as any).spec.containers[0].env = [{ name: 'BASE', value: '1' }];
    const r = renderWorkload(ps, north);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.object.spec.template.spec.containers[0].env.map((e: { name: string }) => e.name)).toEqual(['BASE', 'A', 'B']);
    // but appending into a list an earlier tweak wrote as a whole is a write inside it: refused
    const whole = poolSet({
      tweaks: [{ pools: ['north'], patches: [{ op: 'add', path: '/spec/template/spec/containers/0/env', value: [] }] }, { pools: ['north'], patches: [env('A')] }],
    });
    expect(renderWorkload(whole, north).ok).toBe(false);
  });

  test('tweaks may not touch the fields the controller owns', () => {
    for (const path of ['/spec/selector/matchLabels/app', '/spec/template/spec/nodeSelector', '/metadata/name', '/spec/template/metadata/labels/apps.tether.dev~1pool']) {
      const r = renderWorkload(poolSet({ tweaks: [{ pools: ['north'], patches: [{ op: 'add', path, value: 'x' }] }] }), north);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.errors[0]).toContain('overlaps the controller');
    }
    const other = renderWorkload(poolSet({ tweaks: [{ pools: ['north'], patches: [{ op: 'add', path: '/spec/template/spec/nodeSelector/disk', value: 'ssd' }] }] }), north);
    expect(other.ok).toBe(true);
  });

  test('an image for a container that does not exist, and a patch on a missing path, are errors', () => {
    const r = renderWorkload(
      poolSet({ tweaks: [{ pools: ['north'], containerImages: [{ name: 'nope', image: 'x' }], patches: [{ op: 'replace', path: '/spec/paused/x', value: true }] }] }),
      north,
    );
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors).toEqual(['north: tweaks[0].containerImages[0]: no container named nope', 'north: tweaks[0].patches[0]: /spec/paused/x: /spec/paused does not exist']);
  });

  test('a StatefulSet name that would be too long for its pods is refused', () => {
    const ps = poolSet();
    ps.spec.workload.kind = 'StatefulSet';
    const r = renderWorkload(ps, { name: 'a'.repeat(50), labels: {} });
    expect(r.ok).toBe(false);
  });

  test('the hash is stable for the same input', () => {
    const a = renderWorkload(poolSet(), north);
    const b = renderWorkload(poolSet(), north);
    expect(a.ok && b.ok && a.hash === b.hash).toBe(true);
  });
});

describe('pool selection', () => {
  const pools = [north, south, { name: 'lab', labels: { region: 'eu', kind: 'test' } }];
  test('names and a selector together; named pools that do not exist are reported', () => {
    const r = selectPools(['south', 'gone'], { matchExpressions: [{ key: 'kind', operator: 'Exists' }] }, pools);
    expect(r.selected.map((p) => p.name)).toEqual(['lab', 'south']);
    expect(r.missing).toEqual(['gone']);
  });
  test('selector operators', () => {
    expect(matchesSelector({}, {})).toBe(true);
    expect(matchesSelector({ matchExpressions: [{ key: 'region', operator: 'In', values: ['eu'] }] }, north.labels)).toBe(true);
    expect(matchesSelector({ matchExpressions: [{ key: 'region', operator: 'NotIn', values: ['eu'] }] }, north.labels)).toBe(false);
    expect(matchesSelector({ matchExpressions: [{ key: 'x', operator: 'NotIn', values: ['eu'] }] }, north.labels)).toBe(true);
    expect(matchesSelector({ matchExpressions: [{ key: 'x', operator: 'DoesNotExist' }] }, north.labels)).toBe(true);
  });
});

describe('JSON patch subset', () => {
  test('pointer escapes', () => expect(parsePointer('/a~1b/c~0d')).toEqual(['a/b', 'c~d']));
  test('add into an array at an index and at the end, replace, remove', () => {
    const doc: any = { a: [1, 3] };
    expect(applyOp(doc, { op: 'add', path: '/a/1', value: 2 })).toBe('/a/1');
    expect(applyOp(doc, { op: 'add', path: '/a/-', value: 4 })).toBe('/a/3');
    applyOp(doc, { op: 'replace', path: '/a/0', value: 0 });
    applyOp(doc, { op: 'remove', path: '/a/3' });
    expect(doc.a).toEqual([0, 2, 3]);
  });
  test('replace and remove need an existing target', () => {
    expect(() => applyOp({ a: {} } as any, { op: 'replace', path: '/a/b', value: 1 })).toThrow('nothing to replace');
    expect(() => applyOp({ a: [] } as any, { op: 'remove', path: '/a/0' })).toThrow('not an index');
  });
  test('{{pool}} is replaced in nested strings and keys', () => {
    expect(substitutePool({ 'k-{{pool}}': ['{{pool}}.svc', 3] }, 'n')).toEqual({ 'k-n': ['n.svc', 3] });
  });
});
