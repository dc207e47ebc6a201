import { expect, test } from 'bun:test';
import { MAX_PROBE_TIMEOUT_MS, MAX_STALL_MS, createRttEstimate } from './rtt.ts';

const floors = { stallMs: 250, probeTimeoutMs: 600 };

test('before any sample the floors apply and one failed probe is enough', () => {
  const r = createRttEstimate(floors);
  expect(r.srttMs).toBeUndefined();
  expect(r.stallMs()).toBe(250);
  expect(r.probeTimeoutMs()).toBe(600);
  expect(r.strikes()).toBe(1);
});

test('on a LAN (sub-millisecond samples) the floors still apply', () => {
  const r = createRttEstimate(floors);
  for (let i = 0; i < 20; i++) r.sample(0.5 + (i % 3) * 0.2);
  expect(r.stallMs()).toBe(250);
  expect(r.probeTimeoutMs()).toBe(600);
  expect(r.strikes()).toBe(1);
});

test('a 600 ms link widens both timeouts beyond its round trip and asks for two strikes', () => {
  const r = createRttEstimate(floors);
  for (let i = 0; i < 50; i++) r.sample(600 + (i % 2 ? 40 : -40));
  expect(r.srttMs!).toBeGreaterThan(550);
  expect(r.srttMs!).toBeLessThan(650);
  expect(r.stallMs()).toBeGreaterThan(2 * 600);
  expect(r.probeTimeoutMs()).toBeGreaterThan(4 * 550);
  expect(r.strikes()).toBe(2);
});

test('jitter widens the margins: the same mean with more deviation gives a longer timeout', () => {
  const steady = createRttEstimate(floors);
  const jittery = createRttEstimate(floors);
  for (let i = 0; i < 50; i++) {
    steady.sample(300);
    jittery.sample(i % 2 ? 100 : 500);
  }
  expect(jittery.rttvarMs!).toBeGreaterThan(steady.rttvarMs!);
  expect(jittery.probeTimeoutMs()).toBeGreaterThan(steady.probeTimeoutMs());
});

test('samples that are not durations are ignored', () => {
  const r = createRttEstimate(floors);
  r.sample(Number.NaN);
  r.sample(-1);
  r.sample(Number.POSITIVE_INFINITY);
  expect(r.srttMs).toBeUndefined();
});

test('a link made to look extremely slow (delayed on purpose) cannot stretch the timeouts without bound', () => {
  const r = createRttEstimate(floors);
  for (let i = 0; i < 20; i++) r.sample(60_000);
  expect(r.stallMs()).toBe(MAX_STALL_MS);
  expect(r.probeTimeoutMs()).toBe(MAX_PROBE_TIMEOUT_MS);
  expect(r.strikes()).toBe(2);
});
