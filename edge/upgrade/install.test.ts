import { afterEach, beforeEach, describe, expect, test } from 'bun:test';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryLogger } from '../../shared/log.ts';
import { MAX_ATTEMPTS, guard, installLayout, knownGoodPath, markReported, readState, releasePath, settleTrial, swapIn } from './install.ts';
import type { InstallLayout } from './state.ts';

const script = (version: string) => `#!/bin/sh\necho "tether-edge ${version}"\n`;
let root: string;
let layout: InstallLayout;

function newVerified(version: string): string {
  const f = join(layout.dir, `download-${version.replace(/[^A-Za-z0-9.]/g, "_")}.tmp`);
  writeFileSync(f, script(version), { mode: 0o600 });
  return f;
}
const runs = (path: string) => execFileSync(path, { encoding: 'utf8' }).trim();
const swap = (version: string, extra: Partial<Parameters<typeof swapIn>[1]> = {}) =>
  swapIn(layout, { verified: newVerified(version), version, from: '1.0.0', upgrade: 'up', uid: 'u1', deadlineSeconds: 60, ...extra });

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'tether-install-'));
  layout = { ...installLayout({ dataDir: join(root, 'data'), upgrade: { binary: join(root, 'bin', 'tether-edge') } }), log: createMemoryLogger() };
  execFileSync('mkdir', ['-p', join(root, 'bin'), layout.dir]);
  writeFileSync(layout.binary, script('1.0.0'), { mode: 0o755 });
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('installLayout', () => {
  test('defaults: /usr/local/bin/tether-edge and <dataDir>/upgrade', () => {
    expect(installLayout({ dataDir: '/var/lib/tether' })).toEqual({ binary: '/usr/local/bin/tether-edge', dir: '/var/lib/tether/upgrade' });
  });
  test('the upgrade section overrides both', () => {
    expect(installLayout({ dataDir: '/d', upgrade: { binary: '/opt/te', dir: '/u' } })).toEqual({ binary: '/opt/te', dir: '/u' });
  });
});

describe('readState', () => {
  test('a missing file is {}', () => expect(readState(layout)).toEqual({}));
  test('a corrupt file is {} and logged', () => {
    writeFileSync(join(layout.dir, 'state.json'), '{"trial": {"version": 3');
    expect(readState(layout)).toEqual({});
    expect((layout.log as ReturnType<typeof createMemoryLogger>).lines.some((l) => String(l.msg).includes('not JSON'))).toBe(true);
  });
  test('a well-formed file of the wrong shape is {} and logged', () => {
    writeFileSync(join(layout.dir, 'state.json'), '{"trial": {"version": 3}}');
    expect(readState(layout)).toEqual({});
    expect((layout.log as ReturnType<typeof createMemoryLogger>).lines.some((l) => String(l.msg).includes('malformed'))).toBe(true);
  });
});

describe('swapIn', () => {
  test('puts the new binary at the install path, keeps the old one as previous and known-good, opens a trial', async () => {
    await swap('2.0.0', { now: () => Date.parse('2026-01-01T00:00:00Z') });
    expect(runs(layout.binary)).toBe('tether-edge 2.0.0');
    expect(runs(releasePath(layout, '1.0.0'))).toBe('tether-edge 1.0.0');
    expect(runs(knownGoodPath(layout))).toBe('tether-edge 1.0.0');
    expect(statSync(layout.binary).mode & 0o777).toBe(0o755);
    const st = readState(layout);
    expect(st.running).toBe('1.0.0');
    expect(st.trial).toEqual({ upgrade: 'up', uid: 'u1', version: '2.0.0', from: '1.0.0', startedAt: '2026-01-01T00:00:00.000Z', deadlineSeconds: 60, attempts: 0 });
    expect(existsSync(join(layout.dir, 'download-2.0.0.tmp'))).toBe(false);
  });
  test('refuses a second swap while a trial is open, leaving the binary alone', async () => {
    await swap('2.0.0');
    await expect(swap('3.0.0', { from: '2.0.0' })).rejects.toThrow(/trial of 2.0.0 is still open/);
    expect(runs(layout.binary)).toBe('tether-edge 2.0.0');
  });
  test('refuses the running version, a bad version name and a missing file', async () => {
    await expect(swap('1.0.0')).rejects.toThrow(/already running/);
    await expect(swap('../x')).rejects.toThrow(/is not a version/);
    await expect(swapIn(layout, { verified: join(layout.dir, 'nope'), version: '2.0.0', from: '1.0.0', upgrade: 'up', uid: 'u1', deadlineSeconds: 60 })).rejects.toThrow(/does not exist/);
    expect(runs(layout.binary)).toBe('tether-edge 1.0.0');
    expect(readState(layout).trial).toBeUndefined();
  });
});

