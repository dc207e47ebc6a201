import { describe, expect, test } from 'bun:test';
import { ErrorCode, isTetherError, type TetherError } from '../../shared/errors.ts';
import { MAX_JSON_PATCH_OPERATIONS, MAX_JSON_PATCH_WORK, MAX_PATCH_DEPTH, applyPatch, patchTypeOf } from './patch.ts';
import { statusOf } from '../proxy/error-status.ts';

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

// ---- issue 10: hostile patches from local clients ----

/** The error a patch application throws (undefined when it succeeds). */
function refusal(f: () => unknown): TetherError | undefined {
  try {
    f();
  } catch (e) {
    if (!isTetherError(e, ErrorCode.BadRequest) && !isTetherError(e, ErrorCode.Invalid)) throw e;
    return e;
  }
  return undefined;
}
const protoNames = () => [Object.prototype, Array.prototype, Function.prototype].map((p) => Object.getOwnPropertyNames(p).sort().join(','));
const pod = () => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default', uid: 'u1' }, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } });
/** A chain of `depth` objects `{"a":{"a":…}}` ending in `leaf`, written as JSON text (as a body arrives). */
const deepText = (depth: number, leaf = '1') => `${'{"a":'.repeat(depth)}${leaf}${'}'.repeat(depth)}`;

describe('keys that name a prototype are refused (issue 10 item 4)', () => {
  test('a JSON patch to /__proto__/warning or /__proto__/authorization is refused and changes no other object', () => {
    const before = protoNames();
    for (const path of ['/__proto__/warning', '/__proto__/authorization', '/constructor/prototype/warning', '/status/constructor/prototype/warning', '/metadata/prototype']) {
      const err = refusal(() => applyPatch(pod(), 'json', [{ op: 'add', path, value: '199 - "polluted"' }]));
      expect(err?.message).toContain('such keys are refused');
    }
    const err = refusal(() => applyPatch(pod(), 'json', [{ op: 'copy', from: '/__proto__', path: '/status/x' }]));
    expect(err?.message).toContain('"__proto__"');
    // What an answer's headers would inherit: nothing.
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    expect('warning' in headers).toBe(false);
    expect('authorization' in headers).toBe(false);
    expect(protoNames()).toEqual(before);
  });

  test('merge and strategic merge bodies naming __proto__, constructor or prototype at any depth are refused', () => {
    const before = protoNames();
    const bodies = [
      '{"__proto__":{"warning":"x"}}',
      '{"status":{"__proto__":{"authorization":"x"}}}',
      '{"metadata":{"labels":{"constructor":{"prototype":{"x":"1"}}}}}',
      '{"status":{"conditions":[{"type":"Ready","status":"False","__proto__":{"x":1}}]}}',
      '{"status":{"a":{"b":{"c":{"prototype":1}}}}}',
    ];
    for (const type of ['merge', 'strategic'] as const) {
      for (const body of bodies) {
        const err = refusal(() => applyPatch(pod(), type, JSON.parse(body)));
        expect(err?.message).toMatch(/^apply patch: the patch names "(__proto__|constructor|prototype)" at .*such keys are refused$/);
      }
    }
    for (const body of ['{"status":{"$setElementOrder/__proto__":[{"type":"Ready"}]}}', '{"$deleteFromPrimitiveList/constructor":["x"]}']) {
      expect(refusal(() => applyPatch(pod(), 'strategic', JSON.parse(body)))?.message).toContain('such keys are refused');
    }
    // Inside a JSON patch's value too.
    expect(refusal(() => applyPatch(pod(), 'json', JSON.parse('[{"op":"add","path":"/status/x","value":{"__proto__":{"y":1}}}]')))?.message).toContain('"__proto__"');
    expect(protoNames()).toEqual(before);
    expect(({} as Record<string, unknown>).warning).toBeUndefined();
  });

  test('a cached object holding "__proto__" as data keeps it as data, and results have no prototypes', () => {
    const cached = JSON.parse('{"metadata":{"name":"cm"},"data":{"__proto__":"v"}}') as { metadata: { name: string }; data: Record<string, string> };
    const out = applyPatch(cached, 'merge', { data: { b: '1' } });
    expect(Object.hasOwn(out.data, '__proto__')).toBe(true);
    expect(JSON.stringify(out)).toBe('{"metadata":{"name":"cm"},"data":{"__proto__":"v","b":"1"}}');
    expect(Object.getPrototypeOf(out)).toBeNull();
    expect(Object.getPrototypeOf(out.data)).toBeNull();
    expect(({} as Record<string, unknown>).b).toBeUndefined();
  });

  test('keys naming other Object.prototype members are plain fields', () => {
    const s = applyPatch(pod(), 'strategic', { status: { toString: [{ a: 1 }], hasOwnProperty: { x: 1 } } }) as unknown as { status: Record<string, unknown> };
    expect(s.status['toString'] as unknown).toEqual([{ a: 1 }]);
    expect(s.status['hasOwnProperty'] as unknown).toEqual({ x: 1 });
    const j = applyPatch(pod(), 'json', [{ op: 'add', path: '/status/valueOf', value: 1 }, { op: 'test', path: '/status/valueOf', value: 1 }]) as unknown as { status: Record<string, unknown> };
    expect(j.status['valueOf'] as unknown).toBe(1);
    // Walking through an inherited member is a missing path, not a way into the prototype.
    expect(refusal(() => applyPatch(pod(), 'json', [{ op: 'add', path: '/status/toString/x', value: 1 }]))?.message).toContain('does not exist');
  });
});

