/**
 * The reader's answers to the apiserver's edge cases offline (issue 12): continue tokens the
 * apiserver issued online go on offline, a bad token or one beside a resourceVersion is the
 * apiserver's 400, and a resourceVersion newer than the store is its 504 Timeout with the
 * ResourceVersionTooLarge cause, without Retry-After.
 */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test';
import { apiStatusOf, type ResourceRequestInfo, parseRequest } from '../../shared/kube/index.ts';
import { openDb } from '../store/db.bun.ts';
import type { StoreDb } from '../store/db.ts';
import { type KubeObject, type Store, createStore } from '../store/index.ts';
import { readList } from './reader.ts';
import { streamMatcher } from './scope.ts';

const KUBELET = { 'user-agent': 'kubelet/v1.37.2 (linux/amd64) kubernetes/abc' };
const req = (path: string) => parseRequest('GET', path, KUBELET) as ResourceRequestInfo;
const pod = (ns: string, name: string, rv: number): KubeObject => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, uid: `u-${ns}-${name}`, resourceVersion: String(rv) }, spec: { nodeName: 'edge-1' },
});
const SCOPE = { gvr: 'v1/pods', namespace: '', labelSelector: '', fieldSelector: 'spec.nodeName=edge-1' };
const ON_NODE = '/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1';
/** A token as kube-apiserver encodes it (storage.EncodeContinue): the next key, relative to the list's prefix. */
const apiserverToken = (start: string, rv = 10) => Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start })).toString('base64url');

let db: StoreDb;
let store: Store;
beforeEach(() => {
  db = openDb({ path: ':memory:' });
  store = createStore(db);
  store.streams.replaceList(SCOPE, 'kubelet', [pod('a', 'p1', 5), pod('a', 'p2', 6), pod('b', 'p3', 7)], '10', streamMatcher(SCOPE));
});
afterEach(() => db.close());

const names = (a: { raw?: string; body: unknown }) =>
  ((a.raw !== undefined ? JSON.parse(a.raw) : a.body) as { items: KubeObject[] }).items.map((o) => `${o.metadata.namespace}/${o.metadata.name}`);
const thrown = (f: () => unknown): unknown => {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
};

describe('reader: the apiserver contract offline', () => {
  test("a paged list begun online goes on offline with the apiserver's continue token", () => {
    // After a/p1 the apiserver's next key is "a/p1\0" (all namespaces: "<ns>/<name>").
    expect(names(readList(store, req(`${ON_NODE}&limit=1&continue=${apiserverToken('a/p1\u0000')}`), true))).toEqual(['a/p2']);
    expect(names(readList(store, req(`${ON_NODE}&continue=${apiserverToken('a/p2\u0000')}`), true))).toEqual(['b/p3']);
    // In one namespace the key is relative to it.
    expect(names(readList(store, req(`/api/v1/namespaces/a/pods?fieldSelector=spec.nodeName%3Dedge-1&continue=${apiserverToken('p1\u0000')}`), true))).toEqual(['a/p2']);
  });

  test("an invalid continue token is the apiserver's 400 BadRequest", () => {
    for (const token of ['garbage', Buffer.from('{"v":"x"}').toString('base64url'), apiserverToken('a/p1', 0), apiserverToken('../../secrets')]) {
      const e = thrown(() => readList(store, req(`${ON_NODE}&continue=${token}`), true)) as Error;
      expect(e.message).toStartWith('invalid continue token: ');
      expect(apiStatusOf(e)).toBeUndefined();
    }
  });

  test('a resourceVersion beside a continue token is refused, as storage refuses it', () => {
    const e = thrown(() => readList(store, req(`${ON_NODE}&continue=${apiserverToken('a/p1\u0000')}&resourceVersion=5`), true)) as Error;
    expect(e.message).toBe('specifying resource version is not allowed when using continue');
  });

  test('a resourceVersion newer than the store: 504 Timeout, cause ResourceVersionTooLarge, no retry hint', () => {
    const s = apiStatusOf(thrown(() => readList(store, req(`${ON_NODE}&resourceVersion=11`), true)));
    expect(s).toEqual({
      code: 504,
      reason: 'Timeout',
      message: 'Timeout: Too large resource version: 11, current: 10',
      details: { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }] },
    });
    // Not newer, or Exact (served as of now): answered.
    expect(readList(store, req(`${ON_NODE}&resourceVersion=10`), true).status).toBe(200);
    expect(readList(store, req(`${ON_NODE}&resourceVersion=0`), true).status).toBe(200);
  });
});