describe('settleTrial', () => {
  test('no trial: none', async () => {
    expect(await settleTrial(layout, '1.0.0', async () => true)).toBe('none');
  });
  test('healthy: committed; known-good is the new binary; Healthy waits to be reported; old releases pruned', async () => {
    await swap('2.0.0');
    expect(await settleTrial(layout, '2.0.0', async () => true)).toBe('committed');
    const st = readState(layout);
    expect(st.trial).toBeUndefined();
    expect({ running: st.running, previous: st.previous }).toEqual({ running: '2.0.0', previous: '1.0.0' });
    expect(st.pendingReport).toMatchObject({ upgrade: 'up', uid: 'u1', version: '2.0.0', phase: 'Healthy', previous: '1.0.0' });
    expect(runs(knownGoodPath(layout))).toBe('tether-edge 2.0.0');
    expect(runs(layout.binary)).toBe('tether-edge 2.0.0');
    await markReported(layout);
    expect(readState(layout).pendingReport).toBeUndefined();
    // Delivered, and still known to a later start (tether-edge status shows it).
    expect(readState(layout).lastReport).toMatchObject({ uid: 'u1', version: '2.0.0', phase: 'Healthy' });
    // A third release: the first one is no longer kept.
    await swap('3.0.0', { from: '2.0.0' });
    expect(await settleTrial(layout, '3.0.0', async () => true)).toBe('committed');
    expect(existsSync(releasePath(layout, '1.0.0'))).toBe(false);
    expect(runs(releasePath(layout, '2.0.0'))).toBe('tether-edge 2.0.0');
  });
  test('healthy only after a few polls: committed', async () => {
    await swap('2.0.0');
    let calls = 0;
    expect(await settleTrial(layout, '2.0.0', async () => ++calls >= 3, { pollMs: 5 })).toBe('committed');
    expect(calls).toBe(3);
  });
  test('never healthy before the deadline: rolledBack, the old binary back, the reason kept for the Node', async () => {
    let t = Date.parse('2026-01-01T00:00:00Z');
    await swap('2.0.0', { now: () => t, deadlineSeconds: 10 });
    const r = await settleTrial(layout, '2.0.0', async () => ((t += 4000), false), { now: () => t, pollMs: 1 });
    expect(r).toBe('rolledBack');
    expect(runs(layout.binary)).toBe('tether-edge 1.0.0');
    expect(runs(knownGoodPath(layout))).toBe('tether-edge 1.0.0');
    const st = readState(layout);
    expect(st.trial).toBeUndefined();
    expect(st.running).toBe('1.0.0');
    expect(st.pendingReport).toMatchObject({ phase: 'RolledBack', version: '2.0.0', previous: '1.0.0', reason: 'tether-edge 2.0.0 did not become healthy within 10s of the swap' });
    expect(existsSync(releasePath(layout, '2.0.0'))).toBe(false);
  });
  test('a health check that throws counts as not healthy', async () => {
    let t = 0;
    await swap('2.0.0', { now: () => t, deadlineSeconds: 1 });
    const r = await settleTrial(layout, '2.0.0', async () => { t += 600; throw new Error('store closed'); }, { now: () => t, pollMs: 1 });
    expect(r).toBe('rolledBack');
  });
  test('the old version runs with a trial open (swap interrupted, no guard): the trial is closed, the old binary stays', async () => {
    await swap('2.0.0');
    expect(await settleTrial(layout, '1.0.0', async () => true)).toBe('none');
    expect(runs(layout.binary)).toBe('tether-edge 1.0.0');
    expect(readState(layout).pendingReport).toMatchObject({ phase: 'RolledBack', reason: 'the swap to 2.0.0 did not complete: 1.0.0 started again' });
  });
});

