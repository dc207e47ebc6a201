import { expect, test } from 'bun:test';
import { createMemoryLogger } from '../shared/log.ts';
import { documentKey } from './cache/documents.ts';
import { prefetchDiscovery } from './discovery-prefetch.ts';
import type { CallOptions, CallResult } from './upstream/calls.ts';
import { openDb } from './store/db.bun.ts';
import { createStore } from './store/index.ts';

const AGG = 'as=APIGroupDiscoveryList';

/** An apiserver's discovery as kube-apiserver serves it: ETags on aggregated documents only. */
function apiserver() {
  const version = { api: 1, apis: 1 };
  const calls: { path: string; aggregated: boolean; ifNoneMatch?: string }[] = [];
  const call = async (_m: string, path: string, o: CallOptions = {}): Promise<CallResult> => {
    const aggregated = (o.accept ?? '').includes(AGG);
    calls.push({ path, aggregated, ...(o.ifNoneMatch ? { ifNoneMatch: o.ifNoneMatch } : {}) });
    const which = path === '/api' || path === '/api/v1' ? 'api' : 'apis';
    if (path === '/version') return { status: 200, contentType: 'application/json', body: '{"gitVersion":"v1.34.4"}' };
    const body = JSON.stringify({ path, aggregated, generation: version[which] });
    if (!aggregated) return { status: 200, contentType: 'application/json', body };
    const etag = `"${which}-${version[which]}"`;
    if (o.ifNoneMatch === etag) return { status: 304, contentType: '', body: '' };
    return { status: 200, contentType: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList', body, etag };
  };
  return { call, calls, version };
}

const storeOf = () => createStore(openDb({ path: ':memory:' }));

test('the first refresh fetches every document and keeps the ETags of the aggregated ones', async () => {
  const api = apiserver();
  const store = storeOf();
  const etags = new Map<string, string>();
  const r = await prefetchDiscovery(store, api.call, createMemoryLogger(), etags);
  expect(r).toEqual({ stored: 6, unchanged: 0, skipped: 0 });
  expect(api.calls.every((c) => c.ifNoneMatch === undefined)).toBe(true);
  expect(etags.size).toBe(2);
  expect(store.documents.get(documentKey('/api/v1', 'application/json'))?.body).toContain('"generation":1');
});

test('an unchanged cluster costs two 304s and /version: the plain documents are not fetched again', async () => {
  const api = apiserver();
  const store = storeOf();
  const etags = new Map<string, string>();
  await prefetchDiscovery(store, api.call, createMemoryLogger(), etags);
  api.calls.length = 0;
  const r = await prefetchDiscovery(store, api.call, createMemoryLogger(), etags);
  expect(r).toEqual({ stored: 1, unchanged: 2, skipped: 3 });
  expect(api.calls.map((c) => `${c.path}${c.aggregated ? ' (aggregated)' : ''}`)).toEqual(['/version', '/api (aggregated)', '/apis (aggregated)']);
  expect(api.calls.filter((c) => c.ifNoneMatch).length).toBe(2);
});

test('a changed API (a CRD installed) makes the documents be fetched again and stored', async () => {
  const api = apiserver();
  const store = storeOf();
  const etags = new Map<string, string>();
  await prefetchDiscovery(store, api.call, createMemoryLogger(), etags);
  api.version.apis = 2;
  const r = await prefetchDiscovery(store, api.call, createMemoryLogger(), etags);
  expect(r.unchanged).toBe(1);
  expect(r.skipped).toBe(0);
  expect(store.documents.get(documentKey('/apis', 'application/json'))?.body).toContain('"generation":2');
});

test('without a stored copy the ETag is not sent (a store that was reset is filled again)', async () => {
  const api = apiserver();
  const etags = new Map<string, string>();
  await prefetchDiscovery(storeOf(), api.call, createMemoryLogger(), etags);
  api.calls.length = 0;
  const r = await prefetchDiscovery(storeOf(), api.call, createMemoryLogger(), etags);
  expect(r).toEqual({ stored: 6, unchanged: 0, skipped: 0 });
  expect(api.calls.some((c) => c.ifNoneMatch)).toBe(false);
});
