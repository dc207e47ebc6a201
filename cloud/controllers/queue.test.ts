import { describe, expect, test } from 'bun:test';
import { createWorkQueue, type Timers } from './queue.ts';

/** Timers driven by the test: advance(ms) fires what is due, in order. */
function fakeTimers() {
  let now = 0;
  let seq = 0;
  const pending = new Map<number, { at: number; fn: () => void }>();
  const timers: Timers = {
    now: () => now,
    setTimeout: (fn, ms) => (pending.set(++seq, { at: now + ms, fn }), seq),
    clearTimeout: (h) => void pending.delete(h as number),
  };
  const advance = (ms: number) => {
    const until = now + ms;
    for (;;) {
      const next = [...pending].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!next) break;
      pending.delete(next[0]);
      now = next[1].at;
      next[1].fn();
    }
    now = until;
  };
  return { timers, advance, delays: () => [...pending.values()].map((t) => t.at - now) };
}

describe('work queue', () => {
  test('a key is queued once however often it is added', async () => {
    const q = createWorkQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.length()).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
  });

  test('a key added while being processed is handed out again only after done', async () => {
    const q = createWorkQueue();
    q.add('a');
    const k = await q.get();
    q.add('a');
    expect(q.length()).toBe(0);
    q.done(k!);
    expect(q.length()).toBe(1);
    expect(await q.get()).toBe('a');
  });

  test('a waiting worker gets a key as soon as it is added', async () => {
    const q = createWorkQueue();
    const got = q.get();
    q.add('x');
    expect(await got).toBe('x');
  });

  test('retries back off exponentially per key, capped, and forget resets the count', async () => {
    const t = fakeTimers();
    const q = createWorkQueue({ baseDelayMs: 10, maxDelayMs: 50, timers: t.timers });
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      q.addRateLimited('k');
      delays.push(t.delays()[0]!);
      t.advance(1000);
      expect(q.length()).toBe(1);
      q.done((await q.get())!);
    }
    expect(delays).toEqual([10, 20, 40, 50, 50]);
    expect(q.failures('k')).toBe(5);
    q.forget('k');
    q.addRateLimited('k');
    expect(t.delays()).toEqual([10]);
    expect(q.failures('other')).toBe(0);
  });

  test('addAfter keeps the earliest of several delays for one key', () => {
    const t = fakeTimers();
    const q = createWorkQueue({ timers: t.timers });
    q.addAfter('k', 100);
    q.addAfter('k', 30);
    q.addAfter('k', 60);
    expect(t.delays()).toEqual([30]);
    t.advance(30);
    expect(q.length()).toBe(1);
  });

  test('shutting down releases waiting workers and drops delayed keys', async () => {
    const t = fakeTimers();
    const q = createWorkQueue({ timers: t.timers });
    const waiting = q.get();
    q.addAfter('k', 10);
    q.shutDown();
    expect(await waiting).toBeUndefined();
    expect(t.delays()).toEqual([]);
    q.add('x');
    expect(q.length()).toBe(0);
  });
});
