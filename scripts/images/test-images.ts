/**
 * The images the test cluster's real nodes run, built here because nothing can be pulled: a pause
 * image for pod sandboxes and a small workload image, both from Debian's busybox-static (one static
 * binary), as one OCI archive that `ctr images import` reads. Pods name them with
 * `imagePullPolicy: Never`.
 *
 *   bun scripts/images/test-images.ts --out DIR     # writes DIR/test-images.oci.tar, prints its path
 */
import { readFileSync, mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ociArchive, type PlatformImage } from './oci.ts';
import { tar, type TarEntry } from './tar.ts';

export const PAUSE_IMAGE = 'tether.local/pause:1';
export const BUSYBOX_IMAGE = 'tether.local/busybox:1';
const BUSYBOX = '/bin/busybox';

/** The applets the workloads use, as symlinks to busybox. */
const APPLETS = ['sh', 'sleep', 'cat', 'echo', 'ls', 'date', 'hostname', 'httpd', 'wget', 'nc', 'ps', 'env', 'true', 'false', 'mkdir', 'id', 'printf', 'seq', 'test'];

function busyboxLayer(): Buffer {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: install Debian's busybox-static (scripts/setup.sh does)`);
  const entries: TarEntry[] = [
    ...['bin', 'dev', 'etc', 'proc', 'sys', 'tmp', 'var', 'var/www', 'root'].map((path): TarEntry => ({ type: 'dir', path, mode: path === 'tmp' ? 0o1777 : 0o755 })),
    { type: 'file', path: 'bin/busybox', data: readFileSync(BUSYBOX), mode: 0o755 },
    ...APPLETS.map((a): TarEntry => ({ type: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    { type: 'file', path: 'etc/passwd', data: Buffer.from('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n') },
    { type: 'file', path: 'etc/group', data: Buffer.from('root:x:0:\nnogroup:x:65534:\n') },
  ];
  return tar(entries);
}

export function testImagesArchive(): { archive: Buffer; images: { ref: string; digest: string }[] } {
  const layer = busyboxLayer();
  const arch = process.arch === 'arm64' ? 'arm64' : 'amd64';
  const image = (config: PlatformImage['config']): PlatformImage[] => [{ architecture: arch, layers: [layer], config: { Env: ['PATH=/bin'], ...config } }];
  return ociArchive([
    // The sandbox's only job is to hold the pod's namespaces; it exits on SIGTERM.
    { ref: PAUSE_IMAGE, platforms: image({ Entrypoint: ['/bin/sh', '-c', "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"] }) },
    { ref: BUSYBOX_IMAGE, platforms: image({ Cmd: ['/bin/sh'] }) },
  ]);
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { out: { type: 'string' } } });
  const out = values.out ?? join(process.cwd(), '.tether', 'images');
  mkdirSync(out, { recursive: true });
  const { archive } = testImagesArchive();
  const file = join(out, 'test-images.oci.tar');
  writeFileSync(file, archive);
  console.log(file);
}
