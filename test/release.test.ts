/**
 * The release build as a user receives it: the compiled x64 binary, the arm64 binary under
 * qemu-user (Debian's qemu-user-static with libc6-arm64-cross, installed by scripts/setup.sh),
 * and the Node bundle under Node.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bunBin, run } from './support/run.ts';

const root = join(import.meta.dir, '..');
const out = mkdtempSync(join(tmpdir(), 'tether-release-'));
const qemu = ['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu'];

beforeAll(async () => {
  const r = await run(
    [bunBin, join(root, 'scripts/build.ts'), '--out', out, '--target', 'bun-linux-x64', '--target', 'bun-linux-arm64', '--no-xz'],
    { cwd: root },
  );
  if (r.code !== 0) throw new Error(`build failed:\n${r.stdout}\n${r.stderr}`);
}, 300_000);
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('release artifacts', () => {
  test('the build writes binaries, the Node bundle and SHA256SUMS', () => {
    for (const f of ['tether-edge-linux-x64', 'tether-edge-linux-arm64', 'tether-hub-linux-x64', 'tether-hub-linux-arm64', 'tether-edge.mjs', 'SHA256SUMS']) {
      expect(existsSync(join(out, f))).toBe(true);
    }
  });

  test('the x64 binary reports the target it was built for', async () => {
    const r = await run([join(out, 'tether-edge-linux-x64'), '--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+ \(commit \S+, bun-linux-x64\)\n$/);
  });

  test('the arm64 binary runs under qemu: --version', async () => {
    const r = await run([...qemu, join(out, 'tether-edge-linux-arm64'), '--version']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\(commit \S+, bun-linux-arm64\)/);
  });

  test('the arm64 binary under qemu opens a store, writes it and reads it back', async () => {
    const dir = join(out, 'arm64-store');
    const first = await run([...qemu, join(out, 'tether-edge-linux-arm64'), 'store', 'check', '--data-dir', dir, '--json']);
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toEqual({ ok: true, path: join(dir, 'tether.db'), counts: { 'tether/v1/probes': 1 } });
    expect(statSync(join(dir, 'tether.db')).mode & 0o777).toBe(0o600);
    // A second run reopens the same store (migrations already applied) and reads it back again.
    const second = await run([...qemu, join(out, 'tether-edge-linux-arm64'), 'store', 'check', '--data-dir', dir, '--json']);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout).counts).toEqual({ 'tether/v1/probes': 1 });
  });

  test('the Node bundle runs under Node >= 20 with better-sqlite3 and shares the store format', async () => {
    const node = await run(['node', '--version']);
    expect(Number(node.stdout.replace(/^v/, '').split('.')[0])).toBeGreaterThanOrEqual(20);
    const dir = join(out, 'arm64-store'); // written by the arm64 binary above: same on-disk format
    // Installed the way the installer lays it out: better-sqlite3 in node_modules beside the bundle.
    symlinkSync(join(root, 'node_modules'), join(out, 'node_modules'));
    const r = await run(['node', join(out, 'tether-edge.mjs'), 'store', 'check', '--data-dir', dir, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).counts).toEqual({ 'tether/v1/probes': 1 });
  });
});
