/**
 * The compressed release binary (`<artifact>.gz`, listed in the signed SHA256SUMS beside the binary
 * itself) inflated to a file beside it, hashing what comes out: the caller checks the .gz against its
 * line before this runs (never inflate unverified input) and the result against the binary's line
 * after. Half the bytes of the raw binary over a metered link (docs/install.md); node:zlib only.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, fsyncSync, openSync, closeSync, rmSync } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

export async function inflateTo(src: string, dest: string, maxBytes: number, signal?: AbortSignal): Promise<{ path: string; bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      if (bytes > maxBytes) return done(new Error(`inflated past ${maxBytes} bytes`));
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(createReadStream(src), createGunzip(), count, createWriteStream(dest, { mode: 0o700 }), { signal });
    const fd = openSync(dest, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    rmSync(dest, { force: true });
    throw e;
  }
  return { path: dest, bytes, sha256: hash.digest('hex') };
}
