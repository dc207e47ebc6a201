import { afterAll, afterEach, beforeAll, expect, test } from 'bun:test';
import { ErrorCode, isTetherError } from '../../shared/errors.ts';
import { createMemoryLogger } from '../../shared/log.ts';
import { createUpstreamPool, type UpstreamChange, type UpstreamPool, type UpstreamPoolOptions } from './pool.ts';
import { agentBusy } from './tls.ts';
import { get, makePki, openWatch, startApiServer, waitFor, type Pki, type TestApiServer } from '../../test/support/upstream-servers.ts';

let pki: Pki;
const cleanup: (() => unknown)[] = [];

beforeAll(async () => {
  pki = await makePki(['client-a', 'client-b']);
});
afterAll(() => pki.remove());
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function servers(n: number): Promise<TestApiServer[]> {
  const list: TestApiServer[] = [];
  for (let i = 0; i < n; i++) {
    const s = await startApiServer(pki);
    cleanup.push(() => s.stop());
    list.push(s);
  }
  return list;
}

type TestPool = UpstreamPool & { events: UpstreamChange[] };

function pool(list: TestApiServer[], opts: Partial<UpstreamPoolOptions> = {}): TestPool {
  const p = createUpstreamPool({
    servers: list.map((s) => s.url),
    lbMode: 'priority',
    tls: { ca: pki.ca, ...pki.client('client-a') },
    // An idle pool probes after 30 ms of silence here, so a server that stops is noticed without traffic.
    quietMs: 30,
    retryMinMs: 20,
    retryMaxMs: 100,
    probeTimeoutMs: 500,
    log: createMemoryLogger(),
    ...opts,
  });
  cleanup.push(() => p.close());
  const events: UpstreamChange[] = [];
  p.onChange((ev) => events.push(ev));
  return Object.assign(p, { events });
}

test('ready resolves after the first probe of every upstream; a server that is down is never picked', async () => {
  const [a, b] = await servers(2);
  await a!.stop();
  const p = pool([a!, b!]);
  expect(p.pick()).toBeUndefined(); // nothing is trusted before the first round
  await p.ready;
  const [ua, ub] = p.all();
  expect(ua!.healthy).toBe(false);
  expect(ua!.lastError).toStartWith('probe: ');
  expect(ub!.healthy).toBe(true);
  expect(p.online).toBe(true);
  for (let i = 0; i < 3; i++) expect(p.pick()).toBe(ub);
  expect(p.events.map((e) => [e.upstream.url.href, e.healthy]).sort()).toEqual(
    [[ua!.url.href, false], [ub!.url.href, true]].sort(),
  );
});

test('priority: picks the first healthy server in list order, and fails over when it stops', async () => {
  const [a, b] = await servers(2);
  const p = pool([a!, b!]);
  await p.ready;
  const [ua, ub] = p.all();
  for (let i = 0; i < 4; i++) expect(p.pick()).toBe(ua);
  await a!.stop();
  await waitFor('a unhealthy', () => !ua!.healthy);
  expect(p.pick()).toBe(ub);
  expect(ub!.healthy).toBe(true);
  const down = p.events.find((e) => e.upstream === ua && !e.healthy);
  expect(down?.reason).toStartWith('probe: ');
});

test('round-robin: rotates among the healthy servers only', async () => {
  const [a, b, c] = await servers(3);
  const p = pool([a!, b!, c!], { lbMode: 'round-robin' });
  await p.ready;
  const [ua, ub, uc] = p.all();
  expect(Array.from({ length: 6 }, () => p.pick())).toEqual([ua, ub, uc, ua, ub, uc]);
  await b!.stop();
  await waitFor('b unhealthy', () => !ub!.healthy);
  const picks = Array.from({ length: 4 }, () => p.pick());
  expect(picks).not.toContain(ub);
  expect(new Set(picks)).toEqual(new Set([ua, uc]));
  expect(picks[0]).not.toBe(picks[1]);
});

