import { expect, test } from 'bun:test';
import { httpHeadBytes } from '../../shared/metrics.ts';
import { createTrafficMeter } from './traffic.ts';

test('totals add up by direction and kind', () => {
  const m = createTrafficMeter({ now: () => 0 });
  m.add('sent', 'probe', 100);
  m.add('sent', 'probe', 50);
  m.add('received', 'watch', 7);
  m.add('received', 'watch', 0);
  m.add('received', 'watch', -3);
  const t = m.total();
  expect(t.sent.probe).toBe(150);
  expect(t.received.watch).toBe(7);
  expect(t.sent.request).toBe(0);
});

test('the hour and day windows forget what is older, and the total does not', () => {
  let clock = Date.UTC(2026, 0, 1);
  const m = createTrafficMeter({ now: () => clock });
  m.add('received', 'request', 1000);
  clock += 30 * 60_000;
  m.add('received', 'request', 10);
  expect(m.last(3600_000).received.request).toBe(1010);
  clock += 45 * 60_000; // the first is 75 minutes old now
  expect(m.last(3600_000).received.request).toBe(10);
  expect(m.last(86_400_000).received.request).toBe(1010);
  clock += 24 * 3600_000; // both older than a day
  m.add('received', 'request', 1);
  expect(m.last(86_400_000).received.request).toBe(1);
  expect(m.total().received.request).toBe(1011);
});

test('a minute bucket reused a day later starts from zero', () => {
  let clock = 0;
  const m = createTrafficMeter({ now: () => clock });
  m.add('sent', 'replay', 5);
  clock += 24 * 3600_000;
  m.add('sent', 'replay', 2);
  expect(m.last(60_000).sent.replay).toBe(2);
});

test('httpHeadBytes counts the HTTP/1.1 head as written on the wire', () => {
  const text = 'GET /readyz HTTP/1.1\r\nhost: a\r\naccept: x, y\r\n\r\n';
  expect(httpHeadBytes('GET /readyz HTTP/1.1', { host: 'a', accept: 'x, y', skipped: undefined })).toBe(text.length);
  expect(httpHeadBytes('HTTP/1.1 200 OK', { 'set-cookie': ['a', 'bb'] })).toBe('HTTP/1.1 200 OK\r\nset-cookie: a\r\nset-cookie: bb\r\n\r\n'.length);
});
