/** The cache's offline side against a real (in-memory) store: reader, watch server, recorder. */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test';
import { isTetherError } from '../../shared/errors.ts';
import { createMemoryLogger } from '../../shared/log.ts';
import { type ResourceRequestInfo, parseRequest } from '../../shared/kube/index.ts';
import { openDb } from '../store/db.bun.ts';
import type { StoreDb } from '../store/db.ts';
import { type KubeObject, type Store, createStore } from '../store/index.ts';
import { createEventBus } from './bus.ts';
import { readGet, readList } from './reader.ts';
import { createRecorder } from './recorder.ts';
import { streamMatcher } from './scope.ts';
import { serveWatch } from './watch-server.ts';

const KUBELET = { 'user-agent': 'kubelet/v1.34.4 (linux/amd64) kubernetes/abc' };
const req = (path: string, method = 'GET') => parseRequest(method, path, KUBELET) as ResourceRequestInfo;
const pod = (name: string, rv: number, labels: Record<string, string> = {}, phase = 'Running', node = 'edge-1'): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'default', uid: `u-${name}`, resourceVersion: String(rv), labels },
  spec: { nodeName: node },
  status: { phase },
});
const NODE_SCOPE = { gvr: 'v1/pods', namespace: '', labelSelector: '', fieldSelector: 'spec.nodeName=edge-1' };

let db: StoreDb;
let store: Store;
beforeEach(() => {
  db = openDb({ path: ':memory:' });
  store = createStore(db);
  store.streams.replaceList(NODE_SCOPE, 'kubelet', [pod('a', 5, { app: 'web' }), pod('b', 6, { app: 'db' }, 'Pending'), pod('c', 7, { app: 'web' })], '10', streamMatcher(NODE_SCOPE));
  store.documents.put('listkind|v1/pods', 'v1/pods', { contentType: 'text/plain', body: 'PodList' });
});
afterEach(() => db.close());

const bodyOf = (a: { raw?: string; body: unknown }) => (a.raw !== undefined ? JSON.parse(a.raw) : a.body) as { kind: string; metadata: { resourceVersion: string; continue?: string }; items: KubeObject[] };
const names = (a: { raw?: string; body: unknown }) => bodyOf(a).items.map((o) => o.metadata.name);

describe('reader', () => {
  test('answers a covered LIST with the request selectors applied', () => {
    const a = readList(store, req('/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3Dedge-1%2Cstatus.phase%3DRunning&labelSelector=app%20in%20(web)'), true);
    expect(a.status).toBe(200);
    expect(names(a)).toEqual(['a', 'c']);
    expect(bodyOf(a).kind).toBe('PodList');
    expect(bodyOf(a).metadata.resourceVersion).toBe('10');
  });

  test('never answers an uncovered LIST of a cached client with an empty list', () => {
    let err: unknown;
    try {
      readList(store, req('/api/v1/pods'), true);
    } catch (e) {
      err = e;
    }
    expect(isTetherError(err)).toBe(true);
    expect((err as Error).message).toContain('is not in the node');
  });

  test("gives other clients what the store has, with a Warning", () => {
    const a = readList(store, req('/api/v1/pods?labelSelector=app%3Dweb'), false);
    expect(names(a)).toEqual(['a', 'c']);
    expect(a.warning).toContain('holds only what the node has cached');
  });

  test('pages with limit and continue, without gaps or repeats', () => {
    const first = readList(store, req('/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1&limit=2'), true);
    expect(names(first)).toEqual(['a', 'b']);
    const token = bodyOf(first).metadata.continue!;
    const second = readList(store, req(`/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1&limit=2&continue=${token}`), true);
    expect(names(second)).toEqual(['c']);
    expect(bodyOf(second).metadata.continue).toBeUndefined();
    expect(() => readList(store, req('/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1&continue=bogus'), true)).toThrow('continue parameter is invalid');
  });

  test('GET: the object, 404 when a complete list proves absence, 503 otherwise', () => {
    expect(readGet(store, req('/api/v1/namespaces/default/pods/a'), true).status).toBe(200);
    expect(() => readGet(store, req('/api/v1/namespaces/default/pods/zzz'), true)).toThrow('not in the node');
    const all = { gvr: 'v1/pods', namespace: 'default', labelSelector: '', fieldSelector: '' };
    store.streams.replaceList(all, 'kube-proxy', [pod('a', 5)], '11', streamMatcher(all));
    const a = readGet(store, req('/api/v1/namespaces/default/pods/zzz'), true);
    expect(a.status).toBe(404);
    expect((a.body as { reason: string }).reason).toBe('NotFound');
  });
});

