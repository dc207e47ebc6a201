import { describe, expect, test } from 'bun:test';
import { isTetherError } from '../../shared/errors.ts';
import { applyPatch, patchTypeOf } from './patch.ts';

const node = () => ({
  metadata: { name: 'edge-1', labels: { a: '1', b: '2' } },
  status: {
    conditions: [
      { type: 'MemoryPressure', status: 'False', lastHeartbeatTime: 't0' },
      { type: 'Ready', status: 'True', lastHeartbeatTime: 't0' },
    ],
    addresses: [{ type: 'InternalIP', address: '198.18.1.2' }],
    images: [{ names: ['a'] }],
  },
});

describe('patch types', () => {
  test('content types map to patch types', () => {
    expect(patchTypeOf('application/strategic-merge-patch+json')).toBe('strategic');
    expect(patchTypeOf('application/merge-patch+json; charset=utf-8')).toBe('merge');
    expect(patchTypeOf('application/json-patch+json')).toBe('json');
    expect(patchTypeOf('application/apply-patch+yaml')).toBeUndefined();
  });
});

describe('strategic merge', () => {
  test('merges conditions by type, as the kubelet heartbeat patch needs', () => {
    const out = applyPatch(node(), 'strategic', {
      status: {
        '$setElementOrder/conditions': [{ type: 'MemoryPressure' }, { type: 'Ready' }],
        conditions: [{ type: 'Ready', status: 'False', lastHeartbeatTime: 't1' }],
      },
    });
    expect(out.status.conditions).toEqual([
      { type: 'MemoryPressure', status: 'False', lastHeartbeatTime: 't0' },
      { type: 'Ready', status: 'False', lastHeartbeatTime: 't1' },
    ]);
    expect(out.status.addresses).toEqual(node().status.addresses);
  });

  test('replaces images, deletes with null and $patch: delete, keeps the rest', () => {
    const out = applyPatch(node(), 'strategic', {
      metadata: { labels: { a: null, c: '3' } },
      status: { images: [{ names: ['b'] }], conditions: [{ type: 'MemoryPressure', $patch: 'delete' }] },
    });
    expect(out.metadata.labels).toEqual({ b: '2', c: '3' } as never);
    expect(out.status.images).toEqual([{ names: ['b'] }]);
    expect(out.status.conditions.map((c) => c.type)).toEqual(['Ready']);
  });

  test('does not modify its input', () => {
    const before = node();
    applyPatch(before, 'strategic', { status: { conditions: [{ type: 'Ready', status: 'Unknown' }] } });
    expect(before).toEqual(node());
  });

  test('an item without its merge key is a bad request', () => {
    let err: unknown;
    try {
      applyPatch(node(), 'strategic', { status: { conditions: [{ status: 'True' }] } });
    } catch (e) {
      err = e;
    }
    expect(isTetherError(err)).toBe(true);
    expect(String((err as Error).message)).toContain('no merge key "type"');
  });
});

describe('merge patch (RFC 7386)', () => {
  test('replaces lists and removes nulls', () => {
    const out = applyPatch(node(), 'merge', { status: { conditions: [{ type: 'Ready', status: 'False' }] }, metadata: { labels: { b: null } } });
    expect(out.status.conditions).toEqual([{ type: 'Ready', status: 'False' }] as never);
    expect(out.metadata.labels).toEqual({ a: '1' } as never);
  });
});

describe('JSON patch (RFC 6902)', () => {
  test('add, replace, remove, move, copy and test', () => {
    const out = applyPatch({ a: [1, 2], b: { c: 1 } }, 'json', [
      { op: 'add', path: '/a/-', value: 3 },
      { op: 'replace', path: '/b/c', value: 2 },
      { op: 'copy', from: '/b', path: '/d' },
      { op: 'move', from: '/a/0', path: '/e' },
      { op: 'remove', path: '/b' },
      { op: 'test', path: '/d/c', value: 2 },
      { op: 'add', path: '/x~1y', value: true },
    ]);
    expect(out).toEqual({ a: [2, 3], d: { c: 2 }, e: 1, 'x/y': true } as never);
  });

  test('a failed test or a missing path is a bad request naming the operation', () => {
    for (const ops of [[{ op: 'test', path: '/a', value: 2 }], [{ op: 'remove', path: '/nope' }], [{ op: 'jump', path: '/a' }], {}]) {
      let err: unknown;
      try {
        applyPatch({ a: 1 }, 'json', ops);
      } catch (e) {
        err = e;
      }
      expect(isTetherError(err)).toBe(true);
      expect((err as Error).message.startsWith('apply patch: ')).toBe(true);
    }
  });
});
