/** Authorization parity offline (access.ts), through the recorder's taps and the reader, on a real in-memory store. */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test';
import { isTetherError } from '../../shared/errors.ts';
import { createMemoryLogger } from '../../shared/log.ts';
import { type ResourceRequestInfo, parseRequest } from '../../shared/kube/index.ts';
import { openDb } from '../store/db.bun.ts';
import type { StoreDb } from '../store/db.ts';
import { type KubeObject, type Store, createStore } from '../store/index.ts';
import { createNodeAccess } from './access.ts';
import { readGet, readList } from './reader.ts';
import { createRecorder } from './recorder.ts';

const asComponent = (component: string, path: string) => {
  const info = parseRequest('GET', path, { 'user-agent': `${component}/v1.37.2` }) as ResourceRequestInfo;
  info.component = component;
  return info;
};
const cm = (ns: string, name: string, rv: number, labels: Record<string, string> = {}): KubeObject => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: ns, uid: `u-${name}`, resourceVersion: String(rv), labels },
  data: { mode: 'edge' },
});
const FORBIDDEN = {
  kind: 'Status',
  apiVersion: 'v1',
  metadata: {},
  status: 'Failure',
  message: 'configmaps is forbidden: User "system:node:edge-1" cannot list resource "configmaps" in API group "" at the cluster scope: can only read namespaced object of this type',
  reason: 'Forbidden',
  details: { kind: 'configmaps' },
  code: 403,
};
const JSON_HEAD = { 'content-type': 'application/json' };

let db: StoreDb;
let store: Store;
let recorder: ReturnType<typeof createRecorder>;
const storeErrors: unknown[] = [];
beforeEach(() => {
  db = openDb({ path: ':memory:' });
  store = createStore(db);
  storeErrors.length = 0;
  recorder = createRecorder({ store, log: createMemoryLogger('error'), onStoreError: (e) => storeErrors.push(e), onStoreOk: () => {}, onDecodeError: () => {}, accessFlushMs: 0 });
});
afterEach(() => db.close());

/** One upstream answer to `info` through the recorder, as forward() hands it over; then the batched writes. */
async function answer(info: ResourceRequestInfo, status: number, body: unknown) {
  const tap = recorder.tapFor(info, 'application/json', true);
  if (tap?.head(status, JSON_HEAD)) {
    tap.chunk(Buffer.from(JSON.stringify(body)));
    tap.end(true);
  }
  for (let i = 0; i < 3; i++) await new Promise((r) => setTimeout(r, 1));
}
const refusalOf = (f: () => unknown) => {
  try {
    return f();
  } catch (e) {
    if (isTetherError(e)) return { code: 503, message: e.message };
    throw e;
  }
};

