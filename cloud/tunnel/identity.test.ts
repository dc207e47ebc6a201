import { afterAll, beforeAll, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { createHubTestPki, type HubTestPki } from '../../test/support/pki.ts';
import { ErrorCode, isTetherError } from '../../shared/errors.ts';
import { authenticate, bearerToken, createCachedReviewer, nodeNameOf, type Identity } from './identity.ts';

let pki: HubTestPki;
beforeAll(async () => void (pki = await createHubTestPki()));
afterAll(() => pki.remove());

/** Authenticates a real TLS client presenting `files` to a server that trusts the test CA. */
async function identityOver(files: { certFile: string; keyFile: string }): Promise<Identity | Error> {
  let answer!: (v: Identity | Error) => void;
  const result = new Promise<Identity | Error>((r) => (answer = r));
  const server = createServer({ cert: readFileSync(pki.hub.certFile), key: readFileSync(pki.hub.keyFile), ca: readFileSync(pki.caFile), requestCert: true, rejectUnauthorized: false }, (s: TLSSocket) => {
    authenticate(s, undefined, undefined).then(answer, answer);
    s.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const c = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, ca: readFileSync(pki.caFile), cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) });
  c.on('error', () => {}).resume();
  const v = await result;
  c.destroy();
  server.close();
  return v;
}

test('a certificate with several common names is refused (Go would take the last, node:tls lists all)', async () => {
  for (const subj of ['/CN=system:node:a/CN=system:node:b/O=system:nodes', '/CN=system:node:a+CN=system:node:b/O=system:nodes']) {
    const v = await identityOver(await pki.withSubject(subj));
    expect(isTetherError(v, ErrorCode.BadRequest)).toBe(true);
    expect(String(v)).toContain('client certificate has 2 common names ("system:node:a", "system:node:b"); exactly one is accepted');
  }
  const none = await identityOver(await pki.withSubject('/O=system:nodes'));
  expect(String(none)).toContain('client certificate has no common name');
});

test('one common name is the user, every O a group, and the credential is the certificate fingerprint', async () => {
  const files = await pki.withSubject('/CN=system:node:a/O=system:nodes/O=extra');
  const v = (await identityOver(files)) as Identity;
  expect(v.user).toBe('system:node:a');
  expect(v.groups).toEqual(['system:nodes', 'extra']);
  const { X509Certificate } = await import('node:crypto');
  expect(v.credential).toBe(`cert:${new X509Certificate(readFileSync(files.certFile)).fingerprint256}`);
});

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
  expect(await authenticate(undefined, 'Bearer good', reviewer)).toMatchObject({ user: 'system:node:n1', groups: ['system:nodes'], via: 'token' });
  expect((await authenticate(undefined, 'Bearer good', reviewer)).credential).toMatch(/^token:[A-Za-z0-9+/=]{44}$/);
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
