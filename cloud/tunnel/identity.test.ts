import { expect, test } from 'bun:test';
import { ErrorCode, isTetherError } from '../../shared/errors.ts';
import { authenticate, bearerToken, createCachedReviewer, nodeNameOf } from './identity.ts';

test('a node identity is system:node:<name> in system:nodes, nothing less', () => {
  expect(nodeNameOf({ user: 'system:node:n1', groups: ['system:nodes'], via: 'certificate' })).toBe('n1');
  expect(nodeNameOf({ user: 'system:node:n1', groups: [], via: 'certificate' })).toBeUndefined();
  expect(nodeNameOf({ user: 'system:node:', groups: ['system:nodes'], via: 'token' })).toBeUndefined();
  expect(nodeNameOf({ user: 'alice', groups: ['system:nodes'], via: 'token' })).toBeUndefined();
});

test('bearer tokens are read from "Bearer <t>" only', () => {
  expect(bearerToken('Bearer abc.def')).toBe('abc.def');
  expect(bearerToken('bearer  x ')).toBe('x');
  expect(bearerToken('Basic eA==')).toBeUndefined();
  expect(bearerToken(undefined)).toBeUndefined();
});

test('without a certificate a token is reviewed; a rejected token and no credentials are refused with the reason', async () => {
  const reviewer = { review: async (t: string) => (t === 'good' ? { user: 'system:node:n1', groups: ['system:nodes'] } : { error: 'token expired' }) };
  expect(await authenticate(undefined, 'Bearer good', reviewer)).toEqual({ user: 'system:node:n1', groups: ['system:nodes'], via: 'token' });
  const bad = await authenticate(undefined, 'Bearer old', reviewer).catch((e: unknown) => e);
  expect(isTetherError(bad, ErrorCode.BadRequest)).toBe(true);
  expect(String(bad)).toContain('token rejected by TokenReview: token expired');
  expect(String(await authenticate(undefined, undefined, reviewer).catch((e: unknown) => e))).toContain('no client certificate and no bearer token');
  expect(String(await authenticate(undefined, 'Bearer good', undefined).catch((e: unknown) => e))).toContain('bearer tokens are not accepted here');
});

test('the cached reviewer asks once per token within the TTL, and again after it', async () => {
  let now = 0;
  let calls = 0;
  const r = createCachedReviewer(async () => (calls++, { user: 'u', groups: [] }), { ttlMs: 1000, now: () => now });
  await r.review('t');
  await r.review('t');
  expect(calls).toBe(1);
  now = 1001;
  await r.review('t');
  expect(calls).toBe(2);
  await r.review('other');
  expect(calls).toBe(3);
});
