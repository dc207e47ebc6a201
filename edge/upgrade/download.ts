/**
 * Release files of an upgrade, fetched to disk: from the release location itself, or through
 * tether-hub when the node cannot reach it. Nothing here is trusted for content: the upgrader
 * checks SHA256SUMS.sig with the pinned release key and every file against SHA256SUMS
 * (docs/security.md); this module only gets the bytes there and says what their sha256 is.
 *
 * Contract of `download(o)`:
 * - The file goes to `<dir>/downloads/<upgrade>/<file>.part` while it arrives and is renamed to
 *   `<dir>/downloads/<upgrade>/<file>` when complete (the returned path; the caller owns it then). The sha256
 *   is computed while writing; a part left by an earlier call is hashed first and resumed.
 * - Resume: `<file>.part.json` keeps the URL and the validator the origin gave first (a strong
 *   ETag, else Last-Modified). The next request asks `Range: bytes=<have>-` with `If-Range:
 *   <validator>`; a 206 at that offset appends, a 200 (the file changed, or no ranges) restarts
 *   from zero, a 416 drops the part and restarts. Without a validator a part is never resumed.
 *   Within one call a transfer cut after some bytes arrived is resumed up to `retries` times.
 * - Routes: direct first (http only when the URL is http; TLS with `caFile`, else the system CAs;
 *   redirects are not followed). When the direct request fails to connect (refused, unreachable,
 *   DNS, or no answer within `connectTimeoutMs`) and `hub` is given, the request and every resume
 *   after it go through the hub (`/tether/v1/artifacts/<upgrade>/<file>`, cloud/tunnel/artifacts.ts),
 *   which passes the origin's validators on, so a part begun directly resumes through the hub.
 *   An HTTP answer from the origin (404, 500 …) is final: the hub is not asked.
 * - Limits: `maxBytes` (default 512 MiB) is checked against the announced size and the bytes
 *   received (the part is removed); no byte for `idleTimeoutMs` cuts the transfer (the part stays).
 * - Every failure is a DownloadError whose message names the file, the route and the cause;
 *   `reason` sorts them for the caller's retry decision. An abort (`signal`) keeps the part.
 *
 * `removeDownloads(dir, keep?)` removes what downloads left under `<dir>/downloads` (parts of
 * abandoned upgrades, a file that failed verification), except the folder of upgrade `keep`.
 *
 * `fetchSmall(o)` is the same routing for the small files (SHA256SUMS, its signature, VERSION),
 * into memory, never resumed, at most `maxBytes`.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';

/** The hub's path for a release file (cloud/tunnel/artifacts.ts ARTIFACTS_PREFIX). */
export const HUB_ARTIFACTS_PREFIX = '/tether/v1/artifacts/';

export interface HubResponse {
  status: number;
  headers: Record<string, string>;
  body: NodeJS.ReadableStream;
}
/** GET <path> over the node's tunnel to tether-hub; resolves with the response (hub-fetch.ts makes one). */
export type HubFetch = (path: string, headers: Record<string, string>) => Promise<HubResponse>;

export interface DownloadOptions {
  /** Where the release files are, e.g. https://releases.example.com/tether/0.2.0. */
  baseURL: string;
  file: string;
  dir: string;
  /** The EdgeUpgrade's name: the hub's path, and the folder under <dir>/downloads. */
  upgrade: string;
  /** CA bundle for an https baseURL (default: the system CAs). */
  caFile?: string;
  hub?: HubFetch;
  signal?: AbortSignal;
  maxBytes?: number;
  /** Direct: connect and get the answer's head within this (default 10 s), or the origin counts as unreachable. */
  connectTimeoutMs?: number;
  /** No byte (or no answer through the hub) for this long cuts the transfer (default 30 s). */
  idleTimeoutMs?: number;
  /** Resumes within one call after a cut that made progress (default 3). */
  retries?: number;
}

export type DownloadFailure = 'unreachable' | 'http' | 'too-large' | 'cut' | 'bad-response' | 'aborted' | 'bad-request' | 'io';

export class DownloadError extends TetherError {
  constructor(
    message: string,
    /** unreachable, cut: try again later; http: the origin's (or hub's) answer, see status; the rest: not worth a retry as is. */
    readonly reason: DownloadFailure,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(reason === 'bad-request' ? ErrorCode.BadRequest : reason === 'io' ? ErrorCode.Internal : ErrorCode.UpstreamUnavailable, message, options);
  }
}

const DEFAULT_MAX_BYTES = 512 * 1024 * 1024;
const USER_AGENT = 'tether-edge-upgrader';
// The hub's rule for names is stricter (cloud/tunnel/artifacts.ts); this only keeps paths inside dir.
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const UPGRADE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Connect failures: the node cannot reach the origin, so the hub may. Node's codes and Bun's. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'ConnectionRefused', 'ConnectionClosed', 'FailedToOpenSocket']);

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Readable;
}