describe('depth and work are bounded (issue 10 item 6)', () => {
  test('the 120 KB, 20,000-level strategic merge patch is refused for its depth', () => {
    const body = `{"status":${deepText(19_999)}}`;
    expect(body.length).toBeGreaterThanOrEqual(120_000);
    const err = refusal(() => applyPatch(pod(), 'strategic', JSON.parse(body)));
    expect(err?.message).toContain(`the patch is nested more than ${MAX_PATCH_DEPTH} levels deep`);
  });

  test('a 60 KB deep patch on an already deep pod is refused, and so is any patch of that pod', () => {
    const deepPod = { ...pod(), status: JSON.parse(deepText(10_000)) as unknown };
    const body = `{"status":${deepText(9_999, '2')}}`;
    expect(body.length).toBeGreaterThanOrEqual(60_000);
    for (const type of ['strategic', 'merge'] as const) {
      expect(refusal(() => applyPatch(deepPod, type, JSON.parse(body)))?.message).toContain(`the cached object is nested more than ${MAX_PATCH_DEPTH} levels deep`);
      expect(refusal(() => applyPatch(deepPod, type, { status: { phase: 'Failed' } }))?.message).toContain('the cached object is nested');
    }
  });

  test('a deep merge patch is a bad request, not a stack overflow', () => {
    const err = refusal(() => applyPatch(pod(), 'merge', JSON.parse(`{"status":${deepText(200_000)}}`)));
    expect(err?.message).toContain('nested more than');
  });

  test(`a patch ${MAX_PATCH_DEPTH} levels deep applies; one level more is refused`, () => {
    // The patch's outer object is one level; the chain under "status" supplies the rest.
    const ok = applyPatch(pod(), 'merge', JSON.parse(`{"status":${deepText(MAX_PATCH_DEPTH - 1)}}`)) as unknown as { status: Record<string, unknown> };
    let depth = 1;
    for (let v: unknown = ok.status; typeof v === 'object'; v = (v as { a: unknown }).a) depth++;
    expect(depth).toBe(MAX_PATCH_DEPTH);
    expect(refusal(() => applyPatch(pod(), 'merge', JSON.parse(`{"status":${deepText(MAX_PATCH_DEPTH)}}`)))?.message).toContain('nested more than');
  });

  test('a JSON patch cannot build a document deeper than the limit, one operation at a time', () => {
    const chain = JSON.parse(deepText(60)) as unknown;
    const ops = [
      { op: 'add', path: '/status/x', value: chain },
      { op: 'copy', from: '/status/x', path: `/status/x${'/a'.repeat(50)}` },
    ];
    expect(refusal(() => applyPatch(pod(), 'json', ops))?.message).toContain(`would be nested more than ${MAX_PATCH_DEPTH} levels deep`);
  });

  test('a JSON patch whose copies double the document is stopped by the work budget', () => {
    const ops: unknown[] = [{ op: 'add', path: '/status/t', value: 1 }];
    for (let k = 0; k < 60; k++) {
      ops.push(
        { op: 'add', path: '/status/n', value: [] },
        { op: 'copy', from: '/status/t', path: '/status/n/-' },
        { op: 'copy', from: '/status/t', path: '/status/n/-' },
        { op: 'move', from: '/status/n', path: '/status/t' },
      );
    }
    expect(refusal(() => applyPatch(pod(), 'json', ops))?.message).toContain(`more than ${MAX_JSON_PATCH_WORK} values`);
  });

  test(`a JSON patch of more than ${MAX_JSON_PATCH_OPERATIONS} operations is refused`, () => {
    const ops = Array.from({ length: MAX_JSON_PATCH_OPERATIONS + 1 }, () => ({ op: 'test', path: '/status/phase', value: 'Running' }));
    expect(refusal(() => applyPatch(pod(), 'json', ops))?.message).toContain(`at most ${MAX_JSON_PATCH_OPERATIONS} operations`);
    expect(refusal(() => applyPatch(pod(), 'json', ops.slice(1)))).toBeUndefined();
  });

  test('a patch of 20,000 conditions onto 20,000 conditions merges each by its type', () => {
    const n = 20_000;
    const big = { ...node(), status: { conditions: Array.from({ length: n }, (_, i) => ({ type: `C${i}`, status: 'True' })) } };
    const out = applyPatch(big, 'strategic', { status: { conditions: Array.from({ length: n }, (_, i) => ({ type: `C${n - 1 - i}`, status: 'False', reason: `r${i}` })) } });
    expect(out.status.conditions.length).toBe(n);
    expect(out.status.conditions.every((c, i) => c.type === `C${i}` && c.status === 'False' && (c as { reason?: string }).reason === `r${n - 1 - i}`)).toBe(true);
  });
});

