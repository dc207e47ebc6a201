/** A trial's health verdict: store, proxy answering on its listener, upstream reachable or correctly offline. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkHealth, isRefusal } from './health.ts';

let proxy: Server;
let proxyUrl = '';
let closedUrl = '';
beforeAll(async () => {
  proxy = createServer((_req, res) => {
    res.writeHead(401);
    res.end();
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  const gone = createServer();
  await new Promise<void>((r) => gone.listen(0, '127.0.0.1', () => r()));
  closedUrl = `http://127.0.0.1:${(gone.address() as AddressInfo).port}`;
  await new Promise<void>((r) => gone.close(() => r()));
});
afterAll(() => proxy.close());

const pool = (online: boolean, ...lastErrors: (string | undefined)[]) => ({ online, all: () => lastErrors.map((lastError) => ({ lastError })) });
const base = () => ({ storeOpen: true, storeProblem: () => null, proxyUrl, pool: pool(true) });

describe('checkHealth', () => {
  test('online with the store open and the proxy answering (even 401 without credentials): healthy', async () => {
    expect(await checkHealth(base())).toEqual({ healthy: true });
  });

  test('a store that did not open, or fails its check: not healthy', async () => {
    expect(await checkHealth({ ...base(), storeOpen: false })).toEqual({ healthy: false, problem: 'the snapshot store did not open' });
    expect(await checkHealth({ ...base(), storeProblem: () => 'disk full' })).toEqual({ healthy: false, problem: 'store: disk full' });
  });

  test('a proxy that does not answer: not healthy', async () => {
    expect(await checkHealth({ ...base(), proxyUrl: closedUrl })).toMatchObject({ healthy: false, problem: `the proxy does not answer on ${closedUrl}` });
  });

  test('offline because the link is down (the store answers): healthy', async () => {
    expect(await checkHealth({ ...base(), pool: pool(false, 'probe: no answer within 2000 ms', 'request: connect ECONNREFUSED 10.0.0.1:6443') })).toEqual({ healthy: true });
  });

  test('offline because the apiserver refuses this binary (certificate, 401/403): not healthy', async () => {
    const v = await checkHealth({ ...base(), pool: pool(false, 'probe: unable to verify the first certificate') });
    expect(v).toEqual({ healthy: false, problem: 'the upstream refuses this agent: probe: unable to verify the first certificate' });
    expect((await checkHealth({ ...base(), pool: pool(false, 'probe: answered 401') })).healthy).toBe(false);
  });

  test('no verdict on any upstream yet: not healthy yet', async () => {
    expect(await checkHealth({ ...base(), pool: pool(false, undefined) })).toEqual({ healthy: false, problem: 'no upstream verdict yet' });
  });
});

test('a cut during the TLS handshake is the link, not a refusal', () => {
  expect(isRefusal('request: Client network socket disconnected before secure TLS connection was established')).toBe(false);
  expect(isRefusal('probe: tlsv1 alert unknown ca')).toBe(true);
  expect(isRefusal('probe: certificate has expired')).toBe(true);
  expect(isRefusal(undefined)).toBe(false);
});
