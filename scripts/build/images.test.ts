/**
 * The release images from small fake binaries (ELF files that name a loader and libc, as Bun's
 * compiled binaries do): the layout is the same bytes twice, the index names linux/amd64 and
 * linux/arm64, the image runs as a non-root user, carries the CA bundle and the glibc each binary
 * needs, and leaks nothing of the build machine (mtimes, owners, user names, gzip timestamps).
 * The archive is read back with the system's tar, not with our own writer's idea of it.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { ELF_MACHINE, readElf } from '../images/elf.ts';
import { CA_BUNDLE, IMAGE_USER, imageRef, writeImage, type ImageSpec } from './images.ts';

const dir = mkdtempSync(join(tmpdir(), 'tether-images-'));
// gzip -9 of each arch's glibc, a few times per test: seconds on a busy machine.
const SLOW = 60_000;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A minimal 64-bit little-endian ELF executable: PT_LOAD over the file, PT_INTERP, and DT_NEEDED entries. */
function fakeElf(machine: number, interpreter: string, needed: string[], payload: string): Buffer {
  const phoff = 64;
  const phnum = 3;
  const interpAt = phoff + 56 * phnum;
  const interp = Buffer.from(`${interpreter}\0`);
  const strtabAt = interpAt + interp.length;
  const names = needed.map((n) => Buffer.from(`${n}\0`));
  const strtab = Buffer.concat([Buffer.from('\0'), ...names]);
  const dynAt = Math.ceil((strtabAt + strtab.length) / 8) * 8;
  const dyn = Buffer.alloc(16 * (needed.length + 2));
  const base = 0x400000n;
  let nameAt = 1;
  needed.forEach((_, i) => {
    dyn.writeBigInt64LE(1n, i * 16); // DT_NEEDED
    dyn.writeBigUInt64LE(BigInt(nameAt), i * 16 + 8);
    nameAt += names[i]!.length;
  });
  dyn.writeBigInt64LE(5n, needed.length * 16); // DT_STRTAB, an address
  dyn.writeBigUInt64LE(base + BigInt(strtabAt), needed.length * 16 + 8);
  const body = Buffer.from(payload);
  const size = dynAt + dyn.length + body.length;

  const h = Buffer.alloc(dynAt);
  h.writeUInt32BE(0x7f454c46, 0);
  h[4] = 2; // 64-bit
  h[5] = 1; // little-endian
  h[6] = 1;
  h.writeUInt16LE(2, 16); // ET_EXEC
  h.writeUInt16LE(machine, 18);
  h.writeUInt32LE(1, 20);
  h.writeBigUInt64LE(BigInt(phoff), 32);
  h.writeUInt16LE(64, 52);
  h.writeUInt16LE(56, 54);
  h.writeUInt16LE(phnum, 56);
  const ph = (i: number, type: number, offset: number, filesz: number) => {
    const at = phoff + i * 56;
    h.writeUInt32LE(type, at);
    h.writeBigUInt64LE(BigInt(offset), at + 8);
    h.writeBigUInt64LE(base + BigInt(offset), at + 16);
    h.writeBigUInt64LE(BigInt(filesz), at + 32);
  };
  ph(0, 1, 0, size); // PT_LOAD
  ph(1, 3, interpAt, interp.length); // PT_INTERP
  ph(2, 2, dynAt, dyn.length); // PT_DYNAMIC
  interp.copy(h, interpAt);
  strtab.copy(h, strtabAt);
  return Buffer.concat([h, dyn, body]);
}

const AMD64_LOADER = '/lib64/ld-linux-x86-64.so.2';
const ARM64_LOADER = '/lib/ld-linux-aarch64.so.1';
// What Bun's glibc builds name (checked on the real binaries by test/release.test.ts).
const BUN_LIBS = ['libc.so.6', 'libpthread.so.0', 'libdl.so.2', 'libm.so.6'];

function fake(name: string, machine: number, loader: string, needed = BUN_LIBS, payload = name): string {
  const path = join(dir, 'bin', name);
  mkdirSync(join(dir, 'bin'), { recursive: true });
  writeFileSync(path, fakeElf(machine, loader, needed, payload), { mode: 0o755 });
  return path;
}