describe('malformed patches are bad requests naming the problem', () => {
  const cases: [string, 'merge' | 'json' | 'strategic', unknown, string][] = [
    ['a merge patch that is a list', 'merge', [1], 'must be a JSON object'],
    ['a merge patch that is a string', 'merge', 'x', 'must be a JSON object'],
    ['a strategic patch that is null', 'strategic', null, 'must be a JSON object'],
    ['a JSON patch that is an object', 'json', {}, 'must be a list of operations'],
    ['an operation that is a number', 'json', [1], 'needs "op" and "path"'],
    ['a pointer without a slash', 'json', [{ op: 'add', path: 'status', value: 1 }], 'must start with "/"'],
    ['a bad pointer escape', 'json', [{ op: 'add', path: '/status/~2', value: 1 }], 'not "~0" or "~1"'],
    ['an add without value', 'json', [{ op: 'add', path: '/status/x' }], 'needs "value"'],
    ['a move into itself', 'json', [{ op: 'move', from: '/status', path: '/status/x' }], 'into itself'],
    ['a non-canonical index', 'json', [{ op: 'remove', path: '/status/conditions/01' }], 'not an array index'],
    ['an index past the end', 'json', [{ op: 'replace', path: '/status/conditions/1', value: 1 }], 'out of range'],
    ['a result that is not an object', 'json', [{ op: 'replace', path: '', value: 5 }], 'not a JSON object'],
    ['a number that is not finite', 'merge', { status: { x: Number.NaN } }, 'not finite'],
    ['a value that is not JSON', 'merge', { status: { x: () => 1 } }, 'not JSON'],
    ['an object that is not plain', 'strategic', { status: new Map() }, 'not plain'],
  ];
  for (const [name, type, patch, msg] of cases) {
    test(name, () => {
      const err = refusal(() => applyPatch(pod(), type, patch));
      expect(err?.message.startsWith('apply patch: ')).toBe(true);
      expect(err?.message).toContain(msg);
    });
  }

  test('a well-formed JSON-patch operation that cannot be applied is 422 Invalid, as the apiserver answers; a malformed one 400', () => {
    for (const ops of [
      [{ op: 'test', path: '/status/phase', value: 'Pending' }],
      [{ op: 'remove', path: '/status/missing' }],
      [{ op: 'replace', path: '/status/conditions/1', value: 1 }],
      [{ op: 'move', from: '/status', path: '/status/x' }],
    ]) {
      const err = refusal(() => applyPatch(pod(), 'json', ops));
      expect(err?.code).toBe(ErrorCode.Invalid);
      expect(statusOf(err)).toMatchObject({ code: 422, reason: 'Invalid' });
    }
    for (const ops of [[{ op: 'add', path: 'status', value: 1 }], [{ op: 'nope', path: '/status' }], {}]) {
      const err = refusal(() => applyPatch(pod(), 'json', ops));
      expect(err?.code).toBe(ErrorCode.BadRequest);
      expect(statusOf(err).code).toBe(400);
    }
  });

  test('a replaced list of non-objects with an element order is applied, not a crash', () => {
    const out = applyPatch(pod(), 'strategic', { status: { conditions: [null, 1], '$setElementOrder/conditions': [1, null] } });
    expect(out.status.conditions).toEqual([1, null] as never);
  });
});
