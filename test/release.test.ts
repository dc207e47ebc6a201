/**
 * The release build as a user receives it: the compiled x64 binary, the arm64 binary under
 * qemu-user (Debian's qemu-user-static with libc6-arm64-cross, installed by scripts/setup.sh),
 * and the Node bundle under Node; VERSION and the signature over SHA256SUMS as openssl checks
 * them; a build of one binary at another version (--only, --version); and signing keys refused.
 * The container images as a user handles them: skopeo reads both platforms and the digest that
 * SHA256SUMS states, a throwaway containerd (Debian's, as the real-node tests use it) imports the
 * archive and `ctr run` starts the amd64 binary as the non-root user, the arm64 rootfs runs under
 * qemu-user with its own loader, and a second build of the same sources gives the same digests.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
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
const v = pkg.version;

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
    for (const f of ['tether-edge-linux-x64', 'tether-edge-linux-arm64', 'tether-hub-linux-x64', 'tether-hub-linux-arm64', 'tether-edge.mjs', 'SHA256SUMS', 'SHA256SUMS.sig', 'VERSION', `tether-hub-${v}.oci.tar`, `tether-edge-${v}.oci.tar`]) {
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
      [
        'VERSION', 'install.sh', 'tether-edge-linux-arm64', 'tether-edge-linux-arm64.gz', 'tether-edge-linux-x64', 'tether-edge-linux-x64.gz', 'tether-edge.mjs', 'tether-hub-linux-arm64', 'tether-hub-linux-x64',
        `tether-edge-${v}.oci.tar`, `tether-edge-${v}.oci-index.json`, `tether-hub-${v}.oci.tar`, `tether-hub-${v}.oci-index.json`,
      ].sort(),
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
    expect(readdirSync(one).sort()).toEqual(
      ['SHA256SUMS', 'SHA256SUMS.sig', 'VERSION', 'install.sh', 'tether-edge-0.9.1-rc.1.oci-index.json', 'tether-edge-0.9.1-rc.1.oci.tar', 'tether-edge-linux-x64', 'tether-edge-linux-x64.gz'].sort(),
    );
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

/** The sha256 lines of a SHA256SUMS, by file name. */
function sumsOf(dir: string): Record<string, string> {
  const lines = readFileSync(join(dir, 'SHA256SUMS'), 'utf8').trimEnd().split('\n');
  return Object.fromEntries(lines.map((l) => l.split('  ')).map(([hash, name]) => [name!, hash!]));
}

