/**
 * The curl installer (scripts/install.sh) as a user runs it, `curl -fsSL <base>/install.sh | sh -s --`,
 * against a release directory served from 127.0.0.1, installing into temporary prefixes: the x64
 * binary, the arm64 binary (run under qemu), the Node bundle for armv7l, idempotence, --version,
 * the musl choice, the plain-file fallback without xz, the atomic replacement of an installed
 * binary, and refusals: a tampered download, an unsupported architecture, a Node.js too old, a
 * release over plain http without --insecure (and an https one redirecting to plain http).
 * With --release-key: a signed release installs; a changed SHA256SUMS, a changed signature, an
 * unsigned release, another key, an older signed release served as a newer version and a
 * signature fetched over a redirect to http are each refused, leaving the installed binary as it
 * was. The release is served over https with a test CA that curl is told to trust
 * (CURL_CA_BUNDLE), and over plain http for the refusals.
 *
 * The release is built and signed by scripts/build.ts (--sign-key, a key made with openssl) for
 * tether-edge only, x64 and arm64, with fast xz (--only, --xz-level 1): the hub binaries are not
 * installed by install.sh and compressing them takes minutes.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkg from '../package.json' with { type: 'json' };
import { createLocalCa, localCaFrom } from '../edge/certs/local-ca.ts';
import { bunBin, run } from './support/run.ts';

const root = join(import.meta.dir, '..');
const work = mkdtempSync(join(tmpdir(), 'tether-install-'));
const dist = join(work, 'dist');
const tampered = join(work, 'tampered');
const releaseKey = join(work, 'release.key');
const releasePub = join(work, 'release.pub');
const otherPub = join(work, 'other.pub');
const x64 = { TETHER_INSTALL_ARCH: 'x86_64', TETHER_INSTALL_LIBC: 'glibc' };
/** Release variants served under /<name>/ besides /release/ (dist) and /tampered/. */
const variants: Record<string, string> = {};
const qemu = ['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu'];
const requests: string[] = [];
let server: ReturnType<typeof Bun.serve>;
let plainServer: ReturnType<typeof Bun.serve>;
let base: string;
let plainBase: string;
const caFile = join(work, 'test-ca.crt');
let n = 0;

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** A copy of the release directory as `name`, changed by `change`. */
function variant(name: string, change: (dir: string) => void): void {
  const dir = join(work, name);
  mkdirSync(dir);
  for (const f of readdirSync(dist)) copyFileSync(join(dist, f), join(dir, f));
  change(dir);
  variants[name] = dir;
}
const flipByte = (file: string) => {
  const b = readFileSync(file);
  b[b.length >> 1]! ^= 0x01;
  writeFileSync(file, b);
};

