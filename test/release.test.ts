/**
 * The release build as a user receives it: the compiled x64 binary, the arm64 binary under
 * qemu-user (Debian's qemu-user-static with libc6-arm64-cross, installed by scripts/setup.sh),
 * and the Node bundle under Node; VERSION and the signature over SHA256SUMS as openssl checks
 * them; a build of one binary at another version (--only, --version); and signing keys refused.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import pkg from '../package.json' with { type: 'json' };
import { bunBin, run } from './support/run.ts';

const root = join(import.meta.dir, '..');
const out = mkdtempSync(join(tmpdir(), 'tether-release-'));
const qemu = ['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu'];
const keys = mkdtempSync(join(tmpdir(), 'tether-release-keys-'));
const releaseKey = join(keys, 'release.key');
const releasePub = join(keys, 'release.pub');
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** `openssl pkeyutl -verify -rawin` of a SHA256SUMS against a signature, as docs/install.md shows it. */
function opensslVerify(sums: string, sig: string, pub = releasePub) {
  return run(['openssl', 'pkeyutl', '-verify', '-pubin', '-inkey', pub, '-rawin', '-in', sums, '-sigfile', sig]);
}

beforeAll(async () => {
  for (const cmd of [
    ['openssl', 'genpkey', '-algorithm', 'ed25519', '-out', releaseKey],
    ['openssl', 'pkey', '-in', releaseKey, '-pubout', '-out', releasePub],
  ]) {
    const k = await run(cmd);
    if (k.code !== 0) throw new Error(`${cmd.join(' ')}: ${k.stderr}`);
  }
  const r = await run(
    [bunBin, join(root, 'scripts/build.ts'), '--out', out, '--target', 'bun-linux-x64', '--target', 'bun-linux-arm64', '--no-xz', '--sign-key', releaseKey],
    { cwd: root },
  );
  if (r.code !== 0) throw new Error(`build failed:\n${r.stdout}\n${r.stderr}`);
}, 300_000);
afterAll(() => {
  rmSync(out, { recursive: true, force: true });
  rmSync(keys, { recursive: true, force: true });
});

describe('release artifacts', () => {
  test('the build writes binaries, the Node bundle and SHA256SUMS', () => {
    for (const f of ['tether-edge-linux-x64', 'tether-edge-linux-arm64', 'tether-hub-linux-x64', 'tether-hub-linux-arm64', 'tether-edge.mjs', 'SHA256SUMS', 'SHA256SUMS.sig', 'VERSION']) {
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

describe('signed releases', () => {
  test('VERSION names the version built and is listed in SHA256SUMS with its hash, like every artifact', () => {
    expect(readFileSync(join(out, 'VERSION'), 'utf8')).toBe(`${pkg.version}\n`);
    const sums = readFileSync(join(out, 'SHA256SUMS'), 'utf8').trimEnd().split('\n').map((l) => l.split('  '));
    const listed: Record<string, string> = Object.fromEntries(sums.map(([hash, name]) => [name!, hash!]));
    expect(listed.VERSION).toBe(sha256(join(out, 'VERSION')));
    expect(Object.keys(listed).sort()).toEqual(
      ['VERSION', 'install.sh', 'tether-edge-linux-arm64', 'tether-edge-linux-arm64.gz', 'tether-edge-linux-x64', 'tether-edge-linux-x64.gz', 'tether-edge.mjs', 'tether-hub-linux-arm64', 'tether-hub-linux-x64'].sort(),
    );
    for (const [name, hash] of Object.entries(listed)) expect(sha256(join(out, name))).toBe(hash);
  });

  test('each tether-edge binary has a .gz copy (what an over-the-air upgrade fetches) that inflates to exactly that binary, at about half its size', () => {
    for (const t of ['linux-x64', 'linux-arm64']) {
      const raw = readFileSync(join(out, `tether-edge-${t}`));
      const gz = readFileSync(join(out, `tether-edge-${t}.gz`));
      expect(gunzipSync(gz).equals(raw)).toBe(true);
      expect(gz.length).toBeLessThan(raw.length * 0.6);
    }
  });

  test('SHA256SUMS.sig is a raw Ed25519 signature that openssl verifies with the public key, and only over those bytes', async () => {
    expect(statSync(join(out, 'SHA256SUMS.sig')).size).toBe(64);
    const ok = await opensslVerify(join(out, 'SHA256SUMS'), join(out, 'SHA256SUMS.sig'));
    expect(ok.stdout).toContain('Signature Verified Successfully');
    expect(ok.code).toBe(0);
    // SHA256SUMS with one line for another binary: the signature no longer holds.
    const forged = join(keys, 'SHA256SUMS.forged');
    writeFileSync(forged, readFileSync(join(out, 'SHA256SUMS'), 'utf8').replace(/^[0-9a-f]/m, (c) => (c === '0' ? '1' : '0')));
    const bad = await opensslVerify(forged, join(out, 'SHA256SUMS.sig'));
    expect(bad.stdout).toContain('Signature Verification Failure');
    expect(bad.code).not.toBe(0);
  });

  test('--only tether-edge --version V builds that binary alone, says V, and signs a VERSION of V', async () => {
    const one = join(keys, 'one');
    const r = await run(
      [bunBin, join(root, 'scripts/build.ts'), '--out', one, '--only', 'tether-edge', '--target', 'bun-linux-x64', '--no-xz', '--no-node', '--version', '0.9.1-rc.1', '--sign-key', releaseKey],
      { cwd: root },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(readdirSync(one).sort()).toEqual(['SHA256SUMS', 'SHA256SUMS.sig', 'VERSION', 'install.sh', 'tether-edge-linux-x64', 'tether-edge-linux-x64.gz']);
    expect(readFileSync(join(one, 'VERSION'), 'utf8')).toBe('0.9.1-rc.1\n');
    const v = await run([join(one, 'tether-edge-linux-x64'), '--version']);
    expect(v.stdout).toMatch(/^0\.9\.1-rc\.1 \(commit \S+, bun-linux-x64\)\n$/);
    expect((await opensslVerify(join(one, 'SHA256SUMS'), join(one, 'SHA256SUMS.sig'))).stdout).toContain('Signature Verified Successfully');
    // The old release's signature does not cover the new SHA256SUMS: a VERSION of its own is in each.
    expect((await opensslVerify(join(one, 'SHA256SUMS'), join(out, 'SHA256SUMS.sig'))).code).not.toBe(0);
  }, 120_000);

  test('a signing key that is not Ed25519, a public key, a bad version or an unknown --only stops the build before it compiles anything', async () => {
    const ec = join(keys, 'ec.key');
    const k = await run(['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', ec]);
    expect(k.code).toBe(0);
    const cases: [string[], string][] = [
      [['--sign-key', ec], `build: ${ec} holds a key of type ec; release signing needs Ed25519`],
      [['--sign-key', releasePub], `build: ${releasePub} is a public key: --sign-key takes the private key`],
      [['--sign-key', join(keys, 'absent.key')], 'build: cannot read the signing key'],
      [['--version', 'v1.2'], 'build: --version must look like 1.2.3 or 1.2.3-rc.1, got "v1.2"'],
      [['--only', 'tether-cloud'], 'build: unknown --only tether-cloud; one of tether-edge, tether-hub'],
    ];
    for (const [args, message] of cases) {
      const dir = join(keys, 'refused');
      const r = await run([bunBin, join(root, 'scripts/build.ts'), '--out', dir, ...args], { cwd: root });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(message);
      expect(existsSync(dir)).toBe(false);
    }
  });
});