test('a server that hangs is marked unhealthy, its tracked watches are aborted, and requests fail over', async () => {
  const [a, b] = await servers(2);
  const p = pool([a!, b!]);
  await p.ready;
  const [ua, ub] = p.all();
  const abortA = new AbortController();
  const watchA = await openWatch(ua!, abortA);
  p.track(ua!, abortA);
  const abortB = new AbortController();
  const watchB = await openWatch(ub!, abortB);
  p.track(ub!, abortB);

  a!.hang();
  await waitFor('a unhealthy', () => !ua!.healthy);
  expect(ua!.lastError).toContain('no answer within');
  expect(abortA.signal.aborted).toBe(true);
  expect(isTetherError(abortA.signal.reason, ErrorCode.UpstreamUnavailable)).toBe(true);
  await expect(watchA.done).rejects.toBe(abortA.signal.reason);
  expect(p.pick()).toBe(ub);

  expect(abortB.signal.aborted).toBe(false);
  b!.push('{"type":"ADDED"}');
  await waitFor('b watch still streaming', () => watchB.lines.includes('{"type":"ADDED"}'));
});

test('an unhealthy server becomes healthy again after healthyAfter consecutive successful probes', async () => {
  const [a, b] = await servers(2);
  const p = pool([a!, b!], { healthyAfter: 3 });
  await p.ready;
  const [ua, ub] = p.all();
  await a!.stop();
  await waitFor('a unhealthy', () => !ua!.healthy);
  expect(p.pick()).toBe(ub);

  let probesAnsweredWhenHealthy = -1;
  p.onChange((ev) => {
    if (ev.upstream === ua && ev.healthy) probesAnsweredWhenHealthy = a!.readyzOk;
  });
  await a!.start();
  await waitFor('a healthy', () => ua!.healthy);
  expect(probesAnsweredWhenHealthy).toBe(3);
  expect(p.pick()).toBe(ua);
});

test('reportFailure of a refused connection marks the upstream unhealthy at once, aborts its watches, and drops its idle sockets', async () => {
  const [a, b] = await servers(2);
  // One probe only (the first round), so that no probe touches the agent's sockets during the test.
  const p = pool([a!, b!], { quietMs: 60_000, retryMinMs: 60_000, retryMaxMs: 60_000 });
  await p.ready;
  const [ua, ub] = p.all();
  expect((await get(ua!, '/whoami')).reused).toBe(true); // the probe's keep-alive connection
  const abort = new AbortController();
  p.track(ua!, abort);

  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
  p.reportFailure(ua!, refused);
  expect(ua!.healthy).toBe(false);
  expect(ua!.lastError).toBe('request: connect ECONNREFUSED 127.0.0.1:1');
  expect(abort.signal.aborted).toBe(true);
  expect(p.pick()).toBe(ub);
  expect(p.events.at(-1)).toEqual({ upstream: ua!, healthy: false, reason: 'request: connect ECONNREFUSED 127.0.0.1:1' });
  expect((await get(ua!, '/whoami')).reused).toBe(false); // the idle connection was closed

  const late = new AbortController();
  p.track(ua!, late);
  expect(late.signal.aborted).toBe(true); // tracking on an unhealthy upstream aborts at once
});

test('after a refused connection the upstream is probed on the down backoff, not after the quiet time, and recovers', async () => {
  const [a] = await servers(1);
  const p = pool([a!], { quietMs: 60_000 });
  await p.ready;
  const [ua] = p.all();
  const probes = ua!.probes;
  p.reportFailure(ua!, Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }));
  expect(ua!.healthy).toBe(false);
  await waitFor('healthy again long before quietMs (60 s)', () => ua!.healthy);
  expect(ua!.probes).toBe(probes + 2); // healthyAfter: 2 probes after the failure
});

test('reportFailure of an ambiguous error (a reset keep-alive socket) is confirmed by a probe first: a live upstream stays healthy', async () => {
  const [a] = await servers(1);
  const p = pool([a!], { quietMs: 60_000 });
  await p.ready;
  const [ua] = p.all();
  const probesBefore = ua!.probes;
  p.reportFailure(ua!, new Error('read ECONNRESET'));
  expect(ua!.healthy).toBe(true);
  await waitFor('the confirming probe answered', () => a!.readyzOk >= 2 && ua!.probes === probesBefore + 1);
  expect(ua!.healthy).toBe(true);
  expect(p.events.map((e) => e.healthy)).toEqual([true]);
});