beforeAll(async () => {
  for (const cmd of [
    ['openssl', 'genpkey', '-algorithm', 'ed25519', '-out', releaseKey],
    ['openssl', 'pkey', '-in', releaseKey, '-pubout', '-out', releasePub],
    ['openssl', 'genpkey', '-algorithm', 'ed25519', '-out', join(work, 'other.key')],
    ['openssl', 'pkey', '-in', join(work, 'other.key'), '-pubout', '-out', otherPub],
  ]) {
    const k = await run(cmd);
    if (k.code !== 0) throw new Error(`${cmd.join(' ')}: ${k.stderr}`);
  }
  const r = await run(
    [bunBin, join(root, 'scripts/build.ts'), '--out', dist, '--only', 'tether-edge', '--target', 'bun-linux-x64', '--target', 'bun-linux-arm64', '--xz-level', '1', '--no-gz', '--sign-key', releaseKey],
    { cwd: root },
  );
  if (r.code !== 0) throw new Error(`build failed:\n${r.stdout}\n${r.stderr}`);
  // The same release with one byte of the x64 download changed.
  mkdirSync(tampered);
  for (const f of readdirSync(dist)) copyFileSync(join(dist, f), join(tampered, f));
  flipByte(join(tampered, 'tether-edge-linux-x64.xz'));
  // A mirror that replaced the x64 download and wrote SHA256SUMS to match: only the signature can tell.
  variant('forged', (dir) => {
    flipByte(join(dir, 'tether-edge-linux-x64.xz'));
    const sums = readFileSync(join(dir, 'SHA256SUMS'), 'utf8').replace(/^[0-9a-f]{64}(?=  tether-edge-linux-x64\.xz$)/m, sha256(join(dir, 'tether-edge-linux-x64.xz')));
    writeFileSync(join(dir, 'SHA256SUMS'), sums);
  });
  variant('badsig', (dir) => flipByte(join(dir, 'SHA256SUMS.sig')));
  variant('unsigned', (dir) => rmSync(join(dir, 'SHA256SUMS.sig')));

  const ca = createLocalCa('install test CA');
  writeFileSync(caFile, ca.certPem);
  const serving = localCaFrom('mem', ca.certPem, ca.keyPem).issue('127.0.0.1', 'server', { hosts: ['127.0.0.1'] });
  const fetch = (req: Request) => {
      const path = new URL(req.url).pathname;
      requests.push(path);
      if (path === '/install.sh') return new Response(Bun.file(join(root, 'scripts/install.sh')));
      // An https release location that sends the downloads to plain http.
      const redirected = /^\/downgrade\/(.*)$/.exec(path);
      if (redirected) return Response.redirect(`${plainBase}/release/${redirected[1]}`, 302);
      // An https release location that serves SHA256SUMS itself but sends its signature to plain http.
      if (path === '/sig-downgrade/SHA256SUMS.sig') return Response.redirect(`${plainBase}/release/SHA256SUMS.sig`, 302);
      // Every version under a location is the same directory: that is how a replayed release looks.
      const m = /^\/(release|tampered|sig-downgrade|[a-z]+)(?:\/v[0-9.]+)?\/([A-Za-z0-9._-]+)$/.exec(path);
      const dirs: Record<string, string> = { release: dist, tampered, 'sig-downgrade': dist, ...variants };
      const dir = m ? dirs[m[1]!] : undefined;
      const file = dir ? join(dir, m![2]!) : undefined;
      return file && existsSync(file) ? new Response(Bun.file(file)) : new Response('not found', { status: 404 });
  };
  server = Bun.serve({ hostname: '127.0.0.1', port: 0, tls: { cert: serving.certPem, key: serving.keyPem }, fetch });
  plainServer = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch });
  base = `https://127.0.0.1:${server.port}`;
  plainBase = `http://127.0.0.1:${plainServer.port}`;
}, 600_000);

afterAll(() => {
  server?.stop(true);
  plainServer?.stop(true);
  rmSync(work, { recursive: true, force: true });
});

/** `curl -fsSL <base>/install.sh | sh -s -- ARGS` with extra environment; returns the prefix used. */
async function install(args: string[], env: Record<string, string> = {}, prefix = join(work, `prefix-${++n}`)) {
  requests.length = 0;
  const quoted = [...args, '--prefix', prefix].map((a) => `'${a}'`).join(' ');
  const r = await run(['sh', '-c', `curl -fsSL ${base}/install.sh | sh -s -- ${quoted}`], { env: { ...process.env, CURL_CA_BUNDLE: caFile, ...env }, timeoutMs: 300_000 });
  return { ...r, prefix, bin: join(prefix, 'bin', 'tether-edge'), requests: [...requests] };
}

