/**
 * The reconnect work against a fake clock (no test here waits for real time), a real in-memory
 * store, and a recording apiserver standing in for the node's own requests.
 */
import { expect, test } from 'bun:test';
import { createMemoryLogger } from '../shared/log.ts';
import { documentKey } from './cache/documents.ts';
import type { CallOptions, CallResult, UpstreamCall } from './upstream/calls.ts';
import { type ReconnectClock, REPLAY_RETRY_MS, createReconnect } from './reconnect.ts';
import { openDb } from './store/db.bun.ts';
import { type Store, createStore } from './store/index.ts';
import type { PoolSource } from './topology-feed.ts';
import type { RequestKind } from './upstream/node-requests.ts';
import type { UpstreamChange } from './upstream/pool.ts';

/** Timers that run only when the test advances the time. */
function fakeClock(): ReconnectClock & { advance(ms: number): void; delays(): number[] } {
  let now = 0;
  let next = 0;
  const timers = new Map<number, { at: number; fn: () => void; ms: number }>();
  return {
    setTimeout(fn, ms) {
      timers.set(++next, { at: now + ms, fn, ms });
      return next;
    },
    clearTimeout: (h) => void timers.delete(h as number),
    delays: () => [...timers.values()].map((t) => t.ms),
    advance(ms) {
      const until = now + ms;
      for (;;) {
        const due = [...timers.entries()].filter(([, t]) => t.at <= until).sort(([, a], [, b]) => a.at - b.at)[0];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = until;
    },
  };
}

/** The pool as reconnect sees it: whether it is online, and its transitions. */
function fakeLink() {
  const listeners = new Set<(ev: UpstreamChange) => void>();
  const link = {
    online: false,
    onChange(l: (ev: UpstreamChange) => void) {
      listeners.add(l);
      return () => void listeners.delete(l);
    },
    set(healthy: boolean, server = 'https://10.0.0.1:6443') {
      link.online = healthy;
      const upstream = { url: new URL(server) } as UpstreamChange['upstream'];
      for (const l of [...listeners]) l({ upstream, healthy, ...(healthy ? {} : { reason: 'probe: timed out' }) });
    },
  };
  return link;
}

interface Seen {
  what: string;
  kind?: RequestKind;
  upstream?: number;
}

/** What happened, in order: calls to the apiserver (by kind and upstream), offline watches ended, NodePool follows. */
function rig(o: { store?: boolean; answer?: (method: string, path: string) => number } = {}) {
  const seen: Seen[] = [];
  const link = fakeLink();
  const clock = fakeClock();
  const log = createMemoryLogger();
  const store: Store | undefined = o.store === false ? undefined : createStore(openDb({ path: ':memory:' }));
  let picks = 0;
  const answer = o.answer ?? (() => 200);
  const callOn = (upstream: number, kind: RequestKind): UpstreamCall => async (method: string, path: string, _o?: CallOptions): Promise<CallResult> => {
    seen.push({ what: `${method} ${path}`, kind, upstream });
    return { status: answer(method, path), contentType: 'application/json', body: '{}' };
  };
  const follows: { source: PoolSource; stopped: boolean }[] = [];
  const reconnect = createReconnect({
    link,
    requests: {
      online: () => link.online,
      pinned: () => {
        if (!link.online) return undefined;
        const upstream = ++picks;
        return (kind) => callOn(upstream, kind);
      },
      watch: () => ({ done: new Promise(() => {}), stop: () => {} }),
    },
    store,
    bus: { endAll: () => void seen.push({ what: 'end offline watches' }) },
    topology: {
      followPools(source) {
        const f = { source, stopped: false };
        follows.push(f);
        seen.push({ what: 'follow NodePools' });
        return { stop: () => void (f.stopped = true), done: Promise.resolve() };
      },
    },
    log,
    jitterMs: 1000,
    random: () => 0.5,
    clock,
  });
  const queue = (path: string) => store!.outbox.enqueue({ kind: 'event', method: 'POST', path, contentType: 'application/json', body: '{}' });
  return { seen, link, clock, log, store, reconnect, follows, queue, picks: () => picks };
}

test('after the jittered delay: the outbox is replayed, then offline watches end, then NodePools are followed and discovery refreshed, all on the upstream picked then', async () => {
  const r = rig();
  r.queue('/api/v1/namespaces/default/events');
  r.link.set(true);
  expect(r.clock.delays()).toEqual([500]); // random 0.5 × jitterMs 1000
  r.clock.advance(499);
  await r.reconnect.settled();
  expect(r.seen).toEqual([]);
  r.clock.advance(1);
  await r.reconnect.settled();
  expect(r.seen.slice(0, 3)).toEqual([
    { what: 'POST /api/v1/namespaces/default/events', kind: 'replay', upstream: 1 },
    { what: 'end offline watches' },
    { what: 'follow NodePools' },
  ]);
  const discovery = r.seen.slice(3);
  expect(discovery.map((s) => s.what)).toEqual(['GET /version', 'GET /api', 'GET /apis', 'GET /api', 'GET /apis', 'GET /api/v1']);
  expect(discovery.every((s) => s.kind === 'discovery' && s.upstream === 1)).toBe(true);
  expect(r.picks()).toBe(1);
  expect(r.store!.outbox.peek(10)).toEqual([]);
  expect(r.store!.documents.get(documentKey('/api/v1', 'application/json'))?.body).toBe('{}');
  // The NodePools are read as the node's plain requests, on the same upstream; their watch and online come from the requests.
  await r.follows[0]!.source.call('GET', '/apis/apps.tether.dev/v1alpha1/nodepools');
  expect(r.seen.at(-1)).toEqual({ what: 'GET /apis/apps.tether.dev/v1alpha1/nodepools', kind: 'request', upstream: 1 });
  expect(r.follows[0]!.source.online()).toBe(true);
  expect(r.log.lines.find((l) => l.msg === 'outbox replayed')).toMatchObject({ replayed: 1, dropped: 0, done: true });
});

test('once per return of the link: more upstreams turning healthy schedule nothing; offline and back schedules it again, and the previous NodePool follow stops', async () => {
  const r = rig();
  r.link.set(true, 'https://10.0.0.1:6443');
  r.link.set(true, 'https://10.0.0.2:6443');
  expect(r.clock.delays()).toEqual([500]);
  r.clock.advance(500);
  await r.reconnect.settled();
  expect(r.follows).toHaveLength(1);
  r.link.set(false);
  expect(r.log.lines.some((l) => l.msg === 'offline: answering from the snapshot store')).toBe(true);
  expect(r.log.lines.filter((l) => l.msg === 'upstream unhealthy').map((l) => l.server)).toEqual(['10.0.0.1:6443']);
  expect(r.clock.delays()).toEqual([]);
  r.link.set(true);
  expect(r.clock.delays()).toEqual([500]);
  r.clock.advance(500);
  await r.reconnect.settled();
  expect(r.follows.map((f) => f.stopped)).toEqual([true, false]);
  expect(r.picks()).toBe(2);
  // The second refresh asks again; nothing was queued, so nothing was replayed.
  expect(r.seen.filter((s) => s.kind === 'replay')).toEqual([]);
});

test('a replay the apiserver refused for now is tried again 5–10 s later on the same upstream while online, until it is done', async () => {
  let refuse = true;
  const r = rig({ answer: (m) => (m === 'POST' && refuse ? 503 : 200) });
  r.queue('/api/v1/namespaces/default/events');
  r.link.set(true);
  r.clock.advance(500);
  await r.reconnect.settled();
  expect(r.seen.filter((s) => s.kind === 'replay')).toHaveLength(1);
  expect(r.store!.outbox.peek(10)).toHaveLength(1);
  // The watches end and the refresh runs whether or not the replay finished.
  expect(r.seen.some((s) => s.what === 'end offline watches')).toBe(true);
  const retry = REPLAY_RETRY_MS + Math.floor(0.5 * REPLAY_RETRY_MS);
  expect(r.clock.delays()).toEqual([retry]);
  r.clock.advance(retry - 1);
  await r.reconnect.settled();
  expect(r.seen.filter((s) => s.kind === 'replay')).toHaveLength(1);
  refuse = false;
  r.clock.advance(1);
  await r.reconnect.settled();
  expect(r.seen.filter((s) => s.kind === 'replay')).toEqual([
    { what: 'POST /api/v1/namespaces/default/events', kind: 'replay', upstream: 1 },
    { what: 'POST /api/v1/namespaces/default/events', kind: 'replay', upstream: 1 },
  ]);
  expect(r.store!.outbox.peek(10)).toEqual([]);
  expect(r.clock.delays()).toEqual([]);
});

test('the retry finds the link down: nothing is sent, and the next return replays', async () => {
  const r = rig({ answer: (m) => (m === 'POST' ? 503 : 200) });
  r.queue('/api/v1/namespaces/default/events');
  r.link.set(true);
  r.clock.advance(500);
  await r.reconnect.settled();
  r.link.set(false);
  r.clock.advance(REPLAY_RETRY_MS * 2);
  await r.reconnect.settled();
  expect(r.seen.filter((s) => s.kind === 'replay')).toHaveLength(1);
  r.link.set(true);
  r.clock.advance(500);
  await r.reconnect.settled();
  expect(r.seen.filter((s) => s.kind === 'replay').map((s) => s.upstream)).toEqual([1, 2]);
});

test('without a store, or with no healthy upstream when the delay ends, only the offline watches end', async () => {
  const r = rig({ store: false });
  r.link.set(true);
  r.clock.advance(500);
  await r.reconnect.settled();
  expect(r.seen).toEqual([{ what: 'end offline watches' }]);

  const gone = rig();
  gone.queue('/api/v1/namespaces/default/events');
  gone.link.set(true);
  gone.link.set(false);
  gone.clock.advance(500);
  await gone.reconnect.settled();
  expect(gone.seen).toEqual([{ what: 'end offline watches' }]);
  expect(gone.store!.outbox.peek(10)).toHaveLength(1);
});

test('stop cancels the pending work and the replay retry, and stops the NodePool follow', async () => {
  const r = rig({ answer: (m) => (m === 'POST' ? 503 : 200) });
  r.queue('/api/v1/namespaces/default/events');
  r.link.set(true);
  r.clock.advance(500);
  await r.reconnect.settled();
  expect(r.clock.delays()).toHaveLength(1); // the retry
  r.reconnect.stop();
  expect(r.clock.delays()).toEqual([]);
  expect(r.follows[0]!.stopped).toBe(true);
  const before = r.seen.length;
  r.link.set(false);
  r.link.set(true);
  expect(r.clock.delays()).toEqual([]);
  r.clock.advance(60_000);
  await r.reconnect.settled();
  expect(r.seen).toHaveLength(before);
});
