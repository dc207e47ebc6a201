import { afterEach, expect, test } from 'bun:test';
import { createMemoryLogger } from '../../shared/log.ts';
import { createMemoryLeases } from '../../test/support/memory-leases.ts';
import { createLeaseKeeper, createLeaseView, leaseName, type LeaseKeeper } from './leases.ts';

const keepers: LeaseKeeper[] = [];
afterEach(async () => {
  for (const k of keepers.splice(0)) await k.close();
});

function keeper(mem: ReturnType<typeof createMemoryLeases>, replica: string, now: () => number, lost: string[] = []) {
  const k = createLeaseKeeper({ api: mem.api, replica, address: `${replica}.hub:8132`, durationSeconds: 15, renewEveryMs: 60_000, log: createMemoryLogger(), now, onLost: (n, h) => lost.push(`${n}@${h}`) });
  keepers.push(k);
  return k;
}

test('hold creates the Lease: holder, address, times; release hands it back and keeps it', async () => {
  const mem = createMemoryLeases();
  let t = 1_000_000;
  const k = keeper(mem, 'hub-a', () => t);
  await k.hold('n1');
  expect(mem.get('tunnel-n1')).toMatchObject({ node: 'n1', holder: 'hub-a', address: 'hub-a.hub:8132', renewMs: t, acquireMs: t, durationSeconds: 15, transitions: 0 });
  expect(k.held()).toEqual(['n1']);
  t += 5000;
  await k.release('n1');
  expect(mem.get('tunnel-n1')).toMatchObject({ holder: '', renewMs: t });
  expect(k.held()).toEqual([]);
});

test('a replica takes over a Lease another holds (the agent moved); the old one learns it at its next renewal', async () => {
  const mem = createMemoryLeases();
  let t = 1_000_000;
  const lostA: string[] = [];
  const a = createLeaseKeeper({ api: mem.api, replica: 'hub-a', address: 'a:1', durationSeconds: 15, renewEveryMs: 20, log: createMemoryLogger(), now: () => t, onLost: (n, h) => lostA.push(`${n}@${h}`) });
  keepers.push(a);
  const b = keeper(mem, 'hub-b', () => t);
  await a.hold('n1');
  t += 1000;
  await b.hold('n1');
  expect(mem.get('tunnel-n1')).toMatchObject({ holder: 'hub-b', transitions: 1, acquireMs: t });
  // hub-a's next renewal conflicts; it reads the Lease, sees hub-b and gives the node up.
  const deadline = Date.now() + 5000;
  while (lostA.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  expect(lostA).toEqual(['n1@hub-b']);
  expect(a.held()).toEqual([]);
  // A release afterwards does not touch hub-b's Lease.
  await a.release('n1');
  expect(mem.get('tunnel-n1')?.holder).toBe('hub-b');
});

test('renewals move renewTime forward', async () => {
  const mem = createMemoryLeases();
  let t = 1_000_000;
  const k = createLeaseKeeper({ api: mem.api, replica: 'hub-a', address: 'a:1', durationSeconds: 3, renewEveryMs: 20, log: createMemoryLogger(), now: () => t, onLost: () => {} });
  keepers.push(k);
  await k.hold('n1');
  t += 2000;
  const deadline = Date.now() + 5000;
  while (mem.get('tunnel-n1')!.renewMs !== t && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  expect(mem.get('tunnel-n1')!.renewMs).toBe(t);
});

test('the view names a live holder only: released or expired Leases have none but still mark an edge node', () => {
  let t = 1_000_000;
  const v = createLeaseView(() => t);
  const base = { name: 'tunnel-n1', node: 'n1', address: 'a:1', renewMs: t, acquireMs: t, durationSeconds: 15, transitions: 0 };
  v.apply({ ...base, holder: 'hub-a' });
  expect(v.owner('n1')).toEqual({ replica: 'hub-a', address: 'a:1' });
  t += 16_000;
  expect(v.owner('n1')).toBeUndefined();
  expect(v.known('n1')).toBe(true);
  v.apply({ ...base, holder: '', renewMs: t });
  expect(v.owner('n1')).toBeUndefined();
  v.remove('tunnel-n1');
  expect(v.known('n1')).toBe(false);
});

test('lease names stay within 253 characters and distinct for long node names', () => {
  expect(leaseName('n1')).toBe('tunnel-n1');
  const long = 'a'.repeat(250);
  expect(leaseName(long).length).toBeLessThanOrEqual(253);
  expect(leaseName(long)).not.toBe(leaseName(long.slice(0, 249) + 'b'));
});