function sink() {
  const lines: { type: string; object: KubeObject & { code?: number; reason?: string } }[] = [];
  let ended = false;
  const closers: (() => void)[] = [];
  return {
    lines,
    get ended() {
      return ended;
    },
    disconnect: () => closers.forEach((f) => f()),
    write: (l: string) => {
      lines.push(JSON.parse(l));
      return true;
    },
    end: () => void (ended = true),
    onClose: (f: () => void) => void closers.push(f),
  };
}

async function until(ok: () => boolean, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('watch server', () => {
  test('resumes from a resourceVersion, then delivers live local events', () => {
    const bus = createEventBus();
    store.streams.applyEvents(NODE_SCOPE, [{ type: 'MODIFIED', object: pod('a', 12, { app: 'web' }, 'Failed') }]);
    const s = sink();
    serveWatch({ store, bus }, req('/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dedge-1&resourceVersion=10'), s);
    expect(s.lines.map((l) => `${l.type} ${l.object.metadata.name}@${l.object.metadata.resourceVersion}`)).toEqual(['MODIFIED a@12']);
    const r = store.streams.applyLocal('v1/pods', 'MODIFIED', pod('b', 6, { app: 'db' }, 'Running'), (st) => streamMatcher(st)(pod('b', 6)));
    for (const e of r.events) bus.publish(e.streamId, e.event);
    expect(s.lines.at(-1)!.object.metadata.name).toBe('b');
    expect(s.lines.at(-1)!.object.metadata.resourceVersion).toBe('12'); // the watermark, an rv the apiserver issued
    expect(bus.watches).toBe(1);
    bus.endAll();
    expect(s.ended).toBe(true);
  });

  test('an object leaving or entering the selectors arrives as DELETED or ADDED', () => {
    const bus = createEventBus();
    const s = sink();
    serveWatch({ store, bus }, req('/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dedge-1&labelSelector=app%3Dweb&resourceVersion=10'), s);
    const write = (o: KubeObject) => {
      const r = store.streams.applyLocal('v1/pods', 'MODIFIED', o, (st) => streamMatcher(st)(o));
      for (const e of r.events) bus.publish(e.streamId, e.event);
    };
    write(pod('a', 5, { app: 'db' })); // a was app=web: it leaves the client's view
    write(pod('b', 6, { app: 'web' })); // b was app=db: it enters
    write(pod('b', 6, { app: 'web' }, 'Failed'));
    expect(s.lines.map((l) => `${l.type} ${l.object.metadata.name}`)).toEqual(['DELETED a', 'ADDED b', 'MODIFIED b']);
    s.disconnect();
  });

  test('a resourceVersion older than the log gets 410 Expired as an ERROR event', () => {
    const s = sink();
    serveWatch({ store, bus: createEventBus() }, req('/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dedge-1&resourceVersion=3'), s);
    expect(s.lines).toHaveLength(1);
    expect(s.lines[0]!.type).toBe('ERROR');
    expect(s.lines[0]!.object.code).toBe(410);
    expect(s.lines[0]!.object.reason).toBe('Expired');
    expect(s.ended).toBe(true);
  });

  test('WatchList: initial ADDED events, then the initial-events-end BOOKMARK', () => {
    const s = sink();
    serveWatch(
      { store, bus: createEventBus() },
      req('/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dedge-1&labelSelector=app%3Dweb&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan'),
      s,
    );
    expect(s.lines.map((l) => `${l.type} ${l.object.metadata.name ?? ''}`)).toEqual(['ADDED a', 'ADDED c', 'BOOKMARK ']);
    const bm = s.lines[2]!.object.metadata as unknown as { resourceVersion: string; annotations: Record<string, string> };
    expect(bm.resourceVersion).toBe('10');
    expect(bm.annotations['k8s.io/initial-events-end']).toBe('true');
    s.disconnect();
  });

  test('sends periodic BOOKMARKs when asked, and ends at timeoutSeconds', async () => {
    const s = sink();
    serveWatch({ store, bus: createEventBus(), bookmarkIntervalMs: 20 }, req('/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dedge-1&resourceVersion=10&allowWatchBookmarks=true&timeoutSeconds=1'), s);
    await until(() => s.lines.some((l) => l.type === 'BOOKMARK'));
    expect(s.lines.find((l) => l.type === 'BOOKMARK')!.object.metadata.resourceVersion).toBe('10');
    await until(() => s.ended, 5000);
  });

  test('an uncovered watch is refused (503), not left hanging', () => {
    expect(() => serveWatch({ store, bus: createEventBus() }, req('/api/v1/secrets?watch=true'), sink())).toThrow('is not in the node');
  });
});

describe('recorder', () => {
  const json = { 'content-type': 'application/json' };
  let rec: ReturnType<typeof createRecorder>;
  beforeEach(() => {
    rec = createRecorder({ store, log: createMemoryLogger(), onStoreError: () => {}, onStoreOk: () => {}, onDecodeError: () => {} });
  });
  const feed = async (info: ResourceRequestInfo, chunks: string[]) => {
    const tap = rec.tapFor(info, 'application/json', true)!;
    expect(tap.head(200, json)).toBe(true);
    for (const c of chunks) tap.chunk(Buffer.from(c));
    tap.end(true);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
  };

  test('a paged LIST replaces its scope once the last page arrives', async () => {
    const scope = { gvr: 'v1/configmaps', namespace: 'kube-system', labelSelector: '', fieldSelector: '' };
    const page = (items: string[], cont?: string) =>
      JSON.stringify({ kind: 'ConfigMapList', apiVersion: 'v1', metadata: { resourceVersion: '50', ...(cont ? { continue: cont } : {}) }, items: items.map((n, i) => ({ metadata: { name: n, namespace: 'kube-system', resourceVersion: String(40 + i) } })) });
    await feed(req('/api/v1/namespaces/kube-system/configmaps?limit=2'), [page(['x', 'y'], 'next')]);
    expect(store.streams.find(scope)).toBeUndefined();
    await feed(req('/api/v1/namespaces/kube-system/configmaps?limit=2&continue=next'), [page(['z'])]);
    expect(store.streams.find(scope)!.listed).toBe(true);
    expect(store.objects.list('v1/configmaps').map((o) => `${o.metadata.name}:${o.kind}`)).toEqual(['x:ConfigMap', 'y:ConfigMap', 'z:ConfigMap']);
  });

  test('WATCH events split across chunks are applied in order; BOOKMARKs advance the log', async () => {
    const ev = (type: string, o: KubeObject) => JSON.stringify({ type, object: o }) + '\n';
    const text = ev('MODIFIED', pod('a', 11)) + ev('DELETED', pod('b', 12)) + ev('BOOKMARK', { kind: 'Pod', metadata: { name: '', resourceVersion: '20' } });
    await feed(req('/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dedge-1&resourceVersion=10&allowWatchBookmarks=true'), [text.slice(0, 37), text.slice(37, 200), text.slice(200)]);
    const st = store.streams.find(NODE_SCOPE)!;
    expect(st.watermark).toBe(20);
    expect(store.streams.eventsAfter(st.id, 10).map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['MODIFIED a', 'DELETED b']);
    expect(store.objects.get('v1/pods', 'default', 'b')).toBeUndefined();
  });

  test('a WatchList is recorded as a LIST up to its initial-events-end BOOKMARK', async () => {
    const scope = { gvr: 'v1/services', namespace: '', labelSelector: '', fieldSelector: '' };
    const svc = (n: string, rv: number) => ({ kind: 'Service', apiVersion: 'v1', metadata: { name: n, namespace: 'default', resourceVersion: String(rv) } });
    const lines = [
      { type: 'ADDED', object: svc('s2', 90) },
      { type: 'ADDED', object: svc('s1', 30) },
      { type: 'BOOKMARK', object: { kind: 'Service', metadata: { resourceVersion: '100', annotations: { 'k8s.io/initial-events-end': 'true' } } } },
      { type: 'ADDED', object: svc('s3', 101) },
    ].map((l) => JSON.stringify(l) + '\n');
    await feed(req('/api/v1/services?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan'), lines);
    const st = store.streams.find(scope)!;
    expect(st.listed).toBe(true);
    expect(st.listRv).toBe('100');
    expect(st.watermark).toBe(101);
    expect(store.objects.list('v1/services').map((o) => o.metadata.name)).toEqual(['s1', 's2', 's3']);
  });
});
