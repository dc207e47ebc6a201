/**
 * The curl installer (scripts/install.sh) as a user runs it, `curl -fsSL <base>/install.sh | sh -s --`,
 * against a release directory served from 127.0.0.1, installing into temporary prefixes: the x64
 * binary, the arm64 binary (run under qemu), the Node bundle for armv7l, idempotence, --version,
 * the musl choice, the plain-file fallback without xz, and refusals: a tampered download, an
 * unsupported architecture, a Node.js too old, a release over plain http without --insecure (and
 * an https one redirecting to plain http). The release is served over https with a test CA that
 * curl is told to trust (CURL_CA_BUNDLE), and over plain http for the refusals.
 *
 * The release is built with scripts/build.ts for x64 and arm64 without its own xz step (which
 * compresses the hub binaries too and takes minutes); the test compresses the three tether-edge
 * artifacts the same way (`xz -k`, sums appended to SHA256SUMS) at a faster level.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkg from '../package.json' with { type: 'json' };
import { createLocalCa, localCaFrom } from '../edge/certs/local-ca.ts';
import { bunBin, run } from './support/run.ts';

const root = join(import.meta.dir, '..');
const work = mkdtempSync(join(tmpdir(), 'tether-install-'));
const dist = join(work, 'dist');
const tampered = join(work, 'tampered');
const qemu = ['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu'];
const EDGE = ['tether-edge-linux-x64', 'tether-edge-linux-arm64', 'tether-edge.mjs'];
const requests: string[] = [];
let server: ReturnType<typeof Bun.serve>;
let plainServer: ReturnType<typeof Bun.serve>;
let base: string;
let plainBase: string;
const caFile = join(work, 'test-ca.crt');
let n = 0;

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

beforeAll(async () => {
  const r = await run([bunBin, join(root, 'scripts/build.ts'), '--out', dist, '--target', 'bun-linux-x64', '--target', 'bun-linux-arm64', '--no-xz'], { cwd: root });
  if (r.code !== 0) throw new Error(`build failed:\n${r.stdout}\n${r.stderr}`);
  for (const f of EDGE) {
    const x = await run(['xz', '-T0', '-1', '-k', '-f', join(dist, f)]);
    if (x.code !== 0) throw new Error(`xz ${f}: ${x.stderr}`);
    appendFileSync(join(dist, 'SHA256SUMS'), `${sha256(join(dist, `${f}.xz`))}  ${f}.xz\n`);
  }
  // The same release with one byte of the x64 download changed.
  mkdirSync(tampered);
  for (const f of readdirSync(dist)) copyFileSync(join(dist, f), join(tampered, f));
  const bad = readFileSync(join(tampered, 'tether-edge-linux-x64.xz'));
  bad[bad.length >> 1]! ^= 0x01;
  writeFileSync(join(tampered, 'tether-edge-linux-x64.xz'), bad);

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
      const m = /^\/(release|tampered)(?:\/v[0-9.]+)?\/([A-Za-z0-9._-]+)$/.exec(path);
      const file = m ? join(m[1] === 'release' ? dist : tampered, m[2]!) : undefined;
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

  test('the installer pins the better-sqlite3 the Node bundle was built against', () => {
    const pinned = /^BETTER_SQLITE3_VERSION="([^"]+)"$/m.exec(readFileSync(join(root, 'scripts/install.sh'), 'utf8'))?.[1];
    expect(pinned).toBe(pkg.dependencies['better-sqlite3']);
  });
});