describe('container images', () => {
  const archive = (name: string) => join(out, `${name}-${v}.oci.tar`);

  test('skopeo reads each archive as one index of linux/amd64 and linux/arm64 whose digest is the sha256 SHA256SUMS lists for <name>-<v>.oci-index.json', async () => {
    const sums = sumsOf(out);
    for (const name of ['tether-hub', 'tether-edge']) {
      const raw = await run(['skopeo', 'inspect', '--raw', `oci-archive:${archive(name)}`]);
      expect(raw.stderr).toBe('');
      expect(raw.code).toBe(0);
      const index = JSON.parse(raw.stdout);
      expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
      expect(index.manifests.map((m: { platform: { os: string; architecture: string } }) => `${m.platform.os}/${m.platform.architecture}`)).toEqual(['linux/amd64', 'linux/arm64']);
      // The index file in dist/ is that index, byte for byte: its SHA256SUMS line states the image digest.
      expect(readFileSync(join(out, `${name}-${v}.oci-index.json`), 'utf8')).toBe(raw.stdout);
      const inspect = JSON.parse((await run(['skopeo', 'inspect', `oci-archive:${archive(name)}`])).stdout);
      expect(inspect.Digest).toBe(`sha256:${sums[`${name}-${v}.oci-index.json`]}`);
      expect(inspect.Labels['org.opencontainers.image.version']).toBe(v);
      const config = JSON.parse((await run(['skopeo', 'inspect', '--config', '--override-arch', 'arm64', `oci-archive:${archive(name)}`])).stdout);
      expect(config.architecture).toBe('arm64');
      expect(config.config.User).toBe('65532:65532');
      expect(config.config.Entrypoint).toEqual([`/usr/local/bin/${name}`]);
    }
  });

  test('each arch’s rootfs holds every library the binary needs (ldd on amd64) and runs the arm64 binary under qemu with the image’s own loader', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-release-rootfs-'));
    try {
      for (const arch of ['amd64', 'arm64']) {
        // skopeo unpacks the platform's image as a user would pull it; system tar lays out the layers.
        const copied = join(dir, `${arch}-image`);
        const c = await run(['skopeo', 'copy', '--override-arch', arch, `oci-archive:${archive('tether-hub')}`, `dir:${copied}`]);
        expect(c.code).toBe(0);
        const manifest = JSON.parse(readFileSync(join(copied, 'manifest.json'), 'utf8'));
        const rootfs = join(dir, `${arch}-rootfs`);
        mkdirSync(rootfs);
        for (const l of manifest.layers) expect((await run(['tar', '-xzf', join(copied, l.digest.replace(/^sha256:/, '')), '-C', rootfs])).code).toBe(0);
        const bin = join(rootfs, 'usr/local/bin/tether-hub');
        expect(readFileSync(bin).equals(readFileSync(join(out, `tether-hub-linux-${arch === 'amd64' ? 'x64' : 'arm64'}`)))).toBe(true);
        expect(readFileSync(join(rootfs, 'etc/ssl/certs/ca-certificates.crt'), 'utf8')).toContain('-----BEGIN CERTIFICATE-----');
        if (arch === 'amd64') {
          const ldd = await run(['ldd', bin]);
          expect(ldd.code).toBe(0);
          const libs = [...ldd.stdout.matchAll(/^\s*(\S+\.so[.\d]*)\s+=>/gm)].map((m) => m[1]!);
          expect(libs).toContain('libc.so.6');
          for (const lib of libs) expect(existsSync(join(rootfs, 'lib/x86_64-linux-gnu', lib))).toBe(true);
          expect(existsSync(join(rootfs, 'lib64/ld-linux-x86-64.so.2'))).toBe(true);
        } else {
          // -L is the image's rootfs: the loader and libc come from the image, not from the build machine.
          const r = await run(['qemu-aarch64-static', '-L', rootfs, bin, '--version']);
          expect(r.stderr).toBe('');
          expect(r.code).toBe(0);
          expect(r.stdout).toMatch(new RegExp(`^${v.replace(/\./g, '\\.')} \\(commit \\S+, bun-linux-arm64\\)\\n$`));
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  test('a throwaway containerd imports both archives as tether.local/<name>:<v>, and ctr run starts each binary as 65532 with --version', async () => {
    expect(process.getuid?.()).toBe(0); // containerd and runc need root, as the real-node suites do
    const dir = mkdtempSync(join(tmpdir(), 'tether-release-containerd-'));
    const sock = join(dir, 'containerd.sock');
    writeFileSync(
      join(dir, 'config.toml'),
      ['version = 2', `root = "${dir}/root"`, `state = "${dir}/state"`, 'disabled_plugins = ["io.containerd.grpc.v1.cri"]', '[grpc]', `  address = "${sock}"`, ''].join('\n'),
    );
    const containerd = spawn('containerd', ['--config', join(dir, 'config.toml')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    containerd.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const ctr = (args: string[]) => run(['ctr', '--address', sock, '--namespace', 'k8s.io', ...args], { timeoutMs: 120_000 });
    try {
      for (let i = 0; (await ctr(['version'])).code !== 0; i++) {
        if (i > 100 || containerd.exitCode !== null) throw new Error(`containerd did not start:\n${log.slice(-2000)}`);
        await Bun.sleep(100);
      }
      for (const name of ['tether-hub', 'tether-edge']) {
        const imp = await ctr(['images', 'import', '--all-platforms', archive(name)]);
        expect(imp.code).toBe(0);
        const ls = await ctr(['images', 'ls']);
        const row = ls.stdout.split('\n').find((l) => l.startsWith(`tether.local/${name}:${v} `));
        expect(row).toContain(`sha256:${sumsOf(out)[`${name}-${v}.oci-index.json`]}`);
        expect(row).toContain('linux/amd64,linux/arm64');
        const target = process.arch === 'arm64' ? 'bun-linux-arm64' : 'bun-linux-x64';
        const r = await ctr(['run', '--rm', `tether.local/${name}:${v}`, `${name}-version`, `/usr/local/bin/${name}`, '--version']);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(new RegExp(`^${v.replace(/\./g, '\\.')} \\(commit \\S+, ${target}\\)\\n$`));
        // Who the process is, seen from inside: a static busybox bound in for the look (the image has no shell).
        const id = await ctr(['run', '--rm', '--mount', 'type=bind,src=/bin/busybox,dst=/bin/busybox,options=rbind:ro', `tether.local/${name}:${v}`, `${name}-id`, '/bin/busybox', 'id']);
        expect(id.stdout.trim()).toBe('uid=65532(nonroot) gid=65532(nonroot) groups=65532(nonroot)');
      }
    } finally {
      containerd.kill('SIGTERM');
      if (containerd.exitCode === null) await new Promise((r) => containerd.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});

describe('reproducible images', () => {
  test('two builds of the same sources give the same image digests and archives', async () => {
    // A copy of the tree as it is now: the repository may change while the two builds run.
    const src = mkdtempSync(join(tmpdir(), 'tether-release-src-'));
    try {
      const files = await run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root });
      expect(files.code).toBe(0);
      const present = files.stdout.split('\0').filter((f) => f && existsSync(join(root, f)));
      const copy = await run(['tar', '-C', root, '--null', '-T', '-', '-cf', join(src, 'tree.tar')], { input: `${present.join('\0')}\0` });
      expect(copy.code).toBe(0);
      const tree = join(src, 'tree');
      mkdirSync(tree);
      expect((await run(['tar', '-C', tree, '-xf', join(src, 'tree.tar')])).code).toBe(0);
      symlinkSync(join(root, 'node_modules'), join(tree, 'node_modules'));
      const sums: Record<string, string>[] = [];
      for (const n of [1, 2]) {
        const dist = join(src, `dist${n}`);
        const r = await run([bunBin, join(tree, 'scripts/build.ts'), '--out', dist, '--only', 'tether-hub', '--target', 'bun-linux-x64', '--target', 'bun-linux-arm64', '--no-xz'], { cwd: tree });
        expect(r.code).toBe(0);
        expect(r.stdout).toContain(`image: tether-hub-${v}.oci.tar sha256:`);
        sums.push(sumsOf(dist));
      }
      expect(Object.keys(sums[0]!)).toContain(`tether-hub-${v}.oci-index.json`);
      expect(sums[1]).toEqual(sums[0]!);
    } finally {
      rmSync(src, { recursive: true, force: true });
    }
  }, 300_000);
});