test('reportFailure of an ambiguous error on a server that hangs ends in unhealthy after the probe times out', async () => {
  const [a] = await servers(1);
  const p = pool([a!], { quietMs: 60_000 });
  await p.ready;
  const [ua] = p.all();
  a!.hang();
  p.reportFailure(ua!, new Error('socket hang up'));
  await waitFor('a unhealthy', () => !ua!.healthy);
  expect(ua!.lastError).toContain('no answer within');
});

test('no probe while requests are answered: traffic is the health signal', async () => {
  const [a] = await servers(1);
  const p = pool([a!], { quietMs: 60_000 });
  await p.ready;
  const [ua] = p.all();
  for (let i = 0; i < 200; i++) {
    const x = p.exchange(ua!, 'request');
    x.answered();
    x.end();
  }
  expect(ua!.probes).toBe(1); // the first verdict only
  expect(a!.readyzOk).toBe(1);
  expect(ua!.rttMs).toBeDefined();
});

test('an idle upstream is probed once silence lasts quietMs, and traffic heard postpones that', async () => {
  const [a] = await servers(1);
  const p = pool([a!], { quietMs: 1500 });
  await p.ready;
  const [ua] = p.all();
  // Heard from all along for longer than quietMs: no probe.
  const until = performance.now() + 3000;
  while (performance.now() < until) {
    p.heard(ua!);
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(ua!.probes).toBe(1);
  // Then silence: a quiet probe.
  await waitFor('a quiet probe', () => ua!.probes === 2 && a!.readyzOk === 2);
  expect(ua!.healthy).toBe(true);
});

test('a request that stalls into a dead link makes the pool probe, and the failed probe aborts what is tracked', async () => {
  const [a] = await servers(1);
  const p = pool([a!], { quietMs: 60_000 });
  await p.ready;
  const [ua] = p.all();
  const abort = new AbortController();
  p.track(ua!, abort);
  a!.hang();
  const x = p.exchange(ua!, 'request'); // never answered
  await waitFor('a unhealthy', () => !ua!.healthy);
  expect(ua!.probes).toBe(2);
  expect(ua!.lastError).toContain('no answer within');
  expect(abort.signal.aborted).toBe(true);
  x.end();
});

test('a slow request on a live link costs probes with a growing pause, and no transition', async () => {
  const [a] = await servers(1);
  const p = pool([a!], { quietMs: 60_000, stallMs: 40 });
  await p.ready;
  const [ua] = p.all();
  const x = p.exchange(ua!, 'request'); // a LIST the server takes long to compute
  await waitFor('three stall probes', () => ua!.probes >= 4);
  x.end();
  expect(ua!.healthy).toBe(true);
  expect(p.events.map((e) => e.healthy)).toEqual([true]);
});

test('on a slow link a healthy upstream needs two failed probes in a row before it is declared dead', async () => {
  const [a] = await servers(1);
  let mode: 'slow' | 'hang' = 'slow';
  const probesToDeclare: number[] = [];
  const p = pool([a!], {
    quietMs: 60_000,
    probe: (_u, signal) =>
      new Promise<void>((resolve, reject) => {
        signal.addEventListener('abort', () => reject(signal.reason));
        if (mode === 'slow') setTimeout(resolve, 300); // the link's round trip, not a wait in the test
      }),
  });
  await p.ready;
  const [ua] = p.all();
  // A few answered requests teach the pool the 300 ms round trip.
  for (let i = 0; i < 3; i++) {
    const x = p.exchange(ua!, 'request');
    await new Promise((r) => setTimeout(r, 300)); // the link's round trip
    x.answered();
    x.end();
  }
  expect(ua!.rttMs!).toBeGreaterThan(250);
  mode = 'hang';
  const before = ua!.probes;
  p.onChange((ev) => {
    if (!ev.healthy) probesToDeclare.push(ua!.probes - before);
  });
  p.reportFailure(ua!, new Error('socket hang up'));
  await waitFor('a unhealthy', () => !ua!.healthy, 30_000);
  expect(probesToDeclare).toEqual([2]);
  expect(ua!.lastError).toContain('no answer within');
}, 40_000);

test('reportFailure is followed by recovery through probes', async () => {
  const [a] = await servers(1);
  const p = pool([a!], { healthyAfter: 2 });
  await p.ready;
  const [ua] = p.all();
  p.reportFailure(ua!, Object.assign(new Error(''), { code: 'ECONNREFUSED' }));
  expect(ua!.lastError).toBe('request: ECONNREFUSED');
  expect(p.online).toBe(false);
  expect(p.pick()).toBeUndefined();
  await waitFor('a healthy again', () => ua!.healthy);
  expect(p.online).toBe(true);
  expect(p.events.map((e) => e.healthy)).toEqual([true, false, true]);
});

test('setTls swaps the client certificate for new requests and leaves requests in flight running', async () => {
  const [a] = await servers(1);
  const p = pool([a!]);
  await p.ready;
  const [ua] = p.all();
  expect((await get(ua!, '/whoami')).body).toBe('client-a');
  const abort = new AbortController();
  const watch = await openWatch(ua!, abort);
  p.track(ua!, abort);
  const oldAgent = ua!.agent;

  p.setTls({ ca: pki.ca, ...pki.client('client-b') });
  expect(ua!.agent).not.toBe(oldAgent);
  expect((await get(ua!, '/whoami')).body).toBe('client-b');
  const seen = a!.requests.length;
  const probesSince = () => a!.requests.slice(seen).filter((r) => r.path === '/readyz');
  await waitFor('a probe with the new certificate', () => probesSince().some((r) => r.cn === 'client-b'));
  expect(probesSince().every((r) => r.cn === 'client-b')).toBe(true);

  a!.push('{"type":"MODIFIED"}');
  await waitFor('the old watch still streams', () => watch.lines.includes('{"type":"MODIFIED"}'));
  expect(abort.signal.aborted).toBe(false);

  // The old agent pools nothing any more: once the watch ends, it holds no socket.
  expect(Object.values(oldAgent.freeSockets).flat()).toEqual([]);
  a!.endWatches();
  await watch.done;
  await waitFor('the old agent holds no socket', () => !agentBusy(oldAgent));
});

test('setTls refuses a key that does not match its certificate and keeps the old material', async () => {
  const [a] = await servers(1);
  const p = pool([a!]);
  await p.ready;
  const [ua] = p.all();
  const agent = ua!.agent;
  let thrown: unknown;
  try {
    p.setTls({ ca: pki.ca, cert: pki.client('client-b').cert, key: pki.client('client-a').key });
  } catch (e) {
    thrown = e;
  }
  expect(isTetherError(thrown, ErrorCode.BadConfig)).toBe(true);
  expect(ua!.agent).toBe(agent);
  expect((await get(ua!, '/whoami')).body).toBe('client-a');
});

test('a probe that started before a reported failure does not count towards recovery', async () => {
  const [a] = await servers(1);
  const held: (() => void)[] = [];
  const p = pool([a!], { healthyAfter: 1, quietMs: 1, retryMinMs: 1, probe: () => new Promise<void>((r) => held.push(r)) });
  await waitFor('first probe', () => held.length === 1);
  held[0]!();
  await p.ready;
  const [ua] = p.all();
  expect(ua!.healthy).toBe(true);
  await waitFor('second probe', () => held.length === 2);
  p.reportFailure(ua!, Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
  held[1]!(); // succeeds, but started before the failure
  await waitFor('third probe', () => held.length === 3);
  expect(ua!.healthy).toBe(false);
  held[2]!();
  await waitFor('healthy after a probe that started after the failure', () => ua!.healthy);
});

test('close() aborts tracked requests and probes in flight, destroys every socket, and stops picking', async () => {
  const [a] = await servers(1);
  const p = pool([a!]);
  await p.ready;
  const [ua] = p.all();
  const abort = new AbortController();
  await openWatch(ua!, abort);
  p.track(ua!, abort);
  await get(ua!, '/whoami');
  expect(a!.openConnections).toBeGreaterThan(0);
  p.close();
  expect(abort.signal.aborted).toBe(true);
  expect(p.pick()).toBeUndefined();
  expect(p.online).toBe(false);
  await waitFor('the server sees every connection closed', () => a!.openConnections === 0);
});

test('close() aborts the probe in flight', async () => {
  const [a] = await servers(1);
  const signals: AbortSignal[] = [];
  const p = pool([a!], {
    probe: (_u, signal) => {
      signals.push(signal);
      return new Promise<void>(() => {});
    },
  });
  await waitFor('a probe in flight', () => signals.length === 1);
  p.close();
  expect(signals[0]!.aborted).toBe(true);
  await p.ready; // resolves on close even though no probe finished
});

test('after a burst of parallel requests only a few idle connections stay open (each would carry keepalive traffic)', async () => {
  const [a] = await servers(1);
  const p = pool([a!], { quietMs: 60_000 });
  await p.ready;
  const [ua] = p.all();
  await Promise.all(Array.from({ length: 20 }, () => get(ua!, '/whoami')));
  expect(a!.connections).toBeGreaterThan(4); // the burst did open parallel connections
  await waitFor('idle connections closed down to the limit', () => a!.openConnections <= 4);
  expect(Object.values(ua!.agent.freeSockets).flat().length).toBeLessThanOrEqual(4);
});

test('an agent that starts on a link slower than the probe floor backs its probe timeout off and comes online', async () => {
  const [a] = await servers(1);
  const verdicts: number[] = [];
  const p = pool([a!], {
    quietMs: 60_000,
    retryMinMs: 10,
    probeTimeoutMs: 100,
    probe: (_u, signal) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, 250); // the link's round trips, not a wait in the test
        signal.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason)));
      }),
  });
  p.onChange((ev) => verdicts.push(ev.healthy ? 1 : 0));
  await waitFor('healthy over the slow link', () => p.all()[0]!.healthy, 20_000);
  expect(verdicts[0]).toBe(0); // the first probe (100 ms) could not be answered in time
  expect(p.all()[0]!.rttMs!).toBeGreaterThan(200); // and the pool learned the link from the successes
});

