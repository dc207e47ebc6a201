import { expect, test } from 'bun:test';
import { createLogStore } from './logs.ts';

function store() {
  let t = Date.parse('2025-01-01T00:00:00Z');
  const s = createLogStore({ now: () => new Date(t), maxLines: 5 });
  return { s, advance: (ms: number) => (t += ms) };
}

test('every running container gets one numbered line per tick; the newest maxLines are kept', () => {
  const { s, advance } = store();
  s.startPod('ns', 'web', ['app', 'side']);
  for (let i = 0; i < 7; i++) (s.tick(), advance(1000));
  const app = s.read('ns', 'web', 'app')!;
  expect(app.length).toBe(5);
  expect(app[0]).toBe('2025-01-01T00:00:02.000Z web/app line 3\n');
  expect(app[4]).toBe('2025-01-01T00:00:06.000Z web/app line 7\n');
  expect(s.read('ns', 'web', 'side')![4]).toContain('web/side line 7');
  expect(s.runningContainers()).toBe(2);
  expect(s.read('ns', 'web', 'nope')).toBeUndefined();
});

test('tailLines, sinceSeconds, timestamps and limitBytes shape what is read', () => {
  const { s, advance } = store();
  s.startPod('ns', 'p', ['c']);
  for (let i = 0; i < 4; i++) (s.tick(), advance(1000));
  expect(s.read('ns', 'p', 'c', { tailLines: 2 })!.map((l) => l.trim().split(' ').pop())).toEqual(['3', '4']);
  expect(s.read('ns', 'p', 'c', { tailLines: 0 })).toEqual([]);
  expect(s.read('ns', 'p', 'c', { sinceSeconds: 2 })!.length).toBe(2);
  expect(s.read('ns', 'p', 'c', { tailLines: 1, timestamps: true })![0]).toBe(
    '2025-01-01T00:00:03.000000000Z 2025-01-01T00:00:03.000Z p/c line 4\n');
  expect(s.read('ns', 'p', 'c', { limitBytes: 10 })!.join('')).toBe('2025-01-01');
});

test('followers get new lines and an end when the pod stops', () => {
  const { s } = store();
  s.startPod('ns', 'p', ['c']);
  const got: string[] = [];
  let ended = false;
  const off = s.follow('ns', 'p', 'c', { line: (l) => got.push(l), end: () => (ended = true) });
  s.tick();
  s.tick();
  expect(got.map((l) => l.trim().split(' ').pop())).toEqual(['1', '2']);
  s.stopPod('ns', 'p');
  expect(ended).toBe(true);
  expect(s.has('ns', 'p', 'c')).toBe(false);
  off();
});
