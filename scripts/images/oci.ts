/**
 * OCI image layouts, written without a daemon: one tar archive holding `oci-layout`, `index.json`
 * and `blobs/sha256/…`, as `ctr images import` and skopeo's `oci-archive:` read. Reproducible:
 * the same inputs give the same bytes and digests (no timestamps anywhere, layers from tar.ts,
 * gzip with a zero mtime, blobs in digest order, JSON keys in the order written here).
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { tar, type TarEntry } from './tar.ts';

export interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  User?: string;
  WorkingDir?: string;
  Labels?: Record<string, string>;
}

export interface PlatformImage {
  architecture: 'amd64' | 'arm64' | 'arm';
  variant?: string;
  /** Uncompressed layer tars, bottom first. */
  layers: Buffer[];
  config: ImageConfig;
  /**
   * Store the layers gzipped (what registries and release images carry; the test images stay plain
   * tar). The gzip header has no mtime or name, so the same tar gives the same blob on every build
   * with the same zlib.
   */
  gzip?: boolean;
}

export interface Image {
  /** e.g. "tether.local/busybox:1" */
  ref: string;
  /** One entry: index.json names the manifest (unless `index`); several: it names an image index of them (multi-arch). */
  platforms: PlatformImage[];
  /** Annotations of the image's manifest or index (e.g. org.opencontainers.image.version). */
  annotations?: Record<string, string>;
  /** An image index even for one platform (release images: the digest always names an index). */
  index?: boolean;
}

const MEDIA = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
};

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
  annotations?: Record<string, string>;
}

/** One image of an archive: its digest, and the bytes of the blob that digest names (its index, or its manifest). */
export interface ArchivedImage {
  ref: string;
  digest: string;
  top: Buffer;
}

/** Builds the layout; returns the archive and the top descriptor of each image (its digest is the image's). */
export function ociArchive(images: Image[]): { archive: Buffer; images: ArchivedImage[] } {
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
    const annotations = image.annotations && Object.keys(image.annotations).length ? { annotations: image.annotations } : {};
    const manifests = image.platforms.map((p) => {
      // The config names each layer by the digest of its uncompressed tar (diff_id); the manifest by its blob's.
      const diffIds = p.layers.map((l) => sha256(l));
      const layers = p.layers.map((l) => (p.gzip ? put(MEDIA.layerGzip, gzipSync(l, { level: 9 })) : put(MEDIA.layer, l)));
      const platform = { architecture: p.architecture, os: 'linux', ...(p.variant ? { variant: p.variant } : {}) };
      const config = put(MEDIA.config, json({ ...platform, config: p.config, rootfs: { type: 'layers', diff_ids: diffIds } }));
      const m = put(MEDIA.manifest, json({ schemaVersion: 2, mediaType: MEDIA.manifest, config, layers, ...annotations }));
      return { ...m, platform };
    });
    const top =
      manifests.length === 1 && !image.index
        ? { mediaType: MEDIA.manifest, digest: manifests[0]!.digest, size: manifests[0]!.size, platform: manifests[0]!.platform }
        : put(MEDIA.index, json({ schemaVersion: 2, mediaType: MEDIA.index, manifests, ...annotations }));
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
  return { archive: tar(entries), images: tops.map((t, i) => ({ ref: images[i]!.ref, digest: t.digest, top: blobs.get(t.digest)! })) };
}
