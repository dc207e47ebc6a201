import { afterAll, afterEach, beforeAll, expect, test } from 'bun:test';
import { ErrorCode, isTetherError, messageOf } from '../../shared/errors.ts';
import { probeReadyz, startProber, type ProbeResult } from './health.ts';
import { createAgent, type UpstreamAgent } from './tls.ts';
import { makePki, startApiServer, waitFor, type Pki, type TestApiServer } from './_test-servers.ts';

let pki: Pki;
let server: TestApiServer;
const cleanup: (() => unknown)[] = [];

beforeAll(async () => {
  pki = makePki(['client-a']);
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

test('startProber bounds a probe that ignores its signal by timeoutMs', async () => {
  const results: ProbeResult[] = [];
  const signals: AbortSignal[] = [];
  const prober = startProber({
    targets: ['x'],
    intervalMs: 10,
    timeoutMs: 30,
    probe: (_t, signal) => {
      signals.push(signal);
      return new Promise<void>(() => {});
    },
    onResult: (_t, r) => results.push(r),
  });
  cleanup.push(() => prober.stop());
  await waitFor('a result', () => results.length > 0);
  const first = results[0]!;
  expect(first.ok).toBe(false);
  expect(messageOf(!first.ok && first.error)).toBe('probe: no answer within 30 ms');
  expect(signals[0]!.aborted).toBe(true);
});

test('startProber never runs two probes of one target at once and keeps probing after failures', async () => {
  const results: [string, boolean][] = [];
  const running = new Map<string, number>();
  const calls = new Map<string, number>();
  let overlap = 0;
  const prober = startProber({
    targets: ['a', 'b'],
    intervalMs: 1,
    timeoutMs: 1000,
    probe: async (t) => {
      const now = (running.get(t) ?? 0) + 1;
      running.set(t, now);
      if (now > 1) overlap++;
      await new Promise((r) => setTimeout(r, 3)); // the probe's own work, not a wait in the test
      running.set(t, (running.get(t) ?? 1) - 1);
      calls.set(t, (calls.get(t) ?? 0) + 1);
      if ((calls.get(t) ?? 0) % 2 === 0) throw new Error('probe: down');
    },
    onResult: (t, r) => results.push([t, r.ok]),
  });
  cleanup.push(() => prober.stop());
  await waitFor('20 results', () => results.length >= 20);
  expect(overlap).toBe(0);
  for (const t of ['a', 'b']) {
    const mine = results.filter(([x]) => x === t).map(([, ok]) => ok);
    expect(mine).toContain(true);
    expect(mine).toContain(false);
  }
});

test('startProber.stop() aborts the probe in flight and reports nothing more', async () => {
  const results: ProbeResult[] = [];
  let inFlight: { signal: AbortSignal; settled: Promise<unknown> } | undefined;
  const prober = startProber({
    targets: ['x'],
    intervalMs: 10,
    timeoutMs: 60_000,
    probe: (_t, signal) => {
      const p = new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
      inFlight = { signal, settled: p.catch(() => {}) };
      return p;
    },
    onResult: (_t, r) => results.push(r),
  });
  await waitFor('a probe in flight', () => inFlight !== undefined);
  prober.stop();
  expect(inFlight!.signal.aborted).toBe(true);
  await inFlight!.settled;
  await new Promise((r) => setImmediate(r));
  expect(results).toEqual([]);
});
