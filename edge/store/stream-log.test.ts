import { afterEach, beforeEach, describe, expect, test } from 'bun:test';
import { openDb } from './db.bun.ts';
import type { StoreDb } from './db.ts';
import { type Store, createStore } from './index.ts';
import type { KubeObject } from './snapshot-store.ts';
import type { Scope } from './stream-log.ts';

const pod = (name: string, rv: number, node = 'edge-1', phase = 'Running'): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'default', uid: `u-${name}`, resourceVersion: String(rv) },
  spec: { nodeName: node },
  status: { phase },
});
const scope: Scope = { gvr: 'v1/pods', namespace: '', labelSelector: '', fieldSelector: 'spec.nodeName=edge-1' };
const onNode = (o: KubeObject) => (o.spec as { nodeName?: string }).nodeName === 'edge-1';
const names = (s: Store) => s.objects.list('v1/pods').map((o) => `${o.metadata.name}@${o.metadata.resourceVersion}`);

let db: StoreDb;
let s: Store;
beforeEach(() => {
  db = openDb({ path: ':memory:' });
  s = createStore(db, { retainEvents: 3 });
});
afterEach(() => db.close());

describe('replaceList', () => {
  test('makes the scope exactly the list and records the view', () => {
    s.objects.put('v1/pods', pod('gone', 5));
    s.objects.put('v1/pods', pod('elsewhere', 6, 'edge-2'));
    s.streams.replaceList(scope, 'kubelet', [pod('a', 8), pod('b', 9)], '10', onNode);
    expect(names(s)).toEqual(['a@8', 'b@9', 'elsewhere@6']);
    const st = s.streams.find(scope)!;
    expect(st.listed).toBe(true);
    expect(st.watermark).toBe(10);
    expect(st.continuousFrom).toBe(10);
    expect(s.streams.views()).toEqual([{ component: 'kubelet', streamId: st.id, listRv: '10' }]);
  });

  test('keeps an object that a watch event stored at a newer version than the list', () => {
    s.streams.replaceList(scope, 'kubelet', [pod('a', 8)], '10', onNode);
    s.streams.applyEvents(scope, [{ type: 'ADDED', object: pod('new', 12) }, { type: 'MODIFIED', object: pod('a', 13, 'edge-1', 'Failed') }]);
    // A list snapshot taken at 11 arrives after those events: it must not lose or revert them.
    s.streams.replaceList(scope, 'kubelet', [pod('a', 8)], '11', onNode);
    expect(names(s)).toEqual(['a@13', 'new@12']);
  });
});

describe('applyEvents', () => {
  test('applies in order, skips repeats at or below the watermark, deletes', () => {
    s.streams.replaceList(scope, 'kubelet', [pod('a', 8)], '10', onNode);
    const first = s.streams.applyEvents(scope, [{ type: 'MODIFIED', object: pod('a', 11) }, { type: 'ADDED', object: pod('b', 12) }]);
    expect(first.map((e) => e.rvNum)).toEqual([11, 12]);
    const again = s.streams.applyEvents(scope, [{ type: 'ADDED', object: pod('b', 12) }, { type: 'DELETED', object: pod('a', 13) }]);
    expect(again.map((e) => `${e.type}@${e.rvNum}`)).toEqual(['DELETED@13']);
    expect(names(s)).toEqual(['b@12']);
    expect(s.streams.find(scope)!.watermark).toBe(13);
  });

  test('a stale event never overwrites a newer object', () => {
    const other: Scope = { ...scope, fieldSelector: '' };
    s.streams.applyEvents(scope, [{ type: 'MODIFIED', object: pod('a', 20, 'edge-1', 'Running') }]);
    // Another stream lags behind and delivers an older version of the same object.
    s.streams.applyEvents(other, [{ type: 'MODIFIED', object: pod('a', 15, 'edge-1', 'Pending') }]);
    expect((s.objects.get('v1/pods', 'default', 'a')!.status as { phase: string }).phase).toBe('Running');
  });

  test('pruning moves continuousFrom past the dropped events', () => {
    s.streams.replaceList(scope, 'kubelet', [], '10', onNode);
    s.streams.applyEvents(scope, [11, 12, 13, 14, 15].map((rv) => ({ type: 'ADDED' as const, object: pod(`p${rv}`, rv) })));
    const st = s.streams.find(scope)!;
    expect(st.continuousFrom).toBe(12); // events 11 and 12 pruned (retainEvents: 3)
    expect(s.streams.eventsAfter(st.id, 12).map((e) => e.rvNum)).toEqual([13, 14, 15]);
  });
});

