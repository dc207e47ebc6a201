import { afterEach, beforeEach, expect, test } from 'bun:test';
import { createMemoryLogger } from '../../shared/log.ts';
import type { CallResult } from '../proxy/client.ts';
import { openDb } from '../store/db.bun.ts';
import type { StoreDb } from '../store/db.ts';
import { type Store, createStore } from '../store/index.ts';
import { replayOutbox } from './replay.ts';

let db: StoreDb;
let store: Store;
beforeEach(() => {
  db = openDb({ path: ':memory:' });
  store = createStore(db);
});
afterEach(() => db.close());

type Handler = (method: string, path: string, body?: string) => CallResult;
const json = (status: number, body: unknown): CallResult => ({ status, contentType: 'application/json', body: JSON.stringify(body) });
const node = (uid: string, rv: string) => json(200, { metadata: { name: 'edge-1', uid, resourceVersion: rv } });

function upstream(handler: Handler) {
  const calls: string[] = [];
  const call = async (method: string, path: string, o: { body?: string } = {}) => {
    calls.push(`${method} ${path}${o.body ? ` ${o.body}` : ''}`);
    return handler(method, path, o.body);
  };
  return { calls, call };
}

const status = (method: string, body: unknown, uid = 'u1') =>
  store.outbox.enqueue({ kind: 'status', method, path: '/api/v1/nodes/edge-1/status', contentType: 'application/merge-patch+json', body: JSON.stringify(body), uid });

test('replays status writes in order after checking the object is the same one', async () => {
  status('PATCH', { status: { a: 1 } });
  status('PATCH', { status: { a: 2 } });
  const u = upstream((m) => (m === 'GET' ? node('u1', '10') : json(200, {})));
  expect(await replayOutbox(store, u.call, createMemoryLogger())).toEqual({ replayed: 2, dropped: 0, done: true });
  expect(u.calls).toEqual([
    'GET /api/v1/nodes/edge-1',
    'PATCH /api/v1/nodes/edge-1/status {"status":{"a":1}}',
    'GET /api/v1/nodes/edge-1',
    'PATCH /api/v1/nodes/edge-1/status {"status":{"a":2}}',
  ]);
  expect(store.outbox.peek(10)).toEqual([]);
});

test('drops a status write whose object was replaced (another uid) or deleted', async () => {
  status('PATCH', { status: { a: 1 } }, 'old-uid');
  status('PATCH', { status: { a: 2 } }, 'u1');
  let deleted = false;
  const u = upstream((m) => (m === 'GET' ? (deleted ? json(404, {}) : node('new-uid', '10')) : json(200, {})));
  const first = await replayOutbox(store, u.call, createMemoryLogger());
  expect(first).toEqual({ replayed: 0, dropped: 2, done: true });
  expect(u.calls.filter((c) => c.startsWith('PATCH'))).toEqual([]);
  deleted = true;
  status('PATCH', { status: { a: 3 } });
  expect((await replayOutbox(store, u.call, createMemoryLogger())).dropped).toBe(1);
});

test('a PUT is re-based on the newest version and retried on conflict', async () => {
  status('PUT', { metadata: { name: 'edge-1', resourceVersion: '5' }, status: { phase: 'x' } });
  let rv = 10;
  let puts = 0;
  const u = upstream((m, _p, body) => {
    if (m === 'GET') return node('u1', String(rv));
    puts++;
    const sent = JSON.parse(body!).metadata.resourceVersion;
    if (puts === 1) {
      rv = 11; // someone else wrote in between
      return json(409, { reason: 'Conflict' });
    }
    return sent === String(rv) ? json(200, {}) : json(409, {});
  });
  expect(await replayOutbox(store, u.call, createMemoryLogger())).toEqual({ replayed: 1, dropped: 0, done: true });
  expect(u.calls.filter((c) => c.startsWith('PUT')).map((c) => JSON.parse(c.slice(c.indexOf('{'))).metadata.resourceVersion)).toEqual(['10', '11']);
});

test('an unavailable apiserver stops the replay and keeps the order for the next attempt', async () => {
  status('PATCH', { status: { a: 1 } });
  store.outbox.enqueue({ kind: 'event', method: 'POST', path: '/api/v1/namespaces/default/events', contentType: 'application/json', body: '{}' });
  const u = upstream(() => json(503, {}));
  expect(await replayOutbox(store, u.call, createMemoryLogger())).toEqual({ replayed: 0, dropped: 0, done: false });
  const left = store.outbox.peek(10);
  expect(left.map((e) => e.kind)).toEqual(['status', 'event']);
  expect(left[0]!.attempts).toBe(1);
  const ok = upstream((m, p) => (m === 'GET' ? node('u1', '3') : p.endsWith('/events') ? json(409, { reason: 'AlreadyExists' }) : json(200, {})));
  expect(await replayOutbox(store, ok.call, createMemoryLogger())).toEqual({ replayed: 2, dropped: 0, done: true });
});
