import { describe, expect, test } from 'bun:test';
import { createMemoryLogger } from '../../../shared/log.ts';
import { UPGRADE_TARGET_ANNOTATION } from '../../../shared/upgrade/contract.ts';
import { POOL_LABEL } from '../../api/keys.ts';
import type { Api } from '../writes.ts';
import type { ControllerContext, Informers } from '../context.ts';
import type { Handlers, SharedInformer } from '../informers.ts';
import type { KubeObject, Node } from '../kube-types.ts';
import type { Controller } from '../runner.ts';
import { createEdgeUpgradeControllers } from './controller.ts';
import type { UpgradeLike } from './order.ts';

/** An informer cache the test fills by hand: it shows only what the test put there (a lagging cache). */
function cache<T extends KubeObject>(items: T[] = []): SharedInformer<T> & { items: T[] } {
  const handlers: Handlers<T>[] = [];
  return {
    items,
    path: '/fake',
    get: (name) => items.find((o) => o.metadata.name === name),
    list: () => items,
    on: (h) => void handlers.push(h),
    start: async () => {},
    stop: async () => {},
    synced: true,
  };
}

interface Call {
  verb: 'patch' | 'put';
  path: string;
  body: any;
}

function rig(upgrades: UpgradeLike[], nodes: Node[]) {
  const calls: Call[] = [];
  const api: Api = {
    get: async () => undefined,
    create: async () => undefined as never,
    put: async <T>(path: string, body: unknown) => (calls.push({ verb: 'put', path, body }), body as T),
    mergePatch: async <T>(path: string, body: unknown) => (calls.push({ verb: 'patch', path, body }), body as T),
    apply: async () => undefined as never,
    delete: async () => {},
  };
  const nodeCache = cache(nodes);
  const pools = cache([{ metadata: { name: 'a' } }, { metadata: { name: 'b' } }]);
  const informers = { nodes: () => nodeCache, nodePools: () => pools } as unknown as Informers;
  const ctx: ControllerContext = { api, log: createMemoryLogger(), informers, queue: {}, now: () => Date.parse('2026-12-04T01:00:00Z') };
  const [rollout, orphans] = createEdgeUpgradeControllers(ctx, cache(upgrades)) as [Controller, Controller];
  return { calls, rollout, orphans };
}

const upgrade = (name: string, uid: string, spec: Record<string, unknown> = {}, extra: Partial<UpgradeLike> = {}): UpgradeLike =>
  ({
    apiVersion: 'apps.tether.dev/v1alpha1',
    kind: 'EdgeUpgrade',
    metadata: { name, uid, generation: 1, resourceVersion: '41', creationTimestamp: '2026-12-04T00:00:00Z' },
    spec: { version: '0.2.0', baseURL: 'https://releases.example.com/tether/0.2.0/', pools: ['a', 'b'], ...spec },
    ...extra,
  }) as UpgradeLike;

const node = (name: string, pool: string, target?: Record<string, string> | string): Node => ({
  metadata: {
    name,
    labels: { [POOL_LABEL]: pool },
    annotations: {
      'apps.tether.dev/edge-version': '0.1.0',
      ...(target !== undefined ? { [UPGRADE_TARGET_ANNOTATION]: typeof target === 'string' ? target : JSON.stringify(target) } : {}),
    },
  },
  status: { conditions: [{ type: 'Ready', status: 'True' }] },
});

describe('the EdgeUpgrade controller', () => {
  test('sets the contract target by merge patch of the annotation only, then the status with the resourceVersion it read', async () => {
    const r = rig([upgrade('up', 'uid-1')], [node('a-1', 'a'), node('a-2', 'a')]);
    expect(await r.rollout.reconcile('up')).toEqual({ requeueAfterMs: 900_000 });
    expect(r.calls.map((c) => [c.verb, c.path])).toEqual([
      ['patch', '/api/v1/nodes/a-1'],
      ['put', '/apis/apps.tether.dev/v1alpha1/edgeupgrades/up/status'],
    ]);
    expect(r.calls[0]!.body).toEqual({
      metadata: { annotations: { [UPGRADE_TARGET_ANNOTATION]: JSON.stringify({ upgrade: 'up', uid: 'uid-1', version: '0.2.0', baseURL: 'https://releases.example.com/tether/0.2.0' }) } },
    });
    expect(r.calls[1]!.body.metadata).toEqual({ name: 'up', uid: 'uid-1', resourceVersion: '41' });
    expect(r.calls[1]!.body.status).toMatchObject({ phase: 'Progressing', progress: '0/2', message: 'pool a: upgrading a-1' });
  });

  test('a cache that does not show its own target yet makes no second target (maxUnavailable holds)', async () => {
    const r = rig([upgrade('up', 'uid-1')], [node('a-1', 'a'), node('a-2', 'a')]);
    await r.rollout.reconcile('up');
    r.calls.length = 0;
    await r.rollout.reconcile('up');
    expect(r.calls.filter((c) => c.verb === 'patch')).toEqual([]);
  });

  test('an unchanged status is not written again', async () => {
    const r = rig([upgrade('up', 'uid-1')], [node('a-1', 'a')]);
    await r.rollout.reconcile('up');
    const written = r.calls.find((c) => c.verb === 'put')!.body.status;
    const r2 = rig([upgrade('up', 'uid-1', {}, { status: written })], [node('a-1', 'a', { upgrade: 'up', uid: 'uid-1', version: '0.2.0', baseURL: 'https://releases.example.com/tether/0.2.0' })]);
    await r2.rollout.reconcile('up');
    expect(r2.calls).toEqual([]);
  });

  test('the orphan sweep takes off targets whose EdgeUpgrade (name and uid) is gone, and malformed ones; it keeps live ones', async () => {
    const live = { upgrade: 'up', uid: 'uid-1', version: '0.2.0', baseURL: 'https://x.example' };
    const r = rig(
      [upgrade('up', 'uid-1')],
      [node('live', 'a', live), node('recreated', 'a', { ...live, uid: 'uid-0' }), node('deleted', 'a', { ...live, upgrade: 'gone' }), node('junk', 'a', '{"upgrade":')],
    );
    for (const n of ['live', 'recreated', 'deleted', 'junk']) await r.orphans.reconcile(n);
    expect(r.calls.map((c) => [c.path, c.body])).toEqual(
      ['recreated', 'deleted', 'junk'].map((n) => [`/api/v1/nodes/${n}`, { metadata: { annotations: { [UPGRADE_TARGET_ANNOTATION]: null } } }]),
    );
  });

  test('a second rollout waits Pending, naming the one that runs', async () => {
    const r = rig(
      [upgrade('older', 'uid-1', {}, { status: { phase: 'Progressing' } }), upgrade('newer', 'uid-2', {}, { metadata: { name: 'newer', uid: 'uid-2', resourceVersion: '7', creationTimestamp: '2026-12-04T00:30:00Z' } })],
      [node('a-1', 'a')],
    );
    await r.rollout.reconcile('newer');
    expect(r.calls.map((c) => c.verb)).toEqual(['put']);
    expect(r.calls[0]!.body.status).toMatchObject({ phase: 'Pending', message: 'waiting for EdgeUpgrade older to finish (one rollout at a time, oldest first)' });
  });
});