describe('watch continuity', () => {
  test('a watch starting above the watermark leaves a gap: continuousFrom moves up', () => {
    s.streams.replaceList(scope, 'kubelet', [], '10', onNode);
    s.streams.watchStarted(scope, '10');
    expect(s.streams.find(scope)!.continuousFrom).toBe(10);
    s.streams.watchEnded(scope);
    s.streams.watchStarted(scope, '30');
    expect(s.streams.find(scope)!.continuousFrom).toBe(30);
  });

  test('a watch starting above the watermark while another watch of the scope runs leaves no gap', () => {
    s.streams.replaceList(scope, 'kubelet', [], '10', onNode);
    s.streams.watchStarted(scope, '10');
    s.streams.watchStarted(scope, '30');
    expect(s.streams.find(scope)!.continuousFrom).toBe(10);
  });

  test('a later LIST showing no change keeps an older watcher servable (another client, then the same one)', () => {
    s.streams.replaceList(scope, 'kubelet', [pod('a', 8)], '10', onNode);
    s.streams.watchStarted(scope, '10');
    s.streams.applyEvents(scope, [{ type: 'MODIFIED', object: pod('a', 12) }]);
    s.streams.watchEnded(scope);
    // Other resources moved the cluster's resourceVersion on; this scope did not change.
    s.streams.replaceList(scope, 'coredns', [pod('a', 12)], '40', onNode);
    s.streams.replaceList(scope, 'kubelet', [pod('a', 12)], '55', onNode);
    const st = s.streams.find(scope)!;
    expect([st.continuousFrom, st.watermark]).toEqual([10, 55]);
    expect(s.streams.eventsAfter(st.id, 10).map((e) => e.rvNum)).toEqual([12]);
  });

  test('a LIST with changes while a watch runs waits for the watch; the log stays continuous when it catches up', () => {
    s.streams.replaceList(scope, 'kubelet', [pod('a', 8)], '10', onNode);
    s.streams.watchStarted(scope, '10');
    // The LIST saw a@20 before the watch delivered it.
    s.streams.replaceList(scope, 'coredns', [pod('a', 20)], '25', onNode);
    expect([s.streams.find(scope)!.continuousFrom, s.streams.find(scope)!.watermark]).toEqual([10, 10]);
    const added = s.streams.applyEvents(scope, [{ type: 'MODIFIED', object: pod('a', 20) }]);
    expect(added.map((e) => e.rvNum)).toEqual([20]);
    s.streams.bookmark(scope, '26');
    s.streams.watchEnded(scope);
    const st = s.streams.find(scope)!;
    expect([st.continuousFrom, st.watermark]).toEqual([10, 26]);
  });

  test('a LIST with changes moves continuousFrom when no watch brings the events in between', () => {
    s.streams.replaceList(scope, 'kubelet', [pod('a', 8)], '10', onNode);
    s.streams.replaceList(scope, 'kubelet', [pod('a', 20)], '25', onNode);
    expect(s.streams.find(scope)!.continuousFrom).toBe(25);
  });

  test('a LIST showing a deletion is a change', () => {
    s.streams.replaceList(scope, 'kubelet', [pod('a', 8)], '10', onNode);
    s.streams.replaceList(scope, 'kubelet', [], '25', onNode);
    expect(s.streams.find(scope)!.continuousFrom).toBe(25);
  });

  test('the live watch ending before the log caught up with a LIST: the gap is real, continuousFrom moves then', () => {
    s.streams.replaceList(scope, 'kubelet', [pod('a', 8)], '10', onNode);
    s.streams.watchStarted(scope, '10');
    s.streams.replaceList(scope, 'coredns', [pod('a', 20)], '25', onNode);
    s.streams.watchEnded(scope);
    const st = s.streams.find(scope)!;
    expect([st.continuousFrom, st.watermark]).toEqual([25, 25]);
  });

  test('bookmarks advance the watermark only', () => {
    s.streams.replaceList(scope, 'kubelet', [], '10', onNode);
    s.streams.bookmark(scope, '25');
    const st = s.streams.find(scope)!;
    expect([st.continuousFrom, st.watermark]).toEqual([10, 25]);
  });
});

describe('applyLocal', () => {
  test('stores the offline write at the watermark and logs a local event on covering streams', () => {
    s.streams.replaceList(scope, 'kubelet', [pod('a', 8)], '10', onNode);
    s.streams.bookmark(scope, '40');
    const unrelated = s.streams.ensure({ ...scope, namespace: 'other', fieldSelector: '' });
    const r = s.streams.applyLocal('v1/pods', 'MODIFIED', pod('a', 8, 'edge-1', 'Failed'), (st) => st.id !== unrelated.id);
    expect(r.object.metadata.resourceVersion).toBe('40');
    expect(r.events.map((e) => e.streamId)).toEqual([s.streams.find(scope)!.id]);
    expect((s.objects.get('v1/pods', 'default', 'a')!.status as { phase: string }).phase).toBe('Failed');
    // A client that saw rv 40 before the write still gets the local event; an upstream event at 40 it would not.
    const evs = s.streams.eventsAfter(s.streams.find(scope)!.id, 40);
    expect(evs.map((e) => [e.type, e.local, e.rvNum])).toEqual([['MODIFIED', true, 40]]);
  });
});

describe('outbox', () => {
  test('keeps order, and bounds Events by dropping the oldest Events only', () => {
    const o = createStore(db, { maxOutboxEvents: 2 }).outbox;
    const add = (kind: 'status' | 'event', path: string) =>
      o.enqueue({ kind, method: 'POST', path, contentType: 'application/json', body: '{}' });
    add('status', '/s1');
    add('event', '/e1');
    add('event', '/e2');
    add('status', '/s2');
    expect(add('event', '/e3').dropped).toBe(1);
    expect(o.peek(10).map((r) => r.path)).toEqual(['/s1', '/e2', '/s2', '/e3']);
    expect(o.depth()).toEqual({ status: 2, event: 2, other: 0 });
    const first = o.peek(1)[0]!;
    o.failed(first.seq, 'conflict');
    expect(o.peek(1)[0]!.attempts).toBe(1);
    o.remove(first.seq);
    expect(o.peek(10).map((r) => r.path)).toEqual(['/e2', '/s2', '/e3']);
  });
});

describe('documents', () => {
  test('stores discovery documents by key', () => {
    s.documents.put('/api|json', '/api', { contentType: 'application/json', body: '{"kind":"APIVersions"}' });
    expect(s.documents.get('/api|json')).toEqual({ contentType: 'application/json', body: '{"kind":"APIVersions"}' });
    expect(s.documents.get('/apis|json')).toBeUndefined();
  });
});
