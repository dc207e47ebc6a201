import { afterEach, beforeEach, expect, test } from 'bun:test';
import { createMemoryLogger } from '../../shared/log.ts';
import { type ResourceRequestInfo, parseRequest } from '../../shared/kube/index.ts';
import type { CallResult } from '../upstream/calls.ts';
import { openDb } from '../store/db.bun.ts';
import type { StoreDb } from '../store/db.ts';
import { type Store, createStore } from '../store/index.ts';
import { createRecorder } from './recorder.ts';
import { replayOutbox } from './replay.ts';
import { COALESCED_CONTENT_TYPE } from './writer.ts';

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
const PATH = '/api/v1/nodes/edge-1/status';

function upstream(handler: Handler) {
  const calls: string[] = [];
  const call = async (method: string, path: string, o: { body?: string } = {}) => {
    calls.push(`${method} ${path}${o.body ? ` ${o.body}` : ''}`);
    return handler(method, path, o.body);
  };
  return { calls, call };
}

/**
 * The apiserver's rules for one Node, as far as the replay depends on them: every write bumps the
 * resourceVersion; a write whose body carries metadata.resourceVersion is refused with 409 unless
 * it is the current one; a patch's status keys are merged in.
 */
function apiserver(uid = 'u1') {
  const obj = { rv: 10, status: {} as Record<string, unknown>, writes: [] as string[] };
  const write = (who: string, body: { metadata?: { resourceVersion?: string }; status?: Record<string, unknown> }): CallResult => {
    const want = body.metadata?.resourceVersion;
    if (want !== undefined && want !== '' && want !== String(obj.rv)) return json(409, { reason: 'Conflict' });
    obj.rv++;
    obj.status = { ...obj.status, ...body.status };
    obj.writes.push(`${who} ${JSON.stringify(body.status)}`);
    return json(200, {});
  };
  const handler: Handler = (m, _p, body) => (m === 'GET' ? node(uid, String(obj.rv)) : write('replay', JSON.parse(body!)));
  return { obj, handler, live: (status: Record<string, unknown>) => write('live', { status }) };
}

const status = (method: string, body: unknown, uid = 'u1') =>
  store.outbox.enqueue({ kind: 'status', method, path: PATH, contentType: 'application/merge-patch+json', body: JSON.stringify(body), uid });

const KUBELET = { 'user-agent': 'kubelet/v1.34.4 (linux/amd64) kubernetes/abc' };
const livePatch = parseRequest('PATCH', PATH, { ...KUBELET, 'content-type': 'application/strategic-merge-patch+json' }) as ResourceRequestInfo;
const recorder = () => createRecorder({ store, log: createMemoryLogger(), onStoreError: () => {}, onStoreOk: () => {}, onDecodeError: () => {} });

test('replays status writes in order after checking the object is the same one, each with the re-read resourceVersion as precondition', async () => {
  status('PATCH', { status: { a: 1 } });
  status('PATCH', { status: { a: 2 } });
  const api = apiserver();
  const u = upstream(api.handler);
  expect(await replayOutbox(store, u.call, createMemoryLogger())).toEqual({ replayed: 2, dropped: 0, done: true });
  expect(u.calls).toEqual([
    'GET /api/v1/nodes/edge-1',
    'PATCH /api/v1/nodes/edge-1/status {"status":{"a":1},"metadata":{"resourceVersion":"10"}}',
    'GET /api/v1/nodes/edge-1',
    'PATCH /api/v1/nodes/edge-1/status {"status":{"a":2},"metadata":{"resourceVersion":"11"}}',
  ]);
  expect(store.outbox.peek(10)).toEqual([]);
});