describe('offline answers keep to what each identity was allowed online', () => {
  test('a LIST refused online is refused offline with the same Status; a GET the kubelet received is answered', async () => {
    await answer(asComponent('kubelet', '/api/v1/configmaps'), 403, FORBIDDEN);
    await answer(asComponent('kubelet', '/api/v1/namespaces/app/configmaps/cfg'), 200, cm('app', 'cfg', 5));
    const list = readList(store, asComponent('kubelet', '/api/v1/configmaps'), true);
    expect(list.status).toBe(403);
    expect(list.body).toEqual(FORBIDDEN);
    const get = readGet(store, asComponent('kubelet', '/api/v1/namespaces/app/configmaps/cfg'), true);
    expect(get.status).toBe(200);
    expect((get.body as KubeObject).data).toEqual({ mode: 'edge' });
  });

  test("a bearer token's answers under a component's User-Agent neither narrow nor widen what the node's component is answered", async () => {
    const bearer = (path: string) => Object.assign(asComponent('kube-proxy', path), { lendsNode: false });
    const lent = (path: string) => Object.assign(asComponent('kube-proxy', path), { lendsNode: true });
    await answer(lent('/api/v1/namespaces/app/configmaps/cfg'), 200, cm('app', 'cfg', 5));
    // A pod borrowing kube-proxy's User-Agent: refused the object the node's kube-proxy got, allowed a list it never had.
    await answer(bearer('/api/v1/namespaces/app/configmaps/cfg'), 403, FORBIDDEN);
    await answer(bearer('/api/v1/namespaces/other/configmaps'), 200, { kind: 'ConfigMapList', apiVersion: 'v1', metadata: { resourceVersion: '9' }, items: [cm('other', 'x', 9)] });
    expect(readGet(store, lent('/api/v1/namespaces/app/configmaps/cfg'), true).status).toBe(200);
    expect(refusalOf(() => readList(store, lent('/api/v1/namespaces/other/configmaps'), true))).toMatchObject({ code: 503 });
    expect(store.access.count()).toBe(1);
  });

  test('a GET of an object this identity was never shown is 503 saying so, also when the store holds it', async () => {
    await answer(asComponent('kubelet', '/api/v1/namespaces/app/configmaps/cfg'), 200, cm('app', 'cfg', 5));
    store.objects.put('v1/configmaps', cm('app', 'other', 6));
    const other = refusalOf(() => readGet(store, asComponent('kubelet', '/api/v1/namespaces/app/configmaps/other'), true)) as { code: number; message: string };
    expect(other.code).toBe(503);
    expect(other.message).toContain('not known whether kubelet may get configmaps app/other');
    // Another cached component is not shown what only the kubelet was.
    const proxy = refusalOf(() => readGet(store, asComponent('kube-proxy', '/api/v1/namespaces/app/configmaps/cfg'), true)) as { code: number; message: string };
    expect(proxy.code).toBe(503);
    expect(proxy.message).toContain('not known whether kube-proxy may get configmaps app/cfg');
  });

  test('a GET is answered when the object came in a LIST of a scope that holds it, not when the scope does not', async () => {
    const list = { kind: 'ConfigMapList', apiVersion: 'v1', metadata: { resourceVersion: '10' }, items: [cm('app', 'a', 7, { tier: 'edge' })] };
    await answer(asComponent('kube-proxy', '/api/v1/namespaces/app/configmaps?labelSelector=tier%3Dedge'), 200, list);
    store.objects.put('v1/configmaps', cm('app', 'b', 8, { tier: 'cloud' }));
    expect(readGet(store, asComponent('kube-proxy', '/api/v1/namespaces/app/configmaps/a'), true).status).toBe(200);
    expect((refusalOf(() => readGet(store, asComponent('kube-proxy', '/api/v1/namespaces/app/configmaps/b'), true)) as { code: number }).code).toBe(503);
    // A narrower LIST is covered; a wider one is not known.
    expect(readList(store, asComponent('kube-proxy', '/api/v1/namespaces/app/configmaps?labelSelector=tier%3Dedge,x%3Dy'), true).status).toBe(200);
    const wider = refusalOf(() => readList(store, asComponent('kube-proxy', '/api/v1/namespaces/app/configmaps'), true)) as { code: number; message: string };
    expect(wider.code).toBe(503);
  });

  test('a watch is admitted only for a scope the identity listed or watched; a refused watch gets its 403', async () => {
    const list = { kind: 'ConfigMapList', apiVersion: 'v1', metadata: { resourceVersion: '10' }, items: [cm('app', 'a', 7)] };
    await answer(asComponent('kubelet', '/api/v1/namespaces/app/configmaps'), 200, list);
    await answer(asComponent('kubelet', '/api/v1/secrets?watch=true'), 403, { ...FORBIDDEN, message: 'secrets is forbidden' });
    expect(readGet(store, asComponent('kubelet', '/api/v1/namespaces/app/configmaps?watch=true&resourceVersion=10'), true).status).toBe(200);
    const refused = readGet(store, asComponent('kubelet', '/api/v1/secrets?watch=true'), true);
    expect(refused.status).toBe(403);
    expect((refused.body as { message: string }).message).toBe('secrets is forbidden');
    expect((refusalOf(() => readGet(store, asComponent('kubelet', '/api/v1/namespaces/other/configmaps?watch=true'), true)) as { code: number }).code).toBe(503);
  });

  test('a later answer to the same request wins: allowed after refused', async () => {
    const path = '/api/v1/namespaces/app/secrets/s';
    const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'app', uid: 'u-s', resourceVersion: '9' }, data: {} };
    await answer(asComponent('kubelet', path), 403, { ...FORBIDDEN, message: 'no relationship found' });
    store.objects.put('v1/secrets', secret);
    expect(readGet(store, asComponent('kubelet', path), true).status).toBe(403);
    await answer(asComponent('kubelet', path), 200, secret);
    expect(readGet(store, asComponent('kubelet', path), true).status).toBe(200);
  });

  test('clients that are not cached get what any cached identity was allowed, and its refusals', async () => {
    await answer(asComponent('kubelet', '/api/v1/namespaces/app/configmaps/cfg'), 200, cm('app', 'cfg', 5));
    await answer(asComponent('kubelet', '/api/v1/configmaps'), 403, FORBIDDEN);
    // Nothing is recorded for an uncached client: it is not tapped.
    expect(recorder.tapFor(asComponent('kubectl', '/api/v1/namespaces/app/configmaps/x'), 'application/json', false)).toBeUndefined();
    expect(readGet(store, asComponent('kubectl', '/api/v1/namespaces/app/configmaps/cfg'), false).status).toBe(200);
    expect(readList(store, asComponent('kubectl', '/api/v1/configmaps'), false).status).toBe(403);
  });

  test('the record survives a restart of the agent: a new model over the same store decides the same', async () => {
    await answer(asComponent('kubelet', '/api/v1/configmaps'), 403, FORBIDDEN);
    await answer(asComponent('kubelet', '/api/v1/namespaces/app/configmaps/cfg'), 200, cm('app', 'cfg', 5));
    expect(storeErrors).toEqual([]);
    expect(store.access.count()).toBe(2);
    const fresh = createNodeAccess(store);
    expect(fresh.decide(asComponent('kubelet', '/api/v1/configmaps'), true)).toEqual({ kind: 'refused', refusal: FORBIDDEN });
    expect(fresh.decide(asComponent('kubelet', '/api/v1/namespaces/app/configmaps/cfg'), true, cm('app', 'cfg', 5))).toEqual({ kind: 'allowed' });
    expect(fresh.decide(asComponent('kube-proxy', '/api/v1/namespaces/app/configmaps/cfg'), true, cm('app', 'cfg', 5)).kind).toBe('unknown');
  });

  test('repeated GETs of the same object write nothing after the first; a changed answer writes one row', async () => {
    const info = () => asComponent('kubelet', '/api/v1/namespaces/app/configmaps/cfg');
    const written: number[] = [];
    const put = store.access.put.bind(store.access);
    store.access.put = (rows) => {
      written.push(rows.length);
      put(rows);
    };
    for (let i = 0; i < 5; i++) await answer(info(), 200, cm('app', 'cfg', 5));
    expect(written).toEqual([1]);
    await answer(info(), 404, { kind: 'Status', code: 404, reason: 'NotFound' }); // still allowed: nothing new
    expect(written).toEqual([1]);
    await answer(info(), 403, FORBIDDEN);
    expect(written).toEqual([1, 1]);
    // A model over the same store (a restarted agent) knows it already.
    expect(createNodeAccess(store).answered(info(), 403, FORBIDDEN)).toBe(false);
  });
});
