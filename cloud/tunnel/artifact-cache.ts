/**
 * The hub's disk copy of release files, one per (EdgeUpgrade uid, file), so that N nodes fetching
 * the same file cost its origin one download per hub replica.
 *
 * Layout under `dir` (artifactCacheDir): `<uid>/<file>` a complete copy, `<uid>/<file>.json` its
 * size and the origin's validators (written before the rename that completes the copy), and
 * `<uid>/<file>.part` while it arrives. At start, complete copies are kept and parts removed.
 *
 * Contract:
 * - `open(uid, file, url)` resolves once the file's size is known: at once for a copy on disk;
 *   otherwise one GET of `url` (artifact-origin.ts) is started, shared by every caller, and it
 *   resolves at the origin's head (Content-Length), or at the end when the origin gives none.
 *   Readers (`read(start, end)`) stream from the copy while it is still being written, waiting for
 *   bytes not there yet, so the first node does not wait for the whole file.
 * - Only a 200 with an identity body is cached. Any failure (origin status, network, idle for
 *   `idleTimeoutMs`, fewer bytes than announced) rejects the callers waiting for the head, cuts
 *   readers at the bytes written so far, removes the part and forgets the entry: the next open
 *   tries the origin again (the nodes retry with Range).
 * - Size cap `maxBytes`: before a file is fetched (or while one of unknown size grows) copies no one
 *   reads are removed, least recently opened first; when that is not enough the fetch is refused
 *   (CacheFullError). The hub never trusts these bytes and neither does anyone else: the agent
 *   checks the release signature and the checksums (docs/security.md).
 */
