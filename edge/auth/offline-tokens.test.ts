import { describe, expect, test } from 'bun:test';
import { parseRequest } from '../../shared/kube/request-info.ts';
import { type TokenRecord, bearerToken, createOfflineTokens, readClaims } from './offline-tokens.ts';

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
/** A JWT-shaped token; the signature is never checked by the agent (the apiserver checked it). */
const jwt = (claims: Record<string, unknown>, sig = 'sig') => `${b64({ alg: 'RS256' })}.${b64(claims)}.${sig}`;
const req = (method: string, url: string) => parseRequest(method, url);
const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);
const podToken = (exp: number, pod = { name: 'web-1', uid: 'u-1' }) =>
  jwt({ sub: 'system:serviceaccount:shop:web', exp, 'kubernetes.io': { namespace: 'shop', pod, serviceaccount: { name: 'web', uid: 'sa' } } });
const always = () => true;

describe('bearerToken and readClaims', () => {
  test('reads only the Bearer scheme', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer  abc ')).toBe('abc');
    expect(bearerToken('Basic dXNlcjpwYXNz')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
  test('claims of a bound service-account token; nothing from garbage', () => {
    expect(readClaims(podToken(100))).toEqual({ sub: 'system:serviceaccount:shop:web', exp: 100, pod: { namespace: 'shop', name: 'web-1', uid: 'u-1' } });
    expect(readClaims('not-a-jwt')).toEqual({});
    expect(readClaims('a.!!!.c')).toEqual({});
    expect(readClaims(`a.${b64([1, 2])}.c`)).toEqual({});
    expect(readClaims(`a.${b64({ exp: 'soon', sub: 7 })}.c`)).toEqual({});
  });
});

describe('offline authorization of bearer tokens', () => {
  test('a token never accepted online is refused 401, even one that looks valid', () => {
    const t = createOfflineTokens({ now: () => T0 });
    const d = t.authorize('Bearer made-up', req('GET', '/api/v1/namespaces/shop/secrets/db'), always);
    expect(d).toMatchObject({ ok: false, code: 401 });
    const forged = podToken(T0 / 1000 + 3600);
    t.accepted(`Bearer ${podToken(T0 / 1000 + 3600, { name: 'web-1', uid: 'u-1' })}x`, req('GET', '/api/v1/namespaces/shop/secrets/db'), 200);
    expect(t.authorize(`Bearer ${forged}`, req('GET', '/api/v1/namespaces/shop/secrets/db'), always)).toMatchObject({ ok: false, code: 401 });
  });

  test('only 2xx answers count as acceptance', () => {
    const t = createOfflineTokens({ now: () => T0 });
    const tok = `Bearer ${podToken(T0 / 1000 + 3600)}`;
    t.accepted(tok, req('GET', '/api/v1/namespaces/shop/configmaps'), 403);
    t.accepted(tok, req('GET', '/api/v1/namespaces/shop/configmaps'), 401);
    expect(t.size).toBe(0);
    expect(t.authorize(tok, req('GET', '/api/v1/namespaces/shop/configmaps'), always)).toMatchObject({ ok: false, code: 401 });
  });

  test('an accepted token reads offline what it was shown, and nothing else', () => {
    const t = createOfflineTokens({ now: () => T0 });
    const tok = `Bearer ${podToken(T0 / 1000 + 3600)}`;
    t.accepted(tok, req('GET', '/api/v1/namespaces/shop/configmaps'), 200);
    t.accepted(tok, req('GET', '/api/v1/namespaces/shop/secrets/web-cert'), 200);
    // Covered: the same list, an object of the listed collection, a watch of it, the same secret.
    expect(t.authorize(tok, req('GET', '/api/v1/namespaces/shop/configmaps'), always)).toEqual({ ok: true, subject: 'system:serviceaccount:shop:web' });
    expect(t.authorize(tok, req('GET', '/api/v1/namespaces/shop/configmaps/settings'), always).ok).toBe(true);
    expect(t.authorize(tok, req('GET', '/api/v1/namespaces/shop/configmaps?watch=1'), always).ok).toBe(true);
    expect(t.authorize(tok, req('GET', '/api/v1/namespaces/shop/configmaps?labelSelector=app%3Dweb'), always).ok).toBe(true);
    expect(t.authorize(tok, req('GET', '/api/v1/namespaces/shop/secrets/web-cert'), always).ok).toBe(true);
    // Not covered: another secret, the secrets collection, another namespace, cluster-wide, a write.
    for (const [m, u] of [
      ['GET', '/api/v1/namespaces/shop/secrets/db'],
      ['GET', '/api/v1/namespaces/shop/secrets'],
      ['GET', '/api/v1/namespaces/other/configmaps'],
      ['GET', '/api/v1/configmaps'],
      ['PUT', '/api/v1/namespaces/shop/configmaps/settings'],
      ['GET', '/api/v1/namespaces/shop/configmaps/settings/status'],
    ] as const) {
      expect(t.authorize(tok, req(m, u), always)).toMatchObject({ ok: false, code: 403 });
    }
  });

  test('a cluster-wide list covers every namespace; a selector list covers only that selector', () => {
    const t = createOfflineTokens({ now: () => T0 });
    const tok = 'Bearer opaque-static-token';
    t.accepted(tok, req('GET', '/api/v1/services'), 200);
    t.accepted(tok, req('GET', '/apis/discovery.k8s.io/v1/endpointslices?labelSelector=a%3Db'), 200);
    expect(t.authorize(tok, req('GET', '/api/v1/namespaces/x/services'), always).ok).toBe(true);
    expect(t.authorize(tok, req('GET', '/api/v1/namespaces/x/services/s'), always).ok).toBe(true);
    expect(t.authorize(tok, req('GET', '/apis/discovery.k8s.io/v1/endpointslices?labelSelector=a%3Db'), always).ok).toBe(true);
    expect(t.authorize(tok, req('GET', '/apis/discovery.k8s.io/v1/namespaces/x/endpointslices?labelSelector=a%3Db'), always).ok).toBe(true);
    expect(t.authorize(tok, req('GET', '/apis/discovery.k8s.io/v1/endpointslices'), always)).toMatchObject({ ok: false, code: 403 });
    expect(t.authorize(tok, req('GET', '/apis/discovery.k8s.io/v1/namespaces/x/endpointslices/e'), always)).toMatchObject({ ok: false, code: 403 });
  });

  test('a write offline needs the same verb on the same resource and namespace online', () => {
    const t = createOfflineTokens({ now: () => T0 });
    const tok = `Bearer ${podToken(T0 / 1000 + 3600)}`;
    t.accepted(tok, req('PATCH', '/api/v1/namespaces/shop/configmaps/a'), 200);
    expect(t.authorize(tok, req('PATCH', '/api/v1/namespaces/shop/configmaps/b'), always).ok).toBe(true);
    expect(t.authorize(tok, req('PUT', '/api/v1/namespaces/shop/configmaps/b'), always).ok).toBe(false);
    expect(t.authorize(tok, req('PATCH', '/api/v1/namespaces/other/configmaps/b'), always).ok).toBe(false);
  });

  test('expiry: the exp claim of a JWT, else a bounded lifetime after the last acceptance', () => {
    let now = T0;
    const t = createOfflineTokens({ now: () => now, unverifiedTtlMs: 60_000 });
    const jwtTok = `Bearer ${podToken(T0 / 1000 + 600)}`;
    const opaque = 'Bearer opaque';
    const r = req('GET', '/api/v1/namespaces/shop/configmaps');
    t.accepted(jwtTok, r, 200);
    t.accepted(opaque, r, 200);
    now = T0 + 59_000;
    expect(t.authorize(jwtTok, r, always).ok).toBe(true);
    expect(t.authorize(opaque, r, always).ok).toBe(true);
    now = T0 + 61_000;
    expect(t.authorize(opaque, r, always)).toMatchObject({ ok: false, code: 401 });
    expect(t.authorize(jwtTok, r, always).ok).toBe(true);
    now = T0 + 600_000;
    const d = t.authorize(jwtTok, r, always);
    expect(d).toMatchObject({ ok: false, code: 401 });
    expect(!d.ok && d.message).toContain('expired');
  });

  test('a token bound to a pod that no longer exists is refused', () => {
    const t = createOfflineTokens({ now: () => T0 });
    const tok = `Bearer ${podToken(T0 / 1000 + 3600)}`;
    const r = req('GET', '/api/v1/namespaces/shop/configmaps');
    t.accepted(tok, r, 200);
    const asked: unknown[] = [];
    const d = t.authorize(tok, r, (p) => (asked.push(p), false));
    expect(d).toMatchObject({ ok: false, code: 401 });
    expect(asked).toEqual([{ namespace: 'shop', name: 'web-1', uid: 'u-1' }]);
  });

  test('memory is bounded: the least recently accepted token and the oldest views go first', () => {
    const t = createOfflineTokens({ now: () => T0, maxTokens: 3, maxViews: 2 });
    const r = req('GET', '/api/v1/namespaces/shop/configmaps');
    for (const n of [1, 2, 3]) t.accepted(`Bearer t${n}`, r, 200);
    t.accepted('Bearer t1', r, 200); // t1 is now the most recent
    t.accepted('Bearer t4', r, 200);
    expect(t.size).toBe(3);
    expect(t.authorize('Bearer t2', r, always)).toMatchObject({ ok: false, code: 401 });
    expect(t.authorize('Bearer t1', r, always).ok).toBe(true);
    t.accepted('Bearer t1', req('GET', '/api/v1/namespaces/a/pods'), 200);
    t.accepted('Bearer t1', req('GET', '/api/v1/namespaces/b/pods'), 200);
    expect(t.authorize('Bearer t1', r, always)).toMatchObject({ ok: false, code: 403 });
    expect(t.authorize('Bearer t1', req('GET', '/api/v1/namespaces/b/pods'), always).ok).toBe(true);
  });

  test('proofs persist: a change is reported only when worth keeping, and a later run restores them', () => {
    const now = T0;
    const kept = new Map<string, TokenRecord>();
    const changes: string[] = [];
    const evicted: string[] = [];
    const t = createOfflineTokens({
      now: () => now,
      maxTokens: 2,
      onChange: (r) => (kept.set(r.hash, r), changes.push(r.views.length.toString())),
      onEvict: (h) => (kept.delete(h), evicted.push(h)),
    });
    const tok = `Bearer ${podToken(T0 / 1000 + 3600)}`;
    const list = req('GET', '/api/v1/namespaces/shop/configmaps');
    t.accepted(tok, list, 200);
    t.accepted(tok, list, 200); // the same view again: nothing to keep
    t.accepted(tok, req('GET', '/api/v1/namespaces/shop/secrets/web-cert'), 200);
    expect(changes).toEqual(['1', '2']);
    t.accepted('Bearer two', list, 200);
    t.accepted('Bearer three', list, 200); // evicts the least recently accepted
    expect(evicted).toHaveLength(1);
    expect(kept.size).toBe(2);
    // A new run from what was kept: the restored tokens are good, with their views; garbage is ignored.
    const again = createOfflineTokens({
      now: () => now,
      initial: [...kept.values(), { hash: 'not-a-hash', expiresAt: T0 + 1e6, acceptedAt: T0, claims: {}, views: [] }, { hash: 'f'.repeat(64), expiresAt: T0 - 1, acceptedAt: T0 - 10, claims: {}, views: [] }],
    });
    expect(again.size).toBe(2);
    expect(again.authorize('Bearer three', list, always).ok).toBe(true);
    expect(again.authorize('Bearer three', req('GET', '/api/v1/namespaces/shop/secrets/web-cert'), always)).toMatchObject({ ok: false, code: 403 });
    expect(again.authorize(tok, list, always)).toMatchObject({ ok: false, code: 401 }); // it was evicted
  });

  test('a restored bound token keeps its pod and expiry', () => {
    const kept: TokenRecord[] = [];
    const t = createOfflineTokens({ now: () => T0, onChange: (r) => kept.push(r) });
    const tok = `Bearer ${podToken(T0 / 1000 + 600)}`;
    const list = req('GET', '/api/v1/namespaces/shop/configmaps');
    t.accepted(tok, list, 200);
    let now = T0;
    const again = createOfflineTokens({ now: () => now, initial: kept });
    expect(again.authorize(tok, list, (p) => p.uid === 'u-1').ok).toBe(true);
    expect(again.authorize(tok, list, (p) => p.uid === 'another')).toMatchObject({ ok: false, code: 401 });
    now = T0 + 600_000;
    expect(again.authorize(tok, list, () => true)).toMatchObject({ ok: false, code: 401 });
  });
});
