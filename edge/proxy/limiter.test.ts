import { expect, test } from 'bun:test';
import { createLimiter } from './limiter.ts';

test('grants at most max at once, in arrival order, and skips aborted waiters', async () => {
  const l = createLimiter(2);
  const order: string[] = [];
  const r1 = await l.acquire();
  const r2 = await l.acquire();
  const ac = new AbortController();
  const third = l.acquire().then((r) => (order.push('third'), r));
  const aborted = l.acquire(ac.signal).then(() => order.push('aborted'), () => order.push('abort-rejected'));
  const fourth = l.acquire().then((r) => (order.push('fourth'), r));
  expect([l.active, l.waiting]).toEqual([2, 3]);
  ac.abort(new Error('client gone'));
  await aborted;
  r1();
  r1(); // a second release of the same grant does nothing
  const r3 = await third;
  expect([l.active, l.waiting]).toEqual([2, 1]);
  r2();
  const r4 = await fourth;
  r3();
  r4();
  expect(order).toEqual(['abort-rejected', 'third', 'fourth']);
  expect([l.active, l.waiting]).toEqual([0, 0]);
});
