/**
 * OCI image layouts, written without a daemon: one tar archive holding `oci-layout`, `index.json`
 * and `blobs/sha256/…`, as `ctr images import` and skopeo's `oci-archive:` read. Reproducible:
 * the same inputs give the same bytes and digests (no timestamps anywhere, layers from tar.ts).
 */
import { createHash } from 'node:crypto';
import { tar, type TarEntry } from './tar.ts';

export interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  User?: string;
  WorkingDir?: string;
}

export interface PlatformImage {
  architecture: 'amd64' | 'arm64' | 'arm';
  variant?: string;
  /** Uncompressed layer tars, bottom first. */
  layers: Buffer[];
  config: ImageConfig;
}

export interface Image {
  /** e.g. "tether.local/busybox:1" */
  ref: string;
  /** One entry: index.json names the manifest; several: it names an image index of them (multi-arch). */
  platforms: PlatformImage[];
}

const MEDIA = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
};

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
  annotations?: Record<string, string>;
}

/** Builds the layout; returns the archive and the top descriptor of each image (its digest is the image's). */
export function ociArchive(images: Image[]): { archive: Buffer; images: { ref: string; digest: string }[] } {
  const blobs = new Map<string, Buffer>();
  const put = (mediaType: string, body: Buffer): Descriptor => {
    const digest = sha256(body);
    blobs.set(digest, body);
    return { mediaType, digest, size: body.length };
  };
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));

  const tops: Descriptor[] = [];
  for (const image of images) {
    if (image.platforms.length === 0) throw new Error(`oci: ${image.ref} has no platform`);
    const manifests = image.platforms.map((p) => {
      const layers = p.layers.map((l) => put(MEDIA.layer, l));
      const platform = { architecture: p.architecture, os: 'linux', ...(p.variant ? { variant: p.variant } : {}) };
      const config = put(
        MEDIA.config,
        json({ ...platform, config: p.config, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } }),
      );
      const m = put(MEDIA.manifest, json({ schemaVersion: 2, mediaType: MEDIA.manifest, config, layers }));
      return { ...m, platform };
    });
    const top =
      manifests.length === 1
        ? { mediaType: MEDIA.manifest, digest: manifests[0]!.digest, size: manifests[0]!.size, platform: manifests[0]!.platform }
        : put(MEDIA.index, json({ schemaVersion: 2, mediaType: MEDIA.index, manifests }));
    tops.push({
      ...top,
      annotations: { 'io.containerd.image.name': image.ref, 'org.opencontainers.image.ref.name': image.ref },
    });
  }

  const entries: TarEntry[] = [
    { type: 'file', path: 'oci-layout', data: json({ imageLayoutVersion: '1.0.0' }) },
    { type: 'file', path: 'index.json', data: json({ schemaVersion: 2, mediaType: MEDIA.index, manifests: tops }) },
    { type: 'dir', path: 'blobs' },
    { type: 'dir', path: 'blobs/sha256' },
    ...[...blobs.keys()].sort().map((d): TarEntry => ({ type: 'file', path: `blobs/sha256/${d.slice(7)}`, data: blobs.get(d)! })),
  ];
  return { archive: tar(entries), images: tops.map((t, i) => ({ ref: images[i]!.ref, digest: t.digest })) };
}