type Via = 'direct' | 'hub';

interface Target {
  url: URL;
  file: string;
  upgrade: string;
}

function check(o: Omit<DownloadOptions, 'dir'>): Target {
  if (!FILE_NAME.test(o.file) || o.file.includes('..')) throw new DownloadError(`download ${JSON.stringify(o.file)}: not a release file name`, 'bad-request');
  if (!UPGRADE_NAME.test(o.upgrade) || o.upgrade.length > 253) throw new DownloadError(`download ${o.file}: upgrade name ${JSON.stringify(o.upgrade)} is not a valid object name`, 'bad-request');
  let url: URL;
  try {
    url = new URL(`${o.baseURL.replace(/\/+$/, '')}/${o.file}`);
  } catch (e) {
    throw new DownloadError(`download ${o.file}: baseURL ${JSON.stringify(o.baseURL)} is not a URL`, 'bad-request', undefined, { cause: e });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new DownloadError(`download ${o.file}: baseURL must be https (or http), not ${url.protocol}`, 'bad-request');
  return { url, file: o.file, upgrade: o.upgrade };
}

function flatHeaders(h: http.IncomingHttpHeaders | Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : String(v);
  return out;
}

function errorCode(e: unknown): string | undefined {
  for (let x: unknown = e, i = 0; x && i < 4; x = (x as { cause?: unknown }).cause, i++) {
    const code = (x as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string, onTimeout: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(Object.assign(new Error(`${what}: no answer in ${ms} ms`), { code: 'ETIMEDOUT' }));
    }, ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** One GET of the origin; resolves at the answer's head. */
function directGet(url: URL, headers: Record<string, string>, agent: http.Agent | undefined, timeoutMs: number): Promise<Answer> {
  const client = url.protocol === 'https:' ? https : http;
  const req = client.request(url, { method: 'GET', headers, ...(agent ? { agent } : {}) });
  const answer = new Promise<Answer>((resolve, reject) => {
    req.once('response', (res) => resolve({ status: res.statusCode ?? 0, headers: flatHeaders(res.headers), body: res }));
    req.once('error', reject);
  });
  req.on('error', () => {}); // after the head, failures surface on the body
  req.end();
  return withTimeout(answer, timeoutMs, `GET ${url.href}`, () => req.destroy());
}

/** Where one file is fetched from: direct until a connect failure moves it to the hub for good. */
class Routes {
  via: Via = 'direct';
  private readonly agent: http.Agent | undefined;
  constructor(
    private readonly t: Target,
    private readonly o: Omit<DownloadOptions, 'dir'>,
  ) {
    if (t.url.protocol === 'https:' && o.caFile) {
      let ca: Buffer;
      try {
        ca = readFileSync(o.caFile);
      } catch (e) {
        throw new DownloadError(`download ${t.file}: read caFile ${o.caFile}: ${messageOf(e)}`, 'bad-request', undefined, { cause: e });
      }
      this.agent = new https.Agent({ ca, keepAlive: false });
    }
  }

  async get(headers: Record<string, string>): Promise<Answer> {
    if (this.via === 'direct') {
      try {
        return await directGet(this.t.url, headers, this.agent, this.o.connectTimeoutMs ?? 10_000);
      } catch (e) {
        const code = errorCode(e);
        if (!this.o.hub || !code || !UNREACHABLE.has(code)) {
          throw new DownloadError(`download ${this.t.url.href}: ${messageOf(e)}`, code && UNREACHABLE.has(code) ? 'unreachable' : 'bad-response', undefined, { cause: e });
        }
        this.via = 'hub';
      }
    }
    const path = `${HUB_ARTIFACTS_PREFIX}${this.t.upgrade}/${this.t.file}`;
    try {
      const r = await withTimeout(this.o.hub!(path, headers), this.o.idleTimeoutMs ?? 30_000, `GET ${path} through the hub`, () => {});
      return { status: r.status, headers: flatHeaders(r.headers), body: r.body as Readable };
    } catch (e) {
      throw new DownloadError(`download ${this.t.file} through the hub (${this.t.url.host} is unreachable from this node): ${messageOf(e)}`, 'unreachable', undefined, { cause: e });
    }
  }

  where(): string {
    return this.via === 'hub' ? `${this.t.file} through the hub` : this.t.url.href;
  }
}

/** Reads what is left of an answer we do not use (at most 4 KiB), for the error message. */
async function drain(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of body) {
      chunks.push(c as Buffer);
      n += (c as Buffer).length;
      if (n >= 4096) break;
    }
  } catch {
    // the error is about the status, not the body
  }
  body.destroy();
  const text = Buffer.concat(chunks).toString('utf8').slice(0, 4096);
  try {
    const s = JSON.parse(text) as { kind?: string; message?: string };
    if (s.kind === 'Status' && s.message) return s.message;
  } catch {
    // not a Status
  }
  return '';
}

async function httpError(routes: Routes, a: Answer): Promise<DownloadError> {
  const detail = await drain(a.body);
  const text = `${a.status} ${http.STATUS_CODES[a.status] ?? ''}`.trim();
  return new DownloadError(`download ${routes.where()}: HTTP ${text}${detail ? `: ${detail}` : ''}`, 'http', a.status);
}

function encodingError(routes: Routes, a: Answer): DownloadError | undefined {
  const enc = a.headers['content-encoding'];
  if (enc && enc !== 'identity') return new DownloadError(`download ${routes.where()}: the answer is ${enc}-encoded; asked for identity`, 'bad-response');
  return undefined;
}

/** Streams `body` through `sink` (hash and file), cutting it after `idleMs` without a byte or on abort. */
async function receive(body: Readable, idleMs: number, signal: AbortSignal | undefined, sink: (chunk: Buffer) => Promise<void>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => body.destroy(Object.assign(new Error(`no data for ${idleMs} ms`), { code: 'ETIMEDOUT' })), idleMs);
  };
  const onAbort = () => body.destroy(new DownloadError('download aborted', 'aborted'));
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    arm();
    for await (const chunk of body) {
      arm();
      await sink(chunk as Buffer);
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

const limitError = (routes: Routes, limit: number, what: string) => new DownloadError(`download ${routes.where()}: ${what} is more than the limit of ${limit} bytes`, 'too-large');

interface PartMeta {
  url: string;
  validator?: string;
}

async function readMeta(path: string): Promise<PartMeta | undefined> {
  try {
    const m = JSON.parse(await readFile(path, 'utf8')) as PartMeta;
    return typeof m.url === 'string' ? m : undefined;
  } catch {
    return undefined;
  }
}

/** A strong ETag or Last-Modified: what If-Range may carry (RFC 9110 13.1.5: weak tags never match). */
function validatorOf(h: Record<string, string>): string | undefined {
  const etag = h.etag;
  if (etag && !etag.startsWith('W/')) return etag;
  return h['last-modified'];
}

function contentRange(v: string | undefined): { start: number; end: number; total?: number } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(v ?? '');
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), ...(m[3] !== '*' ? { total: Number(m[3]) } : {}) };
}

