import { afterAll, afterEach, beforeAll, expect, test } from 'bun:test';
import { ErrorCode, isTetherError, messageOf } from '../../shared/errors.ts';
import { probeOnce, probeReadyz } from './health.ts';
import { createTrafficMeter } from './traffic.ts';
import { createAgent, type UpstreamAgent } from './tls.ts';
import { makePki, startApiServer, waitFor, type Pki, type TestApiServer } from '../../test/support/upstream-servers.ts';

let pki: Pki;
let server: TestApiServer;
const cleanup: (() => unknown)[] = [];

beforeAll(async () => {
  pki = await makePki(['client-a']);
  server = await startApiServer(pki);
});
afterAll(async () => {
  await server.stop();
  pki.remove();
});
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
  server.readyzStatus = 200;
});

function agent(withCert: boolean): UpstreamAgent {
  const a = createAgent(new URL(server.url), withCert ? { ca: pki.ca, ...pki.client('client-a') } : { ca: pki.ca });
  cleanup.push(() => a.destroy());
  return a;
}

const never = () => new AbortController().signal;

test('probeReadyz succeeds on 200 and presents the client certificate', async () => {
  const seen = server.requests.length;
  await probeReadyz(new URL(server.url), agent(true), never());
  expect(server.requests.slice(seen)).toEqual([{ path: '/readyz', cn: 'client-a' }]);
});

test('probeReadyz keeps a path prefix of the server URL', async () => {
  const seen = server.requests.length;
  await probeReadyz(new URL(server.url + '/prefix/'), agent(true), never()).catch(() => {});
  expect(server.requests.slice(seen).map((r) => r.path)).toEqual(['/prefix/readyz']);
});

test('probeReadyz fails when the client has no certificate the server accepts', async () => {
  const seen = server.requests.length;
  await expect(probeReadyz(new URL(server.url), agent(false), never())).rejects.toBeDefined();
  expect(server.requests.length).toBe(seen);
});

test('probeReadyz fails on an answer other than 200', async () => {
  server.readyzStatus = 503;
  const err = await probeReadyz(new URL(server.url), agent(true), never()).catch((e: unknown) => e);
  expect(isTetherError(err, ErrorCode.UpstreamUnavailable)).toBe(true);
  expect(messageOf(err)).toBe('probe: GET /readyz answered 503');
});

test('probeReadyz to a server that accepts TCP and never answers ends when its signal aborts', async () => {
  const hung = await startApiServer(pki);
  cleanup.push(() => hung.stop());
  hung.hang();
  const abort = new AbortController();
  const probe = probeReadyz(new URL(hung.url), agent(true), abort.signal);
  await waitFor('the connection is accepted', () => hung.connections > 0);
  const reason = new Error('probe: gave up');
  abort.abort(reason);
  await expect(probe).rejects.toBe(reason);
});

test('probeOnce bounds a probe that ignores its signal by its timeout', async () => {
  const signals: AbortSignal[] = [];
  const out = await probeOnce((_t: string, signal) => {
    signals.push(signal);
    return new Promise<void>(() => {});
  }, 'x', 30);
  expect(out.result.ok).toBe(false);
  expect(messageOf(!out.result.ok && out.result.error)).toBe('probe: no answer within 30 ms');
  expect(signals[0]!.aborted).toBe(true);
});

test('probeOnce reports success with its duration, and a failure with its error, never rejecting', async () => {
  const ok = await probeOnce(async () => {}, 'x', 1000);
  expect(ok.result).toEqual({ ok: true });
  expect(ok.durationMs).toBeGreaterThanOrEqual(0);
  const err = new Error('probe: down');
  const bad = await probeOnce(async () => {
    throw err;
  }, 'x', 1000);
  expect(bad.result).toEqual({ ok: false, error: err });
});

test('probeOnce ends when its outer signal aborts (the pool closing)', async () => {
  const outer = new AbortController();
  const seen: AbortSignal[] = [];
  const running = probeOnce((_t: string, signal) => {
    seen.push(signal);
    return new Promise<void>(() => {});
  }, 'x', 60_000, outer.signal);
  await waitFor('probe running', () => seen.length === 1);
  const reason = new Error('probe: pool closed');
  outer.abort(reason);
  const out = await running;
  expect(out.result).toEqual({ ok: false, error: reason });
  expect(seen[0]!.aborted).toBe(true);
});

test('probeReadyz counts the bytes it moves as kind probe', async () => {
  const m = createTrafficMeter();
  await probeReadyz(new URL(server.url), agent(true), new AbortController().signal, m);
  const t = m.total();
  expect(t.sent.probe).toBeGreaterThan('GET /readyz HTTP/1.1\r\n'.length);
  expect(t.received.probe).toBeGreaterThan('HTTP/1.1 200 OK\r\n'.length);
  expect(t.sent.request + t.received.request).toBe(0);
});