test('repeated cuts do not teach the pool a slow link: a probe in flight across a cut and its heal is no round trip', async () => {
  const [a] = await servers(1);
  let cut = false;
  const waiting: (() => void)[] = [];
  const p = pool([a!], {
    quietMs: 20,
    // Retries follow each other closely, so one is always in flight when the link heals.
    retryMinMs: 5,
    retryMaxMs: 10,
    probeTimeoutMs: 100,
    probe: (_u, signal) =>
      new Promise<void>((resolve, reject) => {
        // A live link answers in 2 ms; a cut one holds the probe until the heal delivers it.
        const answer = () => setTimeout(resolve, 2);
        if (cut) waiting.push(answer);
        else answer();
        signal.addEventListener('abort', () => reject(signal.reason));
      }),
  });
  await p.ready;
  const [ua] = p.all();
  for (let i = 0; i < 4; i++) {
    cut = true;
    await waitFor('unhealthy in the cut', () => !ua!.healthy, 10_000);
    // Let the down backoff grow the probe timeout, so a retry probe is in flight when the link heals.
    await new Promise((r) => setTimeout(r, 700)); // the length of the cut, not a wait for a condition
    cut = false;
    for (const deliver of waiting.splice(0)) deliver();
    await waitFor('healthy after the heal', () => ua!.healthy, 10_000);
  }
  // Every sample came from a 2 ms link: the estimate stays near it, well below the cut's length.
  expect(ua!.rttMs!).toBeLessThan(50);
}, 60_000);