const amd64 = fake('hub-amd64', ELF_MACHINE.amd64, AMD64_LOADER);
const arm64 = fake('hub-arm64', ELF_MACHINE.arm64, ARM64_LOADER);
const spec = (out: string, over: Partial<ImageSpec> = {}): ImageSpec => ({ name: 'tether-hub', version: '0.3.0', binaries: { amd64, arm64 }, out: join(dir, out), ...over });
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** The archive unpacked by the system's tar: index.json, and each blob by digest. */
function unpack(archive: string) {
  const to = mkdtempSync(join(dir, 'layout-'));
  execFileSync('tar', ['-xf', archive, '-C', to]);
  const blob = (digest: string) => readFileSync(join(to, 'blobs/sha256', digest.replace(/^sha256:/, '')));
  const json = (digest: string) => JSON.parse(blob(digest).toString('utf8'));
  return { top: JSON.parse(readFileSync(join(to, 'index.json'), 'utf8')), layout: JSON.parse(readFileSync(join(to, 'oci-layout'), 'utf8')), blob, json };
}

/** One platform's manifest, config and layers (gunzipped, each also unpacked by tar into its own folder). */
function platform(archive: string, arch: string) {
  const { top, blob, json } = unpack(archive);
  const index = json(top.manifests[0].digest);
  const desc = index.manifests.find((m: { platform: { architecture: string } }) => m.platform.architecture === arch);
  const manifest = json(desc.digest);
  const config = json(manifest.config.digest);
  const layers = manifest.layers.map((l: { digest: string; mediaType: string }, i: number) => {
    const gz = blob(l.digest);
    const raw = gunzipSync(gz);
    const root = mkdtempSync(join(dir, `${arch}-layer${i}-`));
    writeFileSync(join(root, '..', `${arch}-${i}.tar`), raw);
    execFileSync('tar', ['-xf', join(root, '..', `${arch}-${i}.tar`), '-C', root, '--numeric-owner', '--same-owner']);
    const listing = execFileSync('tar', ['-tvf', join(root, '..', `${arch}-${i}.tar`), '--numeric-owner'], { encoding: 'utf8' });
    return { mediaType: l.mediaType, gz, raw, root, listing };
  });
  return { manifest, config, layers };
}