async function hashFile(path: string, hash: Hash): Promise<number> {
  let n = 0;
  for await (const c of createReadStream(path)) {
    hash.update(c as Buffer);
    n += (c as Buffer).length;
  }
  return n;
}

export async function download(o: DownloadOptions): Promise<{ path: string; bytes: number; sha256: string; via: Via }> {
  const t = check(o);
  const limit = o.maxBytes ?? DEFAULT_MAX_BYTES;
  const idleMs = o.idleTimeoutMs ?? 30_000;
  const retries = o.retries ?? 3;
  // A folder of its own: dir is also the install's (releases/, known-good, state.json), and an upgrade may be named like those.
  const folder = join(o.dir, 'downloads', t.upgrade);
  const final = join(folder, t.file);
  const part = `${final}.part`;
  const metaFile = `${part}.json`;
  const io = async <T>(step: string, f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      throw new DownloadError(`download ${t.file}: ${step}: ${messageOf(e)}`, 'io', undefined, { cause: e });
    }
  };
  const routes = new Routes(t, o);
  await io(`create ${folder}`, () => mkdir(folder, { recursive: true, mode: 0o700 }));

  // What an earlier call left: resumed only with its validator and for the same URL.
  let hash = createHash('sha256');
  let have = 0;
  let meta = await readMeta(metaFile);
  if (meta?.url === t.url.href && meta.validator) {
    have = await hashFile(part, hash).catch(() => 0);
    if (have > limit) have = 0;
    if (have === 0) hash = createHash('sha256');
  } else meta = undefined;
  const fh: FileHandle = await io(`open ${part}`, () => open(part, have > 0 ? 'r+' : 'w', 0o600));
  let done = false;
  try {
    const restart = async () => {
      await fh.truncate(0);
      have = 0;
      hash = createHash('sha256');
    };
    let resumes = 0;
    for (;;) {
      const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': USER_AGENT };
      if (have > 0 && meta?.validator) Object.assign(headers, { range: `bytes=${have}-`, 'if-range': meta.validator });
      const a = await routes.get(headers);
      let total: number | undefined;
      if (a.status === 206 && have > 0) {
        const cr = contentRange(a.headers['content-range']);
        if (!cr || cr.start !== have) {
          await drain(a.body);
          throw new DownloadError(`download ${routes.where()}: asked for bytes from ${have}, got Content-Range ${JSON.stringify(a.headers['content-range'] ?? '')}`, 'bad-response');
        }
        total = cr.total ?? cr.end + 1;
      } else if (a.status === 200) {
        if (have > 0) await io(`truncate ${part}`, restart);
        const len = a.headers['content-length'];
        total = len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined;
        meta = { url: t.url.href, ...(validatorOf(a.headers) ? { validator: validatorOf(a.headers)! } : {}) };
        await io(`write ${metaFile}`, () => writeFile(metaFile, JSON.stringify(meta), { mode: 0o600 }));
      } else if (a.status === 416 && have > 0 && resumes < retries) {
        // The origin's file is shorter than our part: it is not the same file.
        await drain(a.body);
        await io(`truncate ${part}`, restart);
        meta = undefined;
        resumes++;
        continue;
      } else throw await httpError(routes, a);
      const bad = encodingError(routes, a);
      if (bad) {
        await drain(a.body);
        throw bad;
      }
      if (total !== undefined && total > limit) {
        await drain(a.body);
        await rm(part, { force: true });
        await rm(metaFile, { force: true });
        throw limitError(routes, limit, `the file (${total} bytes)`);
      }
      const before = have;
      let cut: unknown;
      try {
        await receive(a.body, idleMs, o.signal, async (chunk) => {
          if (have + chunk.length > limit) throw limitError(routes, limit, 'the answer');
          await fh.write(chunk, 0, chunk.length, have);
          hash.update(chunk);
          have += chunk.length;
        });
        if (total !== undefined && have < total) cut = new Error(`the answer ended after ${have} of ${total} bytes`);
      } catch (e) {
        if (e instanceof DownloadError && e.reason === 'too-large') {
          await rm(part, { force: true });
          await rm(metaFile, { force: true });
          throw e;
        }
        if (o.signal?.aborted) throw new DownloadError(`download ${routes.where()}: aborted after ${have} bytes (kept for a resume)`, 'aborted', undefined, { cause: e });
        cut = e;
      }
      if (cut === undefined) {
        if (total !== undefined && have > total) throw new DownloadError(`download ${routes.where()}: got ${have} bytes, ${total} announced`, 'bad-response');
        break;
      }
      if (have > before && resumes < retries && meta?.validator) {
        resumes++;
        continue;
      }
      throw new DownloadError(`download ${routes.where()}: cut after ${have} bytes${total !== undefined ? ` of ${total}` : ''}: ${messageOf(cut)}${meta?.validator ? ' (kept for a resume)' : ''}`, 'cut', undefined, { cause: cut });
    }
    await io(`sync ${part}`, () => fh.sync());
    done = true;
  } finally {
    await fh.close().catch(() => {});
  }
  if (!done) throw new DownloadError(`download ${t.file}: not finished`, 'io');
  await io(`rename ${part}`, () => rename(part, final));
  await rm(metaFile, { force: true });
  return { path: final, bytes: have, sha256: hash.digest('hex'), via: routes.via };
}

