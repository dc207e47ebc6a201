/**
 * How the proxy refuses (issue 12): offline refusals end at once (no Retry-After where retrying
 * cannot help), a retry hint only where a retry soon can help, apiserver-shaped Statuses sent as
 * they are, and requests the agent cannot parse passed upstream unchanged while online. A fake
 * plain-HTTP apiserver records what reached it (a unit test of this module; the comparison with
 * the real kube-apiserver is test/apiserver-contract.e2e.test.ts).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { type Server, Agent, createServer } from 'node:http';
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import { tooLargeResourceVersion } from '../../shared/kube/index.ts';
import { createMemoryLogger } from '../../shared/log.ts';
import { Registry } from '../../shared/metrics.ts';
import { type ProxyServer, type Target, createProxyServer } from './server.ts';
import type { Cache } from '../cache/contract.ts';
import { FLAPPING_RETRY_SECONDS, STORE_RETRY_SECONDS, statusOf } from './error-status.ts';

let upstream: Server;
let upstreamUrl: URL;
const seen: string[] = [];
/** What the fake apiserver does: answer, or drop the connection before answering. */
let mode: 'answer' | 'drop' = 'answer';
let proxy: ProxyServer | undefined;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (mode === 'drop') return req.socket.destroy();
    res.writeHead(418, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', code: 418, reason: 'FromUpstream', url: req.url }));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  upstreamUrl = new URL(`http://127.0.0.1:${(upstream.address() as { port: number }).port}`);
});
afterAll(() => upstream.close());
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  seen.length = 0;
  mode = 'answer';
});

async function start(o: { online: boolean; read?: Cache['read'] }) {
  const t: Target = { url: upstreamUrl, agent: new Agent(), bearerAgent: new Agent() } as unknown as Target;
  const cache: Cache = {
    tapFor: () => undefined,
    read:
      o.read ??
      (() => {
        throw new TetherError(ErrorCode.UpstreamUnavailable, "tether-edge: the node is offline, and pods x is not in the node's cache");
      }),
    watch: () => {},
    write: () => {
      throw new TetherError(ErrorCode.UpstreamUnavailable, 'tether-edge: offline: create configmaps cannot be accepted until the apiserver is reachable');
    },
    document: () => undefined,
  };
  proxy = await createProxyServer({
    listen: '127.0.0.1:0',
    upstreams: { pick: () => (o.online ? t : undefined), reportFailure: () => {}, track: () => () => {} },
    cache,
    isCachedComponent: (c) => c === 'kubelet',
    log: createMemoryLogger('error'),
    requests: new Registry().counter('t', 't'),
    clientAuth: { mode: 'insecure-plain-http' },
  });
}

async function call(path: string, method = 'GET', body?: string) {
  const res = await fetch(proxy!.url + path, { method, body, headers: { 'user-agent': 'kubelet/v1.37.2', 'content-type': 'application/json' } });
  const text = await res.text();
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: JSON.parse(text), text };
}

describe('offline refusals end at once', () => {
  test('what is not in the store, an uncached write, a verb that needs the apiserver: 503 without Retry-After', async () => {
    await start({ online: false });
    for (const [path, method] of [
      ['/api/v1/namespaces/a/pods/x', 'GET'],
      ['/api/v1/namespaces/a/configmaps', 'POST'],
      ['/api/v1/namespaces/a/pods/x', 'DELETE'],
      ['/apis/nosuch.example/v1', 'GET'],
    ] as const) {
      const r = await call(path, method, method === 'POST' ? '{}' : undefined);
      expect({ path, method, status: r.status, reason: r.body.reason, retryAfter: r.retryAfter }).toEqual({ path, method, status: 503, reason: 'ServiceUnavailable', retryAfter: null });
      expect(r.body.message).toContain('offline');
      expect(r.body.details?.retryAfterSeconds).toBeUndefined();
    }
  });

  test('the upstream failing this very request (a flapping link): the same 503, with a short Retry-After', async () => {
    await start({ online: true });
    mode = 'drop';
    const r = await call('/api/v1/namespaces/a/pods/x');
    expect(seen).toEqual(['GET /api/v1/namespaces/a/pods/x']);
    expect(r.status).toBe(503);
    expect(r.retryAfter).toBe(String(FLAPPING_RETRY_SECONDS));
    expect(r.body.details.retryAfterSeconds).toBe(FLAPPING_RETRY_SECONDS);
    expect(r.body.message).toContain('failed during this request');
  });

  test('a store momentarily unavailable: Retry-After; other errors of the node: none', () => {
    const locked = statusOf(new TetherError(ErrorCode.StoreLocked, 'open store: locked by another process'));
    expect(locked).toMatchObject({ code: 503, reason: 'ServiceUnavailable', details: { retryAfterSeconds: STORE_RETRY_SECONDS } });
    expect(statusOf(new TetherError(ErrorCode.StoreCorrupt, 'read store: corrupt')).details?.retryAfterSeconds).toBeUndefined();
  });

  test('ResourceVersionTooLarge offline: the apiserver\'s 504 Timeout shape, without Retry-After', async () => {
    await start({
      online: false,
      read: () => {
        throw tooLargeResourceVersion('999', '12');
      },
    });
    const r = await call('/api/v1/pods?resourceVersion=999');
    expect(r.status).toBe(504);
    expect(r.retryAfter).toBeNull();
    expect(r.body).toEqual({
      kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', code: 504, reason: 'Timeout',
      message: 'Timeout: Too large resource version: 999, current: 12',
      details: { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }] },
    });
    // As kube-apiserver writes metav1.Status: its fields in struct order, details before code.
    expect(r.text).toBe(
      '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Timeout: Too large resource version: 999, current: 12","reason":"Timeout",' +
        '"details":{"causes":[{"reason":"ResourceVersionTooLarge","message":"Too large resource version"}]},"code":504}',
    );
  });
});

describe('requests the agent cannot parse', () => {
  const unparsable = [
    '/api/v1/pods?limit=abc',
    '/api/v1/pods?labelSelector=a%3D%3D%3Db',
    '/api/v1/pods?resourceVersionMatch=NotOlderThan',
    '/api/v1/namespaces/a/pods/p?resourceVersion=abc',
    '/api/v1/pods?x=%zz',
  ];

  test('online: go upstream unchanged, and the apiserver answers', async () => {
    await start({ online: true });
    for (const path of unparsable) {
      const r = await call(path);
      expect({ path, status: r.status, url: r.body.url }).toEqual({ path, status: 418, url: path });
    }
    expect(seen).toEqual(unparsable.map((p) => `GET ${p}`));
  });

  test('offline: the parse error, as the apiserver words it, without Retry-After', async () => {
    await start({ online: false });
    const answers = await Promise.all(unparsable.map((p) => call(p)));
    expect(answers.map((a) => [a.status, a.body.reason ?? '', a.retryAfter])).toEqual([
      [400, 'BadRequest', null],
      [400, 'BadRequest', null],
      [422, 'Invalid', null],
      [500, '', null],
      [400, 'BadRequest', null],
    ]);
    expect(answers[0]!.body.message).toBe('strconv.ParseInt: parsing "abc": invalid syntax');
    expect(answers[3]!.body).not.toHaveProperty('reason');
    expect(seen).toEqual([]);
  });

  test('a CSR write the parser cannot read never goes upstream with the lent identity', async () => {
    await start({ online: true });
    const r = await call('/apis/certificates.k8s.io/v1/certificatesigningrequests?x=%zz', 'POST', '{}');
    expect(r.status).toBe(400);
    expect(seen).toEqual([]);
  });
});
