/** The cache's offline side against a real (in-memory) store: reader, watch server, recorder. */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test';
import { isTetherError } from '../../shared/errors.ts';
import { createMemoryLogger } from '../../shared/log.ts';
import { type ResourceRequestInfo, parseRequest } from '../../shared/kube/index.ts';
import { openDb } from '../store/db.bun.ts';
import type { StoreDb } from '../store/db.ts';
import { type KubeObject, type Store, createStore } from '../store/index.ts';
import { createEventBus } from './bus.ts';
import { listKindKey } from './documents.ts';
import { applyPatch } from './patch.ts';
import { readGet, readList } from './reader.ts';
import { createRecorder } from './recorder.ts';
import { streamMatcher } from './scope.ts';
import { serveWatch } from './watch-server.ts';
import { COALESCED_CONTENT_TYPE, writeOffline } from './writer.ts';

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
  store.documents.put(listKindKey('v1/pods'), 'v1/pods', { contentType: 'text/plain', body: 'PodList' });
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

  test("gives other clients what the store has, with a Warning, within what a cached identity was allowed online", () => {
    // The kubelet was allowed this list online (access.ts), though the store holds no complete list of it.
    store.access.put([{ component: 'kubelet', verb: 'list', gvr: 'v1/pods', namespace: 'default', name: '', labelSelector: 'app=web', fieldSelector: '', status: 200 }]);
    const a = readList(store, req('/api/v1/namespaces/default/pods?labelSelector=app%3Dweb'), false);
    expect(names(a)).toEqual(['a', 'c']);
    expect(a.warning).toContain('holds only what the node has cached');
    // Wider than anything an identity was allowed: not answered.
    expect(() => readList(store, req('/api/v1/pods?labelSelector=app%3Dweb'), false)).toThrow('not known whether kubelet may list pods in all namespaces');
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
    store.streams.replaceList(all, 'kubelet', [pod('a', 5)], '11', streamMatcher(all)); // the kubelet listed the namespace: it may know
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

  test("kubectl's server-side printing: events as one-row Tables, the columns on the first only (or none when the client has them)", () => {
    const path = '/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dedge-1&labelSelector=app%3Dweb';
    const first = sink();
    serveWatch({ store, bus: createEventBus() }, req(path), first, { table: { headers: true } });
    const tables = first.lines.map((l) => l.object as unknown as { kind: string; columnDefinitions?: unknown[]; rows: { cells: unknown[]; object: { metadata: { name: string } } }[] });
    expect(tables.map((t) => t.kind)).toEqual(['Table', 'Table']);
    expect(tables[0]!.columnDefinitions!.length).toBeGreaterThan(0);
    expect(tables[1]!.columnDefinitions).toBeUndefined();
    expect(tables.map((t) => t.rows[0]!.object.metadata.name)).toEqual(['a', 'c']);
    expect(tables[0]!.rows[0]!.cells[0]).toBe('a');
    first.disconnect();
    const continued = sink();
    serveWatch({ store, bus: createEventBus() }, req(path), continued, { table: { headers: false } });
    expect(continued.lines.every((l) => (l.object as { columnDefinitions?: unknown }).columnDefinitions === undefined)).toBe(true);
    continued.disconnect();
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

  test('a timeoutSeconds beyond what a timer can hold keeps the watch open (it does not end at once)', async () => {
    const s = sink();
    serveWatch({ store, bus: createEventBus(), bookmarkIntervalMs: 20 }, req('/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dedge-1&resourceVersion=10&allowWatchBookmarks=true&timeoutSeconds=9000000'), s);
    await until(() => s.lines.filter((l) => l.type === 'BOOKMARK').length >= 2);
    expect(s.ended).toBe(false);
    s.disconnect();
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

  test('an empty WatchList still records its list kind from the BOOKMARK: offline lists are <Kind>List, as client-go decodes them', async () => {
    const lines = [
      { type: 'BOOKMARK', object: { kind: 'CSIDriver', apiVersion: 'storage.k8s.io/v1', metadata: { resourceVersion: '100', annotations: { 'k8s.io/initial-events-end': 'true' } } } },
    ].map((l) => JSON.stringify(l) + '\n');
    await feed(req('/apis/storage.k8s.io/v1/csidrivers?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan'), lines);
    expect(store.documents.get(listKindKey('storage.k8s.io/v1/csidrivers'))?.body).toBe('CSIDriverList');
  });
});

describe('writer', () => {
  const PATH = '/api/v1/namespaces/default/pods/a/status';
  const published: string[] = [];
  const bus = createEventBus();
  const opts = () => ({
    store,
    bus: { ...bus, publish: (id: number, ev: { type: string; object: KubeObject }) => void published.push(`${id} ${ev.type} ${ev.object.metadata.name}`) },
    onEventsDropped: () => {},
  });
  const write = (method: string, contentType: string, body: unknown, path = PATH) =>
    writeOffline(opts(), {
      info: parseRequest(method, path, { ...KUBELET, 'content-type': contentType }) as ResourceRequestInfo,
      url: path,
      contentType,
      body: JSON.stringify(body),
      hasCredentials: false,
    });
  const smp = 'application/strategic-merge-patch+json';
  const phaseOf = () => (store.objects.get('v1/pods', 'default', 'a')!.status as { phase: string }).phase;
  const localEvents = () => store.streams.eventsAfter(store.streams.find(NODE_SCOPE)!.id, 10);
  beforeEach(() => void (published.length = 0));

  test('the local change and its outbox entry are one transaction: a failure between them leaves neither', () => {
    // A real failure of the outbox insert, after the local change was made in the same call.
    db.raw.exec("CREATE TEMP TRIGGER fail_outbox BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'injected: the outbox write failed'); END");
    expect(() => write('PATCH', smp, { status: { phase: 'Failed' } })).toThrow('injected: the outbox write failed');
    expect(phaseOf()).toBe('Running');
    expect(store.outbox.peek(10)).toEqual([]);
    expect(localEvents()).toEqual([]);
    expect(published).toEqual([]);
    db.raw.exec('DROP TRIGGER fail_outbox');
    expect(write('PATCH', smp, { status: { phase: 'Failed' } }).status).toBe(200);
    expect(phaseOf()).toBe('Failed');
    expect(store.outbox.peek(10)).toHaveLength(1);
    expect(localEvents().map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['MODIFIED a']);
    expect(published).toHaveLength(1);
  });

  test('a JSON patch that turns metadata into a string is refused, and the cached pod is unchanged', () => {
    const before = JSON.stringify(store.objects.get('v1/pods', 'default', 'a'));
    const depth = store.outbox.peek(10).length;
    expect(() => write('PATCH', 'application/json-patch+json', [{ op: 'replace', path: '/metadata', value: 'xyz' }])).toThrow('metadata of pods a must stay an object');
    expect(JSON.stringify(store.objects.get('v1/pods', 'default', 'a'))).toBe(before);
    expect(store.outbox.peek(10)).toHaveLength(depth);
  });

  test('an acknowledged status write and event are committed with synchronous=FULL', () => {
    db.raw.exec('CREATE TEMP TABLE seen (kind TEXT, sync INTEGER)');
    db.raw.exec('CREATE TEMP TRIGGER seen_sync AFTER INSERT ON outbox BEGIN INSERT INTO seen SELECT NEW.kind, synchronous FROM pragma_synchronous; END');
    write('PATCH', smp, { status: { phase: 'Failed' } });
    write('POST', 'application/json', { metadata: { name: 'e1', namespace: 'default' } }, '/api/v1/namespaces/default/events');
    expect(db.raw.get("SELECT group_concat(kind || '=' || sync, ',') AS v FROM seen")?.v).toBe('status=2,event=2');
    expect(Number(Object.values(db.raw.get('PRAGMA synchronous') ?? {})[0])).toBe(1);
  });

  test('a full disk fails the write (nothing acknowledged, nothing half-written) and the store reports it', () => {
    const pages = Number(Object.values(db.raw.get('PRAGMA page_count') ?? {})[0]);
    db.raw.exec(`PRAGMA max_page_count = ${pages}`);
    expect(() => write('PATCH', smp, { status: { phase: 'Failed', message: 'x'.repeat(64 * 1024) } })).toThrow('disk is full');
    expect(phaseOf()).toBe('Running');
    expect(store.outbox.peek(10)).toEqual([]);
    expect(db.health.problem()).toContain('disk is full');
  });

  test('status writes coalesce into one entry per object that takes upstream to the newest local status', () => {
    const start: KubeObject = {
      ...pod('a', 11),
      status: {
        phase: 'Pending',
        message: 'waiting',
        conditions: [
          { type: 'PodScheduled', status: 'True' },
          { type: 'Ready', status: 'False', reason: 'ContainersNotReady' },
        ],
      },
    };
    store.objects.put('v1/pods', start);
    write('PATCH', smp, { status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True', reason: null }] } });
    write('PATCH', 'application/merge-patch+json', { status: { containerStatuses: [{ name: 'app', ready: true, restartCount: 0 }] } });
    write('PUT', 'application/json', { metadata: { name: 'a', namespace: 'default' }, status: { ...(store.objects.get('v1/pods', 'default', 'a')!.status as object), message: undefined, hostIP: '10.0.0.5' } });
    const waiting = store.outbox.peek(10);
    expect(waiting).toHaveLength(1);
    expect(waiting[0]).toMatchObject({ kind: 'status', method: 'PATCH', path: PATH, contentType: COALESCED_CONTENT_TYPE, uid: 'u-a' });
    const patch = JSON.parse(waiting[0]!.body) as { metadata: { uid: string }; status: Record<string, unknown> };
    expect(patch.metadata).toEqual({ uid: 'u-a' });
    expect(patch.status.conditions).toEqual([{ type: 'Ready', status: 'True', reason: null }]); // PodScheduled did not change: not sent; reason was removed
    const local = store.objects.get('v1/pods', 'default', 'a')!.status;
    // Upstream as it was before going offline, plus a condition another controller set meanwhile.
    const upstream = { ...start, status: { ...(start.status as object), conditions: [...((start.status as { conditions: object[] }).conditions), { type: 'DisruptionTarget', status: 'False' }] } };
    const after = JSON.parse(JSON.stringify(applyPatch(upstream, 'strategic', patch))) as KubeObject;
    const want = JSON.parse(JSON.stringify(local)) as { conditions: unknown[] };
    expect(after.status).toEqual({ ...want, conditions: [...want.conditions, { type: 'DisruptionTarget', status: 'False' }] });
  });

  test('an entry for a previous object of the same name is kept apart (the replay drops it by uid)', () => {
    store.outbox.enqueue({ kind: 'status', method: 'PATCH', path: PATH, contentType: COALESCED_CONTENT_TYPE, body: '{"status":{"phase":"Old"}}', uid: 'u-previous' });
    write('PATCH', smp, { status: { phase: 'Failed' } });
    expect(store.outbox.peek(10).map((e) => e.uid)).toEqual(['u-previous', 'u-a']);
  });
});

describe('recorder and store health', () => {
  test('a write that had nothing to change does not report the store as fine while a failed write is remembered', async () => {
    let ok = 0;
    const errors: unknown[] = [];
    const rec = createRecorder({ store, log: createMemoryLogger(), onStoreError: (e) => errors.push(e), onStoreOk: () => ok++, onDecodeError: () => {} });
    const pages = Number(Object.values(db.raw.get('PRAGMA page_count') ?? {})[0]);
    db.raw.exec(`PRAGMA max_page_count = ${pages}`);
    const big = { ...pod('big', 30), spec: { nodeName: 'edge-1', blob: 'x'.repeat(64 * 1024) } };
    const get = async (name: string, o: KubeObject) => {
      const tap = rec.tapFor(req(`/api/v1/namespaces/default/pods/${name}`), 'application/json', true)!;
      tap.head(200, { 'content-type': 'application/json' });
      tap.chunk(Buffer.from(JSON.stringify(o)));
      tap.end(true);
      await new Promise((r) => setImmediate(r));
    };
    await get('big', big);
    expect(errors).toHaveLength(1);
    await get('a', pod('a', 4)); // older than the stored version: nothing to write, and it "succeeds"
    expect(ok).toBe(0);
    expect(db.health.problem()).toContain('disk is full');
    db.raw.exec(`PRAGMA max_page_count = ${pages * 100}`);
    await get('big', big);
    expect(ok).toBe(1);
    expect(db.health.problem()).toBeNull();
  });
});