describe('the curl installer with --release-key', () => {
  /**
   * A prefix with the good release installed once (refusals change nothing, so they share it), and
   * a check that a refusal left it exactly as it was.
   */
  let node: Promise<{ prefix: string; untouched: () => void }> | undefined;
  function installed() {
    node ??= (async () => {
      const first = await install(['--base-url', `${base}/release`, '--release-key', releasePub], x64);
      if (first.code !== 0) throw new Error(`the first install failed:\n${first.stderr}`);
      const before = statSync(first.bin);
      return {
        prefix: first.prefix,
        untouched: () => {
          const after = statSync(first.bin);
          expect([after.ino, after.mtimeMs, after.size]).toEqual([before.ino, before.mtimeMs, before.size]);
          expect(sha256(first.bin)).toBe(sha256(join(dist, 'tether-edge-linux-x64')));
          expect(readdirSync(join(first.prefix, 'bin'))).toEqual(['tether-edge']);
        },
      };
    })();
    return node;
  }

  test('a signed release: the signature is checked first, then VERSION, then the binary; it installs and runs', async () => {
    const r = await install(['--base-url', `${base}/release`, '--release-key', releasePub], x64);
    expect(r.stderr).not.toContain('error');
    expect(r.code).toBe(0);
    expect(r.requests).toEqual(['/install.sh', '/release/SHA256SUMS', '/release/SHA256SUMS.sig', '/release/VERSION', '/release/tether-edge-linux-x64.xz']);
    expect(r.stderr).toContain('SHA256SUMS is signed by the release key');
    expect(r.stderr).toContain(`release ${pkg.version}`);
    expect(r.stderr).not.toContain('not signature-checked');
    expect(sha256(r.bin)).toBe(sha256(join(dist, 'tether-edge-linux-x64')));
    const v = await run([r.bin, '--version']);
    expect(v.stdout).toStartWith(`${pkg.version} (commit `);

    const pinned = await install(['--base-url', `${base}/release`, '--release-key', releasePub, '--version', pkg.version], x64);
    expect(pinned.code).toBe(0);
    expect(pinned.requests).toContain(`/release/v${pkg.version}/VERSION`);
  });

  test('a SHA256SUMS rewritten to match a replaced binary is refused by the signature, and the installed binary stays', async () => {
    const node = await installed();
    const r = await install(['--base-url', `${base}/forged`, '--release-key', releasePub], x64, node.prefix);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`SHA256SUMS.sig at ${base}/forged does not verify with the release key ${releasePub}`);
    expect(r.stderr).toContain('nothing was installed');
    expect(r.requests).toEqual(['/install.sh', '/forged/SHA256SUMS', '/forged/SHA256SUMS.sig']); // the binary was never fetched
    node.untouched();
  });

  test('a changed signature is refused, and the installed binary stays', async () => {
    const node = await installed();
    const r = await install(['--base-url', `${base}/badsig`, '--release-key', releasePub], x64, node.prefix);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('SHA256SUMS.sig at');
    expect(r.stderr).toContain('does not verify with the release key');
    node.untouched();
  });

  test('a release signed by another key is refused, and the installed binary stays', async () => {
    const node = await installed();
    const r = await install(['--base-url', `${base}/release`, '--release-key', otherPub], x64, node.prefix);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`does not verify with the release key ${otherPub}`);
    node.untouched();
  });

  test('an unsigned release is refused, and the installed binary stays', async () => {
    const node = await installed();
    const r = await install(['--base-url', `${base}/unsigned`, '--release-key', releasePub], x64, node.prefix);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`cannot download ${base}/unsigned/SHA256SUMS.sig: this release is not signed`);
    node.untouched();
  });

  test('a signed release served as another version is refused: VERSION is covered by the signature', async () => {
    const node = await installed();
    const r = await install(['--base-url', `${base}/release`, '--release-key', releasePub, '--version', '9.9.9'], x64, node.prefix);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`is version ${pkg.version}, not 9.9.9 as asked; nothing was installed`);
    expect(r.requests).not.toContain('/release/v9.9.9/tether-edge-linux-x64.xz');
    node.untouched();
  });

  test('a signed release whose binary was changed still fails its checksum', async () => {
    const r = await install(['--base-url', `${base}/tampered`, '--release-key', releasePub], x64);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('SHA256SUMS is signed by the release key');
    expect(r.stderr).toContain('checksum mismatch for tether-edge-linux-x64.xz');
    expect(existsSync(r.prefix)).toBe(false);
  });

  test('the signature, like every download, is fetched over https only: a redirect to http is not followed', async () => {
    const r = await install(['--base-url', `${base}/sig-downgrade`, '--release-key', releasePub], x64);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`cannot download ${base}/sig-downgrade/SHA256SUMS.sig`);
    expect(r.requests).toEqual(['/install.sh', '/sig-downgrade/SHA256SUMS', '/sig-downgrade/SHA256SUMS.sig']);
    expect(existsSync(r.prefix)).toBe(false);
  });

  test('a key that is not an Ed25519 public key is refused before anything is downloaded', async () => {
    const ec = join(work, 'ec.pub');
    writeFileSync(ec, generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }));
    const wrongType = await install(['--base-url', `${base}/release`, '--release-key', ec], x64);
    expect(wrongType.code).not.toBe(0);
    expect(wrongType.stderr).toContain(`--release-key ${ec} is not an Ed25519 public key`);
    expect(wrongType.requests).toEqual(['/install.sh']);
    const priv = await install(['--base-url', `${base}/release`, '--release-key', releaseKey], x64);
    expect(priv.code).not.toBe(0);
    expect(priv.stderr).toContain(`--release-key ${releaseKey} is not a PEM public key`);
    const missing = await install(['--base-url', `${base}/release`, '--release-key', join(work, 'absent.pub')], x64);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('cannot read --release-key');
    expect(missing.requests).toEqual(['/install.sh']);
  });
});