import { type FileHandle, mkdir, open, readFile, readdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { type FetchOrigin, OriginError } from './artifact-origin.ts';

export interface ArtifactInfo {
  size: number;
  /** The origin's validators, passed on so a node's resume works across direct and relayed requests. */
  etag?: string;
  lastModified?: string;
}

export interface Artifact {
  info: ArtifactInfo;
  /** Bytes start..end (inclusive) of the file. */
  read(start: number, end: number): Readable;
}

export interface ArtifactCacheOptions {
  dir: string;
  maxBytes: number;
  fetch: FetchOrigin;
  /** No byte from the origin for this long fails the fetch. */
  idleTimeoutMs: number;
  log: Logger;
}

export interface ArtifactCache {
  open(uid: string, file: string, url: URL): Promise<Artifact>;
  /** Bytes held or reserved (complete copies and fetches in progress). */
  readonly bytes: number;
  close(): void;
}

export class CacheFullError extends Error {}

interface Entry {
  key: string;
  path: string;
  info?: ArtifactInfo;
  /** Bytes counted against the cap: the announced size, or what arrived so far. */
  size: number;
  written: number;
  done: boolean;
  failed?: Error;
  readers: number;
  lastUsed: number;
  ready: Promise<void>;
  /** Resolves on the next write, the end, or the failure. */
  changed: Promise<void>;
  wake(): void;
  stop?(): void;
}

const UID = /^[A-Za-z0-9-]{1,128}$/;

function entry(key: string, path: string): Entry {
  let wake!: () => void;
  const e: Entry = {
    key,
    path,
    size: 0,
    written: 0,
    done: false,
    readers: 0,
    lastUsed: Date.now(),
    ready: Promise.resolve(),
    changed: new Promise<void>((r) => (wake = r)),
    wake: () => {
      const w = wake;
      e.changed = new Promise<void>((r) => (wake = r));
      w();
    },
  };
  return e;
}

/** Streams bytes of an entry from its file, waiting for the writer when it reads faster. */
class EntryReader extends Readable {
  private fh: FileHandle | undefined;
  private pos: number;
  constructor(
    private readonly e: Entry,
    start: number,
    private readonly end: number,
  ) {
    // Small: hundreds of nodes may read at once, and the tunnel stream buffers its own window.
    super({ highWaterMark: 64 * 1024 });
    this.pos = start;
    e.readers++;
  }

  private async handle(): Promise<FileHandle> {
    if (this.fh) return this.fh;
    try {
      this.fh = await open(this.e.path, 'r');
    } catch (err) {
      // The part was renamed to the complete copy between the two lines above: open that.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.fh = await open(this.e.path, 'r');
    }
    return this.fh;
  }

  override _read(): void {
    void this.next().catch((err) => this.destroy(err as Error));
  }

  private async next(): Promise<void> {
    for (;;) {
      if (this.pos > this.end) return void this.push(null);
      const avail = Math.min(this.e.written, this.end + 1) - this.pos;
      if (avail > 0) {
        const fh = await this.handle();
        const buf = Buffer.allocUnsafe(Math.min(avail, 64 * 1024));
        const { bytesRead } = await fh.read(buf, 0, buf.length, this.pos);
        if (bytesRead === 0) throw new Error(`artifact ${this.e.key}: the copy ends at ${this.pos} bytes`);
        this.pos += bytesRead;
        this.push(buf.subarray(0, bytesRead));
        return;
      }
      if (this.e.failed) throw this.e.failed;
      if (this.e.done) throw new Error(`artifact ${this.e.key}: asked for bytes up to ${this.end}, the file has ${this.e.written}`);
      await this.e.changed;
    }
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.e.readers--;
    const fh = this.fh;
    this.fh = undefined;
    if (fh) fh.close().then(() => cb(err), () => cb(err));
    else cb(err);
  }
}

export function createArtifactCache(o: ArtifactCacheOptions): ArtifactCache {
  const { log } = o;
  const entries = new Map<string, Entry>();
  let loading: Promise<void> | undefined;
  const used = (except?: Entry) => {
    let n = 0;
    for (const e of entries.values()) if (e !== except) n += e.size;
    return n;
  };

  /** Complete copies left by an earlier run are served again; parts are removed. */
  const load = async () => {
    await mkdir(o.dir, { recursive: true, mode: 0o700 });
    for (const uid of await readdir(o.dir)) {
      const folder = join(o.dir, uid);
      if (!UID.test(uid) || !(await stat(folder)).isDirectory()) continue;
      for (const name of await readdir(folder)) {
        if (name.endsWith('.part')) await rm(join(folder, name), { force: true });
        if (!name.endsWith('.json')) continue;
        const file = name.slice(0, -'.json'.length);
        try {
          const info = JSON.parse(await readFile(join(folder, name), 'utf8')) as ArtifactInfo;
          const size = (await stat(join(folder, file))).size;
          if (size !== info.size) throw new Error(`size ${size}, ${info.size} recorded`);
          const e = entry(`${uid}/${file}`, join(folder, file));
          Object.assign(e, { info, size, written: size, done: true });
          entries.set(e.key, e);
        } catch (err) {
          log.warn('artifact cache: a copy left by an earlier run is unusable; removed', { file: join(folder, file), error: messageOf(err) });
          await rm(join(folder, file), { force: true });
          await rm(join(folder, name), { force: true });
        }
      }
    }
  };
  const loaded = () =>
    (loading ??= load().catch((err) => {
      loading = undefined;
      throw new Error(`artifact cache ${o.dir}: ${messageOf(err)}`, { cause: err });
    }));

  const evict = (e: Entry) => {
    entries.delete(e.key);
    log.info('artifact cache: copy removed to make room', { artifact: e.key, bytes: e.size });
    void rm(e.path, { force: true })
      .then(() => rm(`${e.path}.json`, { force: true }))
      .then(() => rmdir(join(e.path, '..')))
      .catch(() => {});
  };

  /** Frees room for `more` bytes beside `e`, or throws CacheFullError. */
  const makeRoom = (e: Entry, more: number) => {
    if (more > o.maxBytes) throw new CacheFullError(`the file is ${more} bytes, more than the hub's artifact cache holds (artifactCacheBytes ${o.maxBytes})`);
    const idle = [...entries.values()].filter((x) => x !== e && x.done && x.readers === 0).sort((a, b) => a.lastUsed - b.lastUsed);
    while (used(e) + more > o.maxBytes) {
      const victim = idle.shift();
      if (!victim) throw new CacheFullError(`the hub's artifact cache (artifactCacheBytes ${o.maxBytes}) is full of files being fetched or read; ${more} more bytes do not fit`);
      evict(victim);
    }
  };

  const fetchInto = async (e: Entry, url: URL, resolveReady: () => void) => {
    const part = `${e.path}.part`;
    let fh: FileHandle | undefined;
    let body: Readable | undefined;
    e.stop = () => body?.destroy(new Error('the hub is stopping'));
    try {
      const a = await o.fetch(url);
      body = a.body;
      if (a.status !== 200) {
        a.body.resume();
        throw new OriginError(`GET ${url.href}: the origin answered ${a.status} ${a.body.statusMessage ?? ''}`.trim(), a.status);
      }
      const enc = a.headers['content-encoding'];
      if (enc && enc !== 'identity') throw new OriginError(`GET ${url.href}: the origin sent a ${enc}-encoded answer; asked for identity`);
      const len = a.headers['content-length'];
      const announced = len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined;
      const validators = {
        ...(typeof a.headers.etag === 'string' ? { etag: a.headers.etag } : {}),
        ...(typeof a.headers['last-modified'] === 'string' ? { lastModified: a.headers['last-modified'] } : {}),
      };
      if (announced !== undefined) {
        makeRoom(e, announced);
        e.size = announced;
      }
      await mkdir(join(e.path, '..'), { recursive: true, mode: 0o700 });
      fh = await open(part, 'w', 0o600);
      e.path = part;
      if (announced !== undefined) {
        e.info = { size: announced, ...validators };
        resolveReady();
      }
      let idle: ReturnType<typeof setTimeout> | undefined;
      const arm = () => {
        clearTimeout(idle);
        idle = setTimeout(() => body!.destroy(new Error(`GET ${url.href}: no data from the origin for ${o.idleTimeoutMs} ms`)), o.idleTimeoutMs);
      };
      try {
        arm();
        for await (const chunk of body) {
          arm();
          const c = chunk as Buffer;
          if (announced !== undefined && e.written + c.length > announced) throw new OriginError(`GET ${url.href}: the origin sent more than the ${announced} bytes it announced`);
          if (announced === undefined) {
            makeRoom(e, e.written + c.length);
            e.size = e.written + c.length;
          }
          await fh.write(c, 0, c.length, e.written);
          e.written += c.length;
          e.wake();
        }
      } finally {
        clearTimeout(idle);
      }
      if (announced !== undefined && e.written !== announced) throw new OriginError(`GET ${url.href}: the answer ended after ${e.written} of ${announced} bytes`);
      await fh.sync();
      await fh.close();
      fh = undefined;
      e.info ??= { size: e.written, ...validators };
      const final = part.slice(0, -'.part'.length);
      await writeFile(`${final}.json`, JSON.stringify(e.info), { mode: 0o600 });
      await rename(part, final);
      e.path = final;
      e.done = true;
      e.stop = undefined;
      e.wake();
      resolveReady();
      log.info('artifact cached', { artifact: e.key, url: url.href, bytes: e.written });
    } catch (err) {
      e.failed = err instanceof Error ? err : new Error(String(err));
      e.stop = undefined;
      if (entries.get(e.key) === e) entries.delete(e.key);
      e.wake();
      await fh?.close().catch(() => {});
      await rm(part, { force: true });
      log.warn('artifact fetch failed', { artifact: e.key, url: url.href, bytes: e.written, error: messageOf(err) });
      throw e.failed;
    }
  };

  return {
    async open(uid, file, url) {
      if (!UID.test(uid)) throw new Error(`artifact cache: uid ${JSON.stringify(uid)} is not usable as a folder name`);
      await loaded();
      const key = `${uid}/${file}`;
      let e = entries.get(key);
      if (!e) {
        const made = entry(key, join(o.dir, uid, file));
        made.ready = new Promise<void>((resolve, reject) => void fetchInto(made, url, resolve).catch(reject));
        made.ready.catch(() => {});
        entries.set(key, made);
        e = made;
      }
      e.lastUsed = Date.now();
      const got = e;
      await got.ready;
      return { info: got.info!, read: (start, end) => new EntryReader(got, start, end) };
    },
    get bytes() {
      return used();
    },
    close() {
      for (const e of entries.values()) e.stop?.();
      o.fetch.close?.();
    },
  };
}