test('a JSON patch gets its precondition as a final replace of metadata.resourceVersion', async () => {
  store.outbox.enqueue({ kind: 'status', method: 'PATCH', path: PATH, contentType: 'application/json-patch+json', body: '[{"op":"add","path":"/status/a","value":1}]', uid: 'u1' });
  const u = upstream((m) => (m === 'GET' ? node('u1', '7') : json(200, {})));
  expect((await replayOutbox(store, u.call, createMemoryLogger())).replayed).toBe(1);
  expect(JSON.parse(u.calls[1]!.slice(u.calls[1]!.indexOf('[')))).toEqual([
    { op: 'add', path: '/status/a', value: 1 },
    { op: 'replace', path: '/metadata/resourceVersion', value: '7' },
  ]);
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

test('a PUT is re-based on the newest version and retried when someone else wrote in between', async () => {
  status('PUT', { metadata: { name: 'edge-1', resourceVersion: '5' }, status: { phase: 'x' } });
  const api = apiserver();
  let first = true;
  const u = upstream((m, p, body) => {
    if (m !== 'GET' && first) {
      first = false;
      api.obj.rv++; // another controller wrote the Node (not a status write of this node)
    }
    return api.handler(m, p, body);
  });
  expect(await replayOutbox(store, u.call, createMemoryLogger())).toEqual({ replayed: 1, dropped: 0, done: true });
  expect(u.calls.filter((c) => c.startsWith('PUT')).map((c) => JSON.parse(c.slice(c.indexOf('{'))).metadata.resourceVersion)).toEqual(['10', '11']);
  expect(api.obj.status).toEqual({ phase: 'x' });
});

test('a live status write that goes upstream before the replay reaches the object drops the queued one', async () => {
  status('PUT', { metadata: { name: 'edge-1' }, status: { ready: 'stale' } });
  const api = apiserver();
  // The kubelet's live write passes through the proxy: the recorder's tap is asked first, then it is forwarded.
  expect(recorder().tapFor(livePatch, undefined, true)).toBeUndefined();
  api.live({ ready: 'fresh' });
  const u = upstream(api.handler);
  expect(await replayOutbox(store, u.call, createMemoryLogger())).toEqual({ replayed: 0, dropped: 0, done: true });
  expect(api.obj.writes).toEqual(['live {"ready":"fresh"}']);
});

test('a live status write that lands between the re-read and the replayed write: the replay never lands after it', async () => {
  for (const method of ['PUT', 'PATCH']) {
    status(method, { metadata: { name: 'edge-1' }, status: { ready: 'stale' } });
    const api = apiserver();
    let raced = false;
    const u = upstream((m, p, body) => {
      const r = api.handler(m, p, body);
      if (m === 'GET' && !raced) {
        // While the GET's answer is on its way back, the kubelet's live write goes through the proxy and lands.
        raced = true;
        recorder().tapFor(livePatch, undefined, true);
        api.live({ ready: 'fresh' });
      }
      return r;
    });
    const r = await replayOutbox(store, u.call, createMemoryLogger());
    expect(r.replayed).toBe(0);
    expect(api.obj.writes).toEqual(['live {"ready":"fresh"}']);
    expect(api.obj.status).toEqual({ ready: 'fresh' });
    expect(store.outbox.peek(10)).toEqual([]);
  }
});

/** An entry as the writer leaves it: one strategic-merge patch of what the node changed offline. */
const queued = (status: Record<string, unknown>) =>
  store.outbox.enqueue({ kind: 'status', method: 'PATCH', path: PATH, contentType: COALESCED_CONTENT_TYPE, body: JSON.stringify({ metadata: { uid: 'u1' }, status }), uid: 'u1' });
const liveBody = (status: Record<string, unknown>) => Buffer.from(JSON.stringify({ status }));

test('a live write takes out of the queued status only what it sets; the rest is still replayed', async () => {
  queued({
    phase: 'offline',
    conditions: [
      { type: 'Ready', status: 'False' },
      { type: 'TetherProbe', status: 'True' },
    ],
  });
  recorder().tapFor(livePatch, undefined, true, liveBody({ $setElementOrder: [], conditions: [{ type: 'Ready', status: 'True' }] }));
  expect(JSON.parse(store.outbox.peek(10)[0]!.body)).toEqual({ metadata: { uid: 'u1' }, status: { phase: 'offline', conditions: [{ type: 'TetherProbe', status: 'True' }] } });
  recorder().tapFor(livePatch, undefined, true, liveBody({ phase: 'Running', conditions: [{ type: 'TetherProbe', status: 'False' }] }));
  expect(store.outbox.peek(10)).toEqual([]); // nothing of it is newer than the live writes any more
  // A body that cannot be read, or a PUT, covers all of status.
  queued({ phase: 'offline' });
  recorder().tapFor(livePatch, undefined, true, Buffer.from('{not json'));
  expect(store.outbox.peek(10)).toEqual([]);
});

test('a live write that lands between the re-read and the replayed write: the replay re-reads and sends only what the live write did not set', async () => {
  queued({ a: 'stale', b: 'offline' });
  const api = apiserver();
  let raced = false;
  const u = upstream((m, p, body) => {
    const r = api.handler(m, p, body);
    if (m === 'GET' && !raced) {
      raced = true;
      recorder().tapFor(livePatch, undefined, true, liveBody({ a: 'fresh' }));
      api.live({ a: 'fresh' });
    }
    return r;
  });
  expect(await replayOutbox(store, u.call, createMemoryLogger())).toEqual({ replayed: 1, dropped: 0, done: true });
  expect(api.obj.writes).toEqual(['live {"a":"fresh"}', 'replay {"b":"offline"}']);
  expect(api.obj.status).toEqual({ a: 'fresh', b: 'offline' });
});

test('writes of clients whose data is not cached (with their own credentials) do not supersede the node\'s queued status', async () => {
  status('PATCH', { status: { a: 1 } });
  recorder().tapFor(livePatch, undefined, false);
  expect(store.outbox.peek(10)).toHaveLength(1);
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
