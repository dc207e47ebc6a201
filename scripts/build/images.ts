/**
 * The release images: tether-hub and tether-edge as OCI image layouts (one archive each, one index
 * for linux/amd64 and linux/arm64), written without a daemon from the release binaries.
 *
 * Each platform's image is two gzipped layers:
 *   1. the base: /etc/passwd and /etc/group with a non-root user (65532, "nonroot"), nsswitch.conf,
 *      the CA bundle at /etc/ssl/certs/ca-certificates.crt, /tmp, and the glibc loader and libraries
 *      the binary names (read from its ELF headers: Bun's compiled binaries are dynamically linked),
 *      taken from the build machine (amd64: the host's glibc; arm64: Debian's libc6-arm64-cross);
 *   2. the binary at /usr/local/bin/<name>, the entry point, run as 65532:65532.
 * The base of the two images is the same bytes when they need the same libraries, so a registry
 * stores it once. Reproducible: tar.ts and oci.ts write no timestamps or owners of the build machine,
 * so the same binaries and the same host files give the same digests.
 *
 *   bun scripts/build/images.ts --name tether-hub --version 0.1.0 \
 *     --amd64 dist/tether-hub-linux-x64 --arm64 dist/tether-hub-linux-arm64 --out dist/tether-hub-0.1.0.oci.tar
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, posix } from 'node:path';
import { parseArgs } from 'node:util';
import { ELF_MACHINE, readElf } from '../images/elf.ts';
import { ociArchive, type PlatformImage } from '../images/oci.ts';
import { tar, type TarEntry } from '../images/tar.ts';

export type ImageArch = 'amd64' | 'arm64';
export const IMAGE_NAMES = ['tether-hub', 'tether-edge'] as const;
export interface ImageSpec {
  name: (typeof IMAGE_NAMES)[number];
  /** The image tag and org.opencontainers.image.version. */
  version: string;
  /** Path of the release binary per arch (dist/...). */
  binaries: Partial<Record<ImageArch, string>>;
  /** Path of the OCI image-layout archive to write (.tar). */
  out: string;
}
export interface WrittenImage {
  path: string;
  /** sha256:… of the image index (what a registry names the multi-arch image by). */
  digest: string;
  platforms: ImageArch[];
  /** The image index itself (JSON): its sha256 is `digest`; the release ships it so SHA256SUMS states the digest. */
  index: Buffer;
}

/** The non-root user the images run as (the number distroless images use for "nonroot"). */
export const IMAGE_USER = 65532;
/** Where the CA bundle is in the image (and where it is read from on the build machine). */
export const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
/** Platforms in the index, in this order. */
export const IMAGE_ARCHES: readonly ImageArch[] = ['amd64', 'arm64'];

/** The name ctr gives the imported image (and the archive's org.opencontainers.image.ref.name). */
export const imageRef = (name: string, version: string) => `tether.local/${name}:${version}`;
/** The archive's file name in dist/. */
export const imageFile = (name: string, version: string) => `${name}-${version}.oci.tar`;
/** The image index's file name in dist/: its line in SHA256SUMS is the image digest. */
export const imageIndexFile = (name: string, version: string) => `${name}-${version}.oci-index.json`;

/** Where each arch's glibc lives in the image (the loader's default search path) and on the build machine. */
const GLIBC: Record<ImageArch, { multiarch: string; hostDirs: string[]; package: string }> = {
  amd64: { multiarch: 'x86_64-linux-gnu', hostDirs: ['/lib/x86_64-linux-gnu', '/usr/x86_64-linux-gnu/lib'], package: 'libc6 (or libc6-amd64-cross)' },
  arm64: { multiarch: 'aarch64-linux-gnu', hostDirs: ['/usr/aarch64-linux-gnu/lib', '/lib/aarch64-linux-gnu'], package: 'libc6-arm64-cross' },
};

const LOADER_PATH = /^\/lib(64)?\/ld-linux[A-Za-z0-9_.-]*\.so\.\d+$/;
const SONAME = /^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*\.so(\.\d+)*$/;
// A tag as registries accept it (the OCI distribution spec's pattern).
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

