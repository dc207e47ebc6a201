/**
 * The session's compression contexts: one raw-deflate context per direction, shared by every
 * compressed stream of the session, with context takeover across frames and streams (repeated
 * Kubernetes JSON — lease renewals, watch events — then costs a few bytes). Each ZDATA payload is
 * the deflate output of one chunk, ended with a sync flush, so the peer can inflate it at once.
 *
 * node:zlib's synchronous `_processChunk` closes the handle under Bun and Node, so both directions
 * use the stream API: write the chunk, flush(Z_SYNC_FLUSH), collect the output. Calls run one at a
 * time, in the order they were made (the order of the frames on the wire).
 *
 * Memory per session once a compressed stream carried data (zlib's own estimate):
 *   deflate ≈ 2^(windowBits+2) + 2^(memLevel+9) bytes, inflate ≈ 2^15 + ~7 KiB (it must accept
 *   the peer's window, whatever it is),
 *   plus one output chunk of each (16 KiB). Nothing is allocated before the first ZDATA.
 *
 * Inflation is bounded: output beyond `limit` for one frame stops it at once (the handle is
 * destroyed) and the call rejects; so does a corrupt stream. The context is shared, so either
 * ends the session.
 */
import { constants, createDeflateRaw, createInflateRaw, type DeflateRaw, type InflateRaw } from 'node:zlib';

export interface DeflateParams {
  /** 9…15: the history window, 2^windowBits bytes. */
  windowBits: number;
  /** 1…9: memory for the match state. */
  memLevel: number;
  /** 1…9. */
  level: number;
}

/** Measured on Kubernetes watch streams (docs/tunnel-protocol.md, "Compression"). */
export const DEFLATE_DEFAULTS: DeflateParams = { windowBits: 14, memLevel: 6, level: 6 };

/** Bytes of zlib state one session holds with these parameters (both directions). */
export function zlibMemoryBytes(p: DeflateParams): number {
  return 2 ** (p.windowBits + 2) + 2 ** (p.memLevel + 9) + 2 ** 15 + 7 * 1024 + 2 * 16 * 1024;
}

export interface Codec {
  /** Deflate one chunk; the result is one ZDATA payload. */
  deflate(data: Uint8Array): Promise<Uint8Array>;
  /** Inflate one ZDATA payload; rejects past `limit` output bytes or on corrupt input. */
  inflate(data: Uint8Array, limit: number): Promise<Uint8Array>;
  /** Free both contexts; pending calls reject. */
  close(): void;
  /** zlib handles open now (0…2). */
  readonly contexts: number;
}

interface Job {
  input: Uint8Array;
  limit: number;
  resolve: (b: Uint8Array) => void;
  reject: (e: Error) => void;
}

/** One direction: a lazily created zlib stream that runs one job at a time. */
function createLane(make: () => DeflateRaw | InflateRaw, what: string) {
  let z: DeflateRaw | InflateRaw | undefined;
  let closed = false;
  let current: Job | undefined;
  let out: Buffer[] = [];
  let outBytes = 0;
  const queue: Job[] = [];

  const fail = (err: Error) => {
    const job = current;
    current = undefined;
    z?.destroy();
    z = undefined;
    closed = true;
    job?.reject(err);
    for (const j of queue.splice(0)) j.reject(err);
  };

  const next = () => {
    if (current || closed) return;
    const job = queue.shift();
    if (!job) return;
    current = job;
    out = [];
    outBytes = 0;
    if (!z) {
      const zz = make();
      zz.on('data', (c: Buffer) => {
        if (zz !== z || !current) return;
        outBytes += c.length;
        if (outBytes > current.limit) return fail(new Error(`${what}: output of one frame exceeds ${current.limit} bytes`));
        out.push(c);
      });
      zz.on('error', (e: Error) => {
        if (zz === z) fail(new Error(`${what}: ${e.message}`));
      });
      z = zz;
    }
    const mine = z;
    mine.write(job.input);
    mine.flush(constants.Z_SYNC_FLUSH, () => {
      if (mine !== z || current !== job) return; // failed or closed meanwhile
      current = undefined;
      job.resolve(out.length === 1 ? out[0]! : Buffer.concat(out));
      next();
    });
  };

  return {
    run(input: Uint8Array, limit: number): Promise<Uint8Array> {
      return new Promise((resolve, reject) => {
        if (closed) return reject(new Error(`${what}: the context is closed`));
        queue.push({ input, limit, resolve, reject });
        next();
      });
    },
    close() {
      if (!closed) fail(new Error(`${what}: the context is closed`));
    },
    get open() {
      return z ? 1 : 0;
    },
  };
}

export function createCodec(p: DeflateParams = DEFLATE_DEFAULTS, dictionary?: Uint8Array): Codec {
  const dict = dictionary ? { dictionary } : {};
  const deflater = createLane(() => createDeflateRaw({ windowBits: p.windowBits, memLevel: p.memLevel, level: p.level, ...dict }), 'deflate');
  // The peer's window may be larger than ours: inflate always accepts the largest (15).
  const inflater = createLane(() => createInflateRaw({ windowBits: 15, ...dict }), 'inflate');
  return {
    deflate: (data) => deflater.run(data, Number.MAX_SAFE_INTEGER),
    inflate: (data, limit) => inflater.run(data, limit),
    close() {
      deflater.close();
      inflater.close();
    },
    get contexts() {
      return deflater.open + inflater.open;
    },
  };
}