describe('the curl installer', () => {
  test('installs the x64 binary, checked against SHA256SUMS, from the .xz download, and it runs', async () => {
    const r = await install(['--base-url', `${base}/release`], { TETHER_INSTALL_ARCH: 'x86_64', TETHER_INSTALL_LIBC: 'glibc' });
    expect(r.stderr).not.toContain('error');
    expect(r.code).toBe(0);
    expect(r.requests).toEqual(['/install.sh', '/release/SHA256SUMS', '/release/tether-edge-linux-x64.xz']);
    expect(sha256(r.bin)).toBe(sha256(join(dist, 'tether-edge-linux-x64')));
    expect(statSync(r.bin).mode & 0o777).toBe(0o755);
    const v = await run([r.bin, '--version']);
    expect(v.stdout).toMatch(/^\d+\.\d+\.\d+ \(commit \S+, bun-linux-x64\)\n$/);
    expect(r.stderr).toContain('bun-linux-x64'); // the installer printed what it installed
    expect(r.stderr).toContain('warning: no --release-key: the release is not signature-checked');

    // A second run changes nothing.
    const before = statSync(r.bin);
    const again = await install(['--base-url', `${base}/release`], { TETHER_INSTALL_ARCH: 'x86_64', TETHER_INSTALL_LIBC: 'glibc' }, r.prefix);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('is already this build; left as it is');
    const after = statSync(r.bin);
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
  });

  test('installs the arm64 binary on aarch64, and it runs under qemu', async () => {
    const r = await install(['--base-url', `${base}/release`], { TETHER_INSTALL_ARCH: 'aarch64', TETHER_INSTALL_LIBC: 'glibc' });
    expect(r.code).toBe(0);
    expect(r.requests).toContain('/release/tether-edge-linux-arm64.xz');
    expect(sha256(r.bin)).toBe(sha256(join(dist, 'tether-edge-linux-arm64')));
    const v = await run([...qemu, r.bin, '--version']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/\(commit \S+, bun-linux-arm64\)/);
  });

  test('--version picks that release from under --base-url', async () => {
    const r = await install(['--base-url', `${base}/release`, '--version', pkg.version], { TETHER_INSTALL_ARCH: 'x86_64', TETHER_INSTALL_LIBC: 'glibc' });
    expect(r.code).toBe(0);
    expect(r.requests).toContain(`/release/v${pkg.version}/tether-edge-linux-x64.xz`);
  });

  test('refuses a tampered download and installs nothing', async () => {
    const r = await install(['--base-url', `${base}/tampered`], { TETHER_INSTALL_ARCH: 'x86_64', TETHER_INSTALL_LIBC: 'glibc' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('checksum mismatch for tether-edge-linux-x64.xz');
    expect(r.stderr).toContain('nothing was installed');
    expect(existsSync(r.prefix)).toBe(false);
  });

  test('refuses a release over plain http, SHA256SUMS included, unless --insecure', async () => {
    const x64 = { TETHER_INSTALL_ARCH: 'x86_64', TETHER_INSTALL_LIBC: 'glibc' };
    const r = await install(['--base-url', `${plainBase}/release`], x64);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('refusing to download the release and its SHA256SUMS over plain http');
    expect(r.stderr).toContain('--insecure');
    expect(r.requests).toEqual(['/install.sh']); // nothing fetched from the plain-http location
    expect(existsSync(r.prefix)).toBe(false);

    const ok = await install(['--base-url', `${plainBase}/release`, '--insecure'], x64);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toContain('warning: --insecure');
    expect(sha256(ok.bin)).toBe(sha256(join(dist, 'tether-edge-linux-x64')));
  });

  test('refuses an https release location that redirects to plain http', async () => {
    const r = await install(['--base-url', `${base}/downgrade`], { TETHER_INSTALL_ARCH: 'x86_64', TETHER_INSTALL_LIBC: 'glibc' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('cannot download');
    expect(r.requests).toEqual(['/install.sh', '/downgrade/SHA256SUMS']); // the redirect was not followed
    expect(existsSync(r.prefix)).toBe(false);
  });

  test('refuses an unsupported architecture with the supported ones named, before downloading', async () => {
    const r = await install(['--base-url', `${base}/release`], { TETHER_INSTALL_ARCH: 'riscv64' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('unsupported architecture riscv64');
    expect(r.stderr).toContain('x86_64, aarch64 and armv7l');
    expect(r.requests).toEqual(['/install.sh']);
    expect(existsSync(r.prefix)).toBe(false);
  });

  test('a musl system asks for the -musl build, and a release without one says so', async () => {
    const r = await install(['--base-url', `${base}/release`], { TETHER_INSTALL_ARCH: 'x86_64', TETHER_INSTALL_LIBC: 'musl' });
    expect(r.code).not.toBe(0);
    expect(r.requests).toContain('/release/tether-edge-linux-x64-musl');
    expect(r.stderr).toContain('this release may have no build for x86_64 (musl)');
    expect(existsSync(r.bin)).toBe(false);
  });

  test('without xz, the plain file is downloaded and checked', async () => {
    // A PATH with the tools the installer uses, but no xz.
    const tools = join(work, 'tools-no-xz');
    mkdirSync(tools);
    for (const t of ['sh', 'curl', 'sha256sum', 'cut', 'awk', 'grep', 'mkdir', 'cp', 'chmod', 'mv', 'dirname', 'rm', 'mktemp', 'uname', 'readlink', 'ln', 'cat']) {
      const found = ['/usr/bin', '/bin'].map((d) => join(d, t)).find((p) => existsSync(p));
      if (found) symlinkSync(found, join(tools, t));
    }
    const r = await install(['--base-url', `${base}/release`], { TETHER_INSTALL_ARCH: 'x86_64', TETHER_INSTALL_LIBC: 'glibc', PATH: tools });
    expect(r.code).toBe(0);
    expect(r.requests).toEqual(['/install.sh', '/release/SHA256SUMS', '/release/tether-edge-linux-x64']);
    expect(sha256(r.bin)).toBe(sha256(join(dist, 'tether-edge-linux-x64')));
  });

  test('armv7l: refuses when Node.js is older than 20', async () => {
    const fake = join(work, 'old-node');
    mkdirSync(fake);
    writeFileSync(join(fake, 'node'), '#!/bin/sh\necho v18.19.0\n');
    chmodSync(join(fake, 'node'), 0o755);
    const r = await install(['--base-url', `${base}/release`], { TETHER_INSTALL_ARCH: 'armv7l', PATH: `${fake}:${process.env.PATH}` });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('needs Node.js >= 20; this node is v18.19.0');
    expect(r.requests).toEqual(['/install.sh']);
  });

  test('armv7l: installs the Node bundle, which runs under Node', async () => {
    const prefix = join(work, 'prefix-armv7l');
    // better-sqlite3 present beside the bundle already (the installer would run npm otherwise).
    mkdirSync(join(prefix, 'lib', 'tether'), { recursive: true });
    symlinkSync(join(root, 'node_modules'), join(prefix, 'lib', 'tether', 'node_modules'));
    const r = await install(['--base-url', `${base}/release`], { TETHER_INSTALL_ARCH: 'armv7l' }, prefix);
    expect(r.code).toBe(0);
    expect(r.requests).toContain('/release/tether-edge.mjs.xz');
    expect(sha256(join(prefix, 'lib', 'tether', 'tether-edge.mjs'))).toBe(sha256(join(dist, 'tether-edge.mjs')));
    const v = await run([r.bin, '--version']);
    expect(v.stderr).toBe('');
    expect(v.stdout).toMatch(/\(commit \S+, node-linux\)/);
  });

  test('replaces an installed binary by a rename beside it, never by writing into the running file', async () => {
    const prefix = join(work, 'prefix-atomic');
    mkdirSync(join(prefix, 'bin'), { recursive: true });
    const old = '#!/bin/sh\necho old tether-edge\n';
    writeFileSync(join(prefix, 'bin', 'tether-edge'), old, { mode: 0o755 });
    // A hard link stands for the running process's open file: written in place, it would change too.
    linkSync(join(prefix, 'bin', 'tether-edge'), join(work, 'running-tether-edge'));
    const before = statSync(join(prefix, 'bin', 'tether-edge')).ino;
    const r = await install(['--base-url', `${base}/release`, '--release-key', releasePub], x64, prefix);
    expect(r.code).toBe(0);
    expect(sha256(r.bin)).toBe(sha256(join(dist, 'tether-edge-linux-x64')));
    expect(statSync(r.bin).ino).not.toBe(before);
    expect(readFileSync(join(work, 'running-tether-edge'), 'utf8')).toBe(old);
    expect(readdirSync(join(prefix, 'bin'))).toEqual(['tether-edge']); // no temporary file left beside it
  });

  test('the installer pins the better-sqlite3 the Node bundle was built against', () => {
    const pinned = /^BETTER_SQLITE3_VERSION="([^"]+)"$/m.exec(readFileSync(join(root, 'scripts/install.sh'), 'utf8'))?.[1];
    expect(pinned).toBe(pkg.dependencies['better-sqlite3']);
  });
});