export async function fetchSmall(o: Omit<DownloadOptions, 'dir'> & { maxBytes: number }): Promise<{ body: Buffer; via: Via }> {
  const t = check(o);
  const routes = new Routes(t, o);
  const a = await routes.get({ 'accept-encoding': 'identity', 'user-agent': USER_AGENT });
  if (a.status !== 200) throw await httpError(routes, a);
  const bad = encodingError(routes, a);
  const len = a.headers['content-length'];
  if (!bad && len !== undefined && Number(len) > o.maxBytes) {
    await drain(a.body);
    throw limitError(routes, o.maxBytes, `the file (${len} bytes)`);
  }
  if (bad) {
    await drain(a.body);
    throw bad;
  }
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    await receive(a.body, o.idleTimeoutMs ?? 30_000, o.signal, async (chunk) => {
      n += chunk.length;
      if (n > o.maxBytes) throw limitError(routes, o.maxBytes, 'the answer');
      chunks.push(chunk);
    });
  } catch (e) {
    if (e instanceof DownloadError) throw e;
    throw new DownloadError(`download ${routes.where()}: cut after ${n} bytes: ${messageOf(e)}`, o.signal?.aborted ? 'aborted' : 'cut', undefined, { cause: e });
  }
  if (len !== undefined && /^\d+$/.test(len) && n !== Number(len)) throw new DownloadError(`download ${routes.where()}: got ${n} of ${len} bytes`, 'cut');
  return { body: Buffer.concat(chunks), via: routes.via };
}

export async function removeDownloads(dir: string, keep?: string): Promise<void> {
  const root = join(dir, 'downloads');
  const names = await readdir(root).catch(() => [] as string[]);
  for (const name of names) if (name !== keep) await rm(join(root, name), { recursive: true, force: true });
}