const PASSWD = ['root:x:0:0:root:/root:/sbin/nologin', `nonroot:x:${IMAGE_USER}:${IMAGE_USER}:nonroot:/home/nonroot:/sbin/nologin`, 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin'];
const GROUP = ['root:x:0:', `nonroot:x:${IMAGE_USER}:`, 'nogroup:x:65534:'];
// Without it glibc's defaults apply; with it, /etc/hosts (which the kubelet writes) is read before DNS.
const NSSWITCH = ['passwd: files', 'group: files', 'hosts: files dns'];

const lines = (l: string[]) => Buffer.from(`${l.join('\n')}\n`);

/** The glibc files a binary needs: its loader and the closure of its DT_NEEDED, from the build machine. */
function glibcFiles(arch: ImageArch, binary: Buffer, what: string): { interpreter: string; libs: Map<string, Buffer> } {
  const elf = readElf(binary, what);
  if (elf.machine !== ELF_MACHINE[arch]) throw new Error(`${what} is not a linux/${arch} binary (ELF machine ${elf.machine})`);
  if (!elf.interpreter) throw new Error(`${what} is statically linked: the images expect Bun's dynamically linked glibc build`);
  // Names from the file become paths on the build machine and in the image: only plain loader and library names.
  if (!LOADER_PATH.test(elf.interpreter)) throw new Error(`${what} names an unexpected loader ${JSON.stringify(elf.interpreter)}`);
  const glibc = GLIBC[arch];
  const loader = posix.basename(elf.interpreter);
  const hostDir = glibc.hostDirs.find((d) => existsSync(join(d, loader)));
  if (!hostDir) throw new Error(`the ${arch} glibc loader ${loader} is not in ${glibc.hostDirs.join(' or ')}: install Debian's ${glibc.package}`);

  const libs = new Map<string, Buffer>();
  const queue = [loader, ...elf.needed];
  while (queue.length) {
    const soname = queue.shift()!;
    if (libs.has(soname)) continue;
    if (!SONAME.test(soname)) throw new Error(`${what} needs a library with an unexpected name ${JSON.stringify(soname)}`);
    const file = join(hostDir, soname);
    if (!existsSync(file)) throw new Error(`${what} needs ${soname}, which is not in ${hostDir}`);
    const data = readFileSync(file); // follows the host's symlinks: the image gets the library itself
    const lib = readElf(data, file);
    if (lib.machine !== ELF_MACHINE[arch]) throw new Error(`${file} is not a linux/${arch} library`);
    libs.set(soname, data);
    queue.push(...lib.needed);
  }
  return { interpreter: elf.interpreter, libs };
}

function dirs(paths: string[]): TarEntry[] {
  return paths.map((path): TarEntry => ({ type: 'dir', path }));
}

/** Layer 1: users, name service, CA bundle, /tmp and glibc. In a fixed order, parents first. */
function baseLayer(arch: ImageArch, interpreter: string, libs: Map<string, Buffer>): Buffer {
  if (!existsSync(CA_BUNDLE)) throw new Error(`${CA_BUNDLE} is missing: install Debian's ca-certificates`);
  const libDir = `lib/${GLIBC[arch].multiarch}`;
  const loader = posix.basename(interpreter);
  const interp = interpreter.replace(/^\/+/, '');
  const entries: TarEntry[] = [
    ...dirs(['etc', 'etc/ssl', 'etc/ssl/certs']),
    { type: 'file', path: 'etc/group', data: lines(GROUP) },
    { type: 'file', path: 'etc/nsswitch.conf', data: lines(NSSWITCH) },
    { type: 'file', path: 'etc/passwd', data: lines(PASSWD) },
    { type: 'file', path: CA_BUNDLE.slice(1), data: readFileSync(CA_BUNDLE) },
    { type: 'dir', path: 'home' },
    { type: 'dir', path: 'home/nonroot', mode: 0o750, uid: IMAGE_USER, gid: IMAGE_USER },
    ...dirs(['lib', libDir]),
    ...[...libs.keys()].sort().map((soname): TarEntry => ({ type: 'file', path: `${libDir}/${soname}`, data: libs.get(soname)!, mode: 0o755 })),
  ];
  // The path the kernel starts (PT_INTERP) points at the loader in the multiarch directory, as on
  // Debian, but relative: tools that run the rootfs without entering it (qemu-user's -L) resolve it too.
  if (interp !== `${libDir}/${loader}`) {
    const parent = posix.dirname(interp);
    if (parent !== 'lib' && parent !== '.') entries.push({ type: 'dir', path: parent });
    entries.push({ type: 'symlink', path: interp, target: posix.relative(parent, `${libDir}/${loader}`) });
  }
  entries.push({ type: 'dir', path: 'tmp', mode: 0o1777 });
  return tar(entries);
}

/** Layer 2: the binary, the entry point. */
function binaryLayer(name: string, binary: Buffer): Buffer {
  return tar([...dirs(['usr', 'usr/local', 'usr/local/bin']), { type: 'file', path: `usr/local/bin/${name}`, data: binary, mode: 0o755 }]);
}

/** The platform images of a spec, checked, in IMAGE_ARCHES order (no files written). */
export function imagePlatforms(spec: ImageSpec): PlatformImage[] {
  if (!(IMAGE_NAMES as readonly string[]).includes(spec.name)) throw new Error(`image: unknown name ${JSON.stringify(spec.name)}; one of ${IMAGE_NAMES.join(', ')}`);
  if (!TAG.test(spec.version)) throw new Error(`image: ${JSON.stringify(spec.version)} is not a valid image tag`);
  for (const arch of Object.keys(spec.binaries)) {
    if (!(IMAGE_ARCHES as readonly string[]).includes(arch)) throw new Error(`image: unknown arch ${arch}; one of ${IMAGE_ARCHES.join(', ')}`);
  }
  const arches = IMAGE_ARCHES.filter((a) => spec.binaries[a]);
  if (!arches.length) throw new Error(`image ${spec.name}: no binary given`);
  const labels = {
    'org.opencontainers.image.title': spec.name,
    'org.opencontainers.image.version': spec.version,
    'org.opencontainers.image.licenses': 'Apache-2.0',
  };
  return arches.map((arch): PlatformImage => {
    const path = spec.binaries[arch]!;
    if (!existsSync(path)) throw new Error(`image ${spec.name}: ${path} is missing`);
    const binary = readFileSync(path);
    const { interpreter, libs } = glibcFiles(arch, binary, path);
    return {
      architecture: arch,
      gzip: true,
      layers: [baseLayer(arch, interpreter, libs), binaryLayer(spec.name, binary)],
      config: {
        User: `${IMAGE_USER}:${IMAGE_USER}`,
        Entrypoint: [`/usr/local/bin/${spec.name}`],
        Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/home/nonroot'],
        WorkingDir: '/',
        Labels: labels,
      },
    };
  });
}

/** Writes the image's OCI layout archive to spec.out. */
export async function writeImage(spec: ImageSpec): Promise<WrittenImage> {
  const platforms = imagePlatforms(spec);
  const ref = imageRef(spec.name, spec.version);
  const { archive, images } = ociArchive([
    { ref, platforms, index: true, annotations: { 'org.opencontainers.image.title': spec.name, 'org.opencontainers.image.version': spec.version } },
  ]);
  mkdirSync(dirname(spec.out), { recursive: true });
  writeFileSync(spec.out, archive);
  return { path: spec.out, digest: images[0]!.digest, platforms: platforms.map((p) => p.architecture as ImageArch), index: images[0]!.top };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { name: { type: 'string' }, version: { type: 'string' }, amd64: { type: 'string' }, arm64: { type: 'string' }, out: { type: 'string' } } });
  try {
    if (!values.name || !values.version) throw new Error('--name and --version are required');
    const name = values.name as ImageSpec['name'];
    const out = values.out ?? join('dist', imageFile(name, values.version));
    const written = await writeImage({ name, version: values.version, binaries: { amd64: values.amd64, arm64: values.arm64 }, out });
    console.log(`${basename(written.path)} ${written.digest} ${written.platforms.join(',')}`);
  } catch (e) {
    console.error(`images: ${(e as Error).message}`);
    process.exit(1);
  }
}
