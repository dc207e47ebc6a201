import { afterEach, beforeEach, expect, test } from 'bun:test';
import { createMemoryLogger } from '../../../shared/log.ts';
import { createApiClient, USER_AGENT } from './api-client.ts';
import { startFakeApiserver, type FakeApiserver } from './_fake-apiserver.ts';
import { createObjectStore, createReflector, type Reflector } from './watch.ts';
import { waitFor } from '../wait.ts';

let api: FakeApiserver;
let reflector: Reflector | undefined;

beforeEach(() => {
  api = startFakeApiserver();
});
afterEach(async () => {
  await reflector?.stop();
  api.stop();
});

const pod = (name: string, node: string) => ({ metadata: { name, namespace: 'default' }, spec: { nodeName: node } });

function start(): ReturnType<typeof createObjectStore> {
  const store = createObjectStore();
  reflector = createReflector({
    client: createApiClient({ server: api.url }),
    path: '/api/v1/pods',
    fieldSelector: 'spec.nodeName=n1',
    log: createMemoryLogger(),
    replace: (items) => store.replace(items),
    event: (t, o) => store.apply(t, o),
    backoff: { initialMs: 10, maxMs: 50 },
  });
  reflector.start();
  return store;
}

const gets = () => api.requests.filter((r) => r.method === 'GET' && r.path === '/api/v1/pods');
const watches = () => gets().filter((r) => r.query.get('watch') === 'true');
const lists = () => gets().filter((r) => r.query.get('watch') !== 'true');

test('lists at resourceVersion 0, then watches from the list version with the kubelet query', async () => {
  api.put('pods', pod('a', 'n1'));
  api.put('pods', pod('other', 'n2'));
  const store = start();
  await reflector!.synced;
  expect(store.list().map((p) => p.metadata.name)).toEqual(['a']);
  const list = lists()[0]!;
  expect(list.query.toString()).toBe('fieldSelector=spec.nodeName%3Dn1&limit=500&resourceVersion=0');
  expect(list.headers.get('user-agent')).toBe(USER_AGENT);
  expect(list.headers.get('accept')).toBe('application/json');
  await waitFor('watch', () => watches().length === 1);
  const w = watches()[0]!.query;
  expect([...w.keys()]).toEqual(['allowWatchBookmarks', 'fieldSelector', 'resourceVersion', 'timeoutSeconds', 'watch']);
  expect(w.get('resourceVersion')).toBe(reflector!.lastSyncResourceVersion());
  const timeout = Number(w.get('timeoutSeconds'));
  expect(timeout).toBeGreaterThanOrEqual(300);
  expect(timeout).toBeLessThan(600);

  api.put('pods', pod('b', 'n1'));
  await waitFor('event', () => store.list().length === 2);
  api.remove('pods', 'default', 'a');
  await waitFor('delete', () => store.list().length === 1);
  expect(store.get('default', 'b')).toBeDefined();
});

test('a cleanly ended watch is re-opened from the last version without a relist', async () => {
  start();
  await waitFor('watch', () => api.openWatches() === 1);
  api.put('pods', pod('c', 'n1'));
  const rvAfterEvent = api.get('pods', 'default', 'c').metadata.resourceVersion;
  await waitFor('event seen', () => reflector!.lastSyncResourceVersion() === rvAfterEvent);
  api.endWatches();
  await waitFor('second watch', () => watches().length === 2);
  expect(watches()[1]!.query.get('resourceVersion')).toBe(rvAfterEvent);
  expect(lists().length).toBe(1);
});

test('410 Expired relists: first at the last version, then as a quorum read when that is gone too', async () => {
  const store = start();
  await waitFor('watch', () => api.openWatches() === 1);
  const lastRv = reflector!.lastSyncResourceVersion();
  api.put('pods', pod('d', 'n1'));
  await waitFor('event', () => store.list().length === 1);
  api.expireWatches();
  await waitFor('relists', () => lists().length === 3);
  expect(lists()[1]!.query.get('resourceVersion')).not.toBe('0');
  expect(lists()[1]!.query.get('resourceVersion')).not.toBe(lastRv); // it had moved on with the event
  expect(lists()[2]!.query.has('resourceVersion')).toBe(false); // omitted: a quorum read
  await waitFor('watch again', () => api.openWatches() === 1);
  expect(store.list().map((p) => p.metadata.name)).toEqual(['d']);
});

test('an unreachable server is retried with backoff until it answers', async () => {
  const store = createObjectStore();
  const dead = createApiClient({ server: 'http://127.0.0.1:1' });
  const log = createMemoryLogger();
  reflector = createReflector({
    client: dead, path: '/api/v1/pods', log, backoff: { initialMs: 5, maxMs: 20 },
    replace: (items) => store.replace(items), event: (t, o) => store.apply(t, o),
  });
  reflector.start();
  await waitFor('three failures', () => log.lines.filter((l) => l.msg === 'list failed').length >= 3);
  expect(log.lines.find((l) => l.msg === 'list failed')?.error).toContain('ECONNREFUSED');
});