describe('guard', () => {
  test('no trial: none, nothing written', async () => {
    expect(await guard(layout)).toBe('none');
    expect(existsSync(join(layout.dir, 'state.json'))).toBe(false);
  });
  test(`counts starts; the start after ${MAX_ATTEMPTS} is rolled back`, async () => {
    await swap('2.0.0');
    for (let i = 1; i <= MAX_ATTEMPTS; i++) {
      expect(await guard(layout)).toBe('counted');
      expect(readState(layout).trial?.attempts).toBe(i);
      expect(runs(layout.binary)).toBe('tether-edge 2.0.0');
    }
    expect(await guard(layout)).toBe('rolledBack');
    expect(runs(layout.binary)).toBe('tether-edge 1.0.0');
    expect(readState(layout).pendingReport).toMatchObject({ phase: 'RolledBack', reason: `tether-edge 2.0.0 did not become healthy in ${MAX_ATTEMPTS} starts` });
    expect(await guard(layout)).toBe('none');
  });
  test('past the deadline: rolledBack', async () => {
    let t = 1_000_000;
    await swap('2.0.0', { now: () => t, deadlineSeconds: 30 });
    t += 30_000;
    expect(await guard(layout, { now: () => t })).toBe('rolledBack');
    expect(runs(layout.binary)).toBe('tether-edge 1.0.0');
  });
  test('finishes a swap whose rename did not happen: the trial binary is what starts', async () => {
    await swap('2.0.0');
    writeFileSync(layout.binary, script('1.0.0'), { mode: 0o755 }); // as before step 5
    expect(await guard(layout)).toBe('counted');
    expect(runs(layout.binary)).toBe('tether-edge 2.0.0');
  });
  test('the trial release gone missing: rolledBack, naming it', async () => {
    await swap('2.0.0');
    rmSync(join(layout.dir, 'releases', '2.0.0'), { recursive: true });
    expect(await guard(layout)).toBe('rolledBack');
    expect(readState(layout).pendingReport?.reason).toContain('release 2.0.0 is missing');
    expect(readFileSync(layout.binary, 'utf8')).toBe(script('1.0.0'));
  });
});

describe('upgrade guard --config (edge/commands/upgrade-guard.ts)', () => {
  test('reads dataDir and upgrade.binary, tolerating keys it does not know (an older known-good binary)', async () => {
    const { layoutFromFile } = await import('../commands/upgrade-guard.ts');
    const f = join(root, 'edge.yaml');
    writeFileSync(f, `dataDir: ${root}/d\nupgrade:\n  binary: /opt/te\nsomeFutureKey: 1\n`);
    expect(layoutFromFile(f)).toEqual({ binary: '/opt/te', dir: `${root}/d/upgrade` });
  });
  test('a missing file means the defaults; a wrong type is a clear error', async () => {
    const { layoutFromFile } = await import('../commands/upgrade-guard.ts');
    expect(layoutFromFile(join(root, 'none.yaml'))).toEqual({ binary: '/usr/local/bin/tether-edge', dir: '/var/lib/tether/upgrade' });
    const f = join(root, 'edge.yaml');
    writeFileSync(f, 'dataDir: 3\n');
    expect(() => layoutFromFile(f)).toThrow(/dataDir must be a non-empty string/);
  });
});