/** ustar headers of a layer: name, uid, gid, mtime, uname, gname as stored. */
function headers(raw: Buffer) {
  const out: { name: string; uid: number; gid: number; mtime: number; uname: string; gname: string }[] = [];
  for (let at = 0; at + 512 <= raw.length; ) {
    const h = raw.subarray(at, at + 512);
    if (h.every((b) => b === 0)) break;
    const str = (o: number, n: number) => h.subarray(o, o + n).toString('utf8').replace(/\0.*$/s, '');
    const num = (o: number, n: number) => parseInt(str(o, n).trim() || '0', 8);
    const size = num(124, 12);
    out.push({ name: `${str(345, 155) ? `${str(345, 155)}/` : ''}${str(0, 100)}`, uid: num(108, 8), gid: num(116, 8), mtime: num(136, 12), uname: str(265, 32), gname: str(297, 32) });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

describe('release images', () => {
  test('two writes of the same binaries give the same archive bytes and digest; another binary gives another digest', async () => {
    const a = await writeImage(spec('a.oci.tar'));
    const b = await writeImage(spec('b.oci.tar'));
    expect(a.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(b.digest).toBe(a.digest);
    expect(readFileSync(b.path).equals(readFileSync(a.path))).toBe(true);
    expect(sha256(a.index)).toBe(a.digest);

    const other = fake('hub-amd64-2', ELF_MACHINE.amd64, AMD64_LOADER, BUN_LIBS, 'another build');
    const c = await writeImage(spec('c.oci.tar', { binaries: { amd64: other, arm64 } }));
    expect(c.digest).not.toBe(a.digest);
  }, SLOW);

  test('the index names linux/amd64 and linux/arm64, and index.json names it tether.local/<name>:<version>', async () => {
    const w = await writeImage(spec('index.oci.tar'));
    expect(w.platforms).toEqual(['amd64', 'arm64']);
    const { top, layout, json } = unpack(w.path);
    expect(layout).toEqual({ imageLayoutVersion: '1.0.0' });
    expect(top.manifests).toHaveLength(1);
    expect(top.manifests[0].digest).toBe(w.digest);
    expect(top.manifests[0].mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(top.manifests[0].annotations['org.opencontainers.image.ref.name']).toBe(imageRef('tether-hub', '0.3.0'));
    expect(imageRef('tether-hub', '0.3.0')).toBe('tether.local/tether-hub:0.3.0');
    const index = json(w.digest);
    expect(index.manifests.map((m: { platform: unknown }) => m.platform)).toEqual([
      { architecture: 'amd64', os: 'linux' },
      { architecture: 'arm64', os: 'linux' },
    ]);
    expect(index.annotations['org.opencontainers.image.version']).toBe('0.3.0');
  }, SLOW);

  test('tether-hub and tether-edge that need the same libraries share the base layer (a registry stores it once)', async () => {
    const edge = fake('edge-amd64', ELF_MACHINE.amd64, AMD64_LOADER, BUN_LIBS, 'the edge binary');
    const hub = await writeImage(spec('share-hub.oci.tar', { binaries: { amd64 } }));
    const e = await writeImage(spec('share-edge.oci.tar', { name: 'tether-edge', binaries: { amd64: edge } }));
    const [hubBase, hubBin] = platform(hub.path, 'amd64').manifest.layers;
    const [edgeBase, edgeBin] = platform(e.path, 'amd64').manifest.layers;
    expect(edgeBase.digest).toBe(hubBase.digest);
    expect(edgeBin.digest).not.toBe(hubBin.digest);
    expect(platform(e.path, 'amd64').config.config.Entrypoint).toEqual(['/usr/local/bin/tether-edge']);
  }, SLOW);

  test('one binary still gives an index (of one platform)', async () => {
    const w = await writeImage(spec('one.oci.tar', { binaries: { amd64 } }));
    expect(w.platforms).toEqual(['amd64']);
    const { json } = unpack(w.path);
    expect(json(w.digest).manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture)).toEqual(['amd64']);
  }, SLOW);

  test('the image runs its binary as 65532:65532, a user /etc/passwd and /etc/group name, with a home it owns', async () => {
    const w = await writeImage(spec('user.oci.tar'));
    for (const arch of ['amd64', 'arm64']) {
      const { config, layers } = platform(w.path, arch);
      expect(config.architecture).toBe(arch);
      expect(config.config.User).toBe(`${IMAGE_USER}:${IMAGE_USER}`);
      expect(IMAGE_USER).not.toBe(0);
      expect(config.config.Entrypoint).toEqual(['/usr/local/bin/tether-hub']);
      const [base, bin] = layers;
      expect(readFileSync(join(bin.root, 'usr/local/bin/tether-hub')).equals(readFileSync(arch === 'amd64' ? amd64 : arm64))).toBe(true);
      expect(statSync(join(bin.root, 'usr/local/bin/tether-hub')).mode & 0o777).toBe(0o755);
      expect(readFileSync(join(base.root, 'etc/passwd'), 'utf8')).toContain(`nonroot:x:${IMAGE_USER}:${IMAGE_USER}:nonroot:/home/nonroot:/sbin/nologin\n`);
      expect(readFileSync(join(base.root, 'etc/group'), 'utf8')).toContain(`nonroot:x:${IMAGE_USER}:\n`);
      const home = statSync(join(base.root, 'home/nonroot'));
      expect([home.uid, home.gid]).toEqual([IMAGE_USER, IMAGE_USER]);
      expect(statSync(join(base.root, 'tmp')).mode & 0o7777).toBe(0o1777);
    }
  }, SLOW);

  test('the CA bundle is the build machine’s, at /etc/ssl/certs/ca-certificates.crt', async () => {
    const w = await writeImage(spec('ca.oci.tar'));
    const { layers } = platform(w.path, 'arm64');
    const bundle = readFileSync(join(layers[0].root, CA_BUNDLE.slice(1)));
    expect(bundle.equals(readFileSync(CA_BUNDLE))).toBe(true);
    expect(bundle.toString('utf8')).toContain('-----BEGIN CERTIFICATE-----');
  }, SLOW);

  test('each platform gets the loader at the path the binary names and the libraries it needs, for its own machine', async () => {
    const w = await writeImage(spec('glibc.oci.tar'));
    for (const [arch, loader, multiarch] of [
      ['amd64', AMD64_LOADER, 'x86_64-linux-gnu'],
      ['arm64', ARM64_LOADER, 'aarch64-linux-gnu'],
    ] as const) {
      const root = platform(w.path, arch).layers[0].root;
      // The PT_INTERP path resolves inside the rootfs (a relative link) to the loader in the multiarch folder.
      expect(readlinkSync(join(root, loader))).not.toStartWith('/');
      const ld = readFileSync(join(root, loader));
      expect(readElf(ld, loader).machine).toBe(ELF_MACHINE[arch]);
      for (const lib of BUN_LIBS) expect(readElf(readFileSync(join(root, 'lib', multiarch, lib)), lib).machine).toBe(ELF_MACHINE[arch]);
    }
  }, SLOW);

  test('layers are gzip with no timestamp; entries have mtime 0, no user or group names, and owner 0 except the home', async () => {
    const w = await writeImage(spec('leaks.oci.tar'));
    for (const arch of ['amd64', 'arm64']) {
      const { manifest, config, layers } = platform(w.path, arch);
      expect(manifest.layers.map((l: { mediaType: string }) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.layer.v1.tar+gzip']);
      expect(config.rootfs.diff_ids).toEqual(layers.map((l: { raw: Buffer }) => sha256(l.raw)));
      expect(config.created).toBeUndefined();
      expect(config.history).toBeUndefined();
      for (const l of layers) {
        expect(l.gz.readUInt32LE(4)).toBe(0); // gzip MTIME
        expect(l.gz[3]! & 0x08).toBe(0); // no FNAME
        for (const h of headers(l.raw)) {
          expect({ name: h.name, mtime: h.mtime, uname: h.uname, gname: h.gname }).toEqual({ name: h.name, mtime: 0, uname: '', gname: '' });
          expect([h.uid, h.gid]).toEqual(h.name === 'home/nonroot/' ? [IMAGE_USER, IMAGE_USER] : [0, 0]);
        }
      }
    }
  }, SLOW);

  test('a binary for the wrong machine, one that needs a library the machine lacks, a static one, odd loader or library names, a bad tag or no binary at all is refused', async () => {
    const cases: [Partial<ImageSpec>, string][] = [
      [{ binaries: { arm64: amd64 } }, `${amd64} is not a linux/arm64 binary (ELF machine 62)`],
      [{ binaries: { amd64: fake('needs-foo', ELF_MACHINE.amd64, AMD64_LOADER, ['libc.so.6', 'libfoo-absent.so.9']) } }, `needs libfoo-absent.so.9, which is not in /lib/x86_64-linux-gnu`],
      [{ binaries: { amd64: join(dir, 'absent') } }, `${join(dir, 'absent')} is missing`],
      [{ binaries: { amd64: CA_BUNDLE } }, `${CA_BUNDLE} is not an ELF executable`],
      [{ version: 'v1/2' }, '"v1/2" is not a valid image tag'],
      [{ binaries: { amd64: fake('odd-loader', ELF_MACHINE.amd64, '/tmp/../etc/ld.so') } }, 'names an unexpected loader "/tmp/../etc/ld.so"'],
      [{ binaries: { amd64: fake('odd-lib', ELF_MACHINE.amd64, AMD64_LOADER, ['../../../etc/shadow']) } }, 'needs a library with an unexpected name "../../../etc/shadow"'],
      [{ binaries: {} }, 'no binary given'],
    ];
    const staticBin = join(dir, 'bin', 'static');
    const s = fakeElf(ELF_MACHINE.amd64, '', [], 'static');
    s.writeUInt32LE(6, 64 + 56); // turn PT_INTERP into PT_PHDR: no loader
    writeFileSync(staticBin, s);
    cases.push([{ binaries: { amd64: staticBin } }, 'is statically linked']);
    for (const [i, [over, message]] of cases.entries()) {
      const out = `refused-${i}.oci.tar`;
      await expect(writeImage(spec(out, over))).rejects.toThrow(message);
      expect(() => statSync(join(dir, out))).toThrow();
    }
  }, SLOW);
});
