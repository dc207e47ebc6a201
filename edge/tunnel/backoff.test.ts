import { expect, test } from 'bun:test';
import { createBackoff } from './backoff.ts';

test('delays double up to the maximum, each drawn from [base/2, base)', () => {
  const low = createBackoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
  expect([1, 2, 3, 4, 5, 6].map(() => low.next())).toEqual([50, 100, 200, 400, 500, 500]);
  const high = createBackoff({ initialMs: 100, maxMs: 1000, random: () => 0.999 });
  expect(high.next()).toBe(100);
  expect(high.next()).toBe(200);
});

test('reset starts over after a connection that worked', () => {
  const b = createBackoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
  b.next();
  b.next();
  expect(b.attempts).toBe(2);
  b.reset();
  expect(b.next()).toBe(50);
});

test('jitter spreads a fleet: different random draws give different delays', () => {
  const draws = [0.1, 0.5, 0.9].map((r) => createBackoff({ initialMs: 1000, random: () => r }).next());
  expect(new Set(draws).size).toBe(3);
});
