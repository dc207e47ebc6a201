/**
 * download() and fetchSmall() against real HTTP(S) servers on 127.0.0.1: resume after a cut,
 * a 200 instead of a 206, the size limit, HTTP errors, TLS with a CA file, and the hub as the way
 * out when the origin refuses connections.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTunnelTestPki } from '../../test/support/pki.ts';
import { DownloadError, type HubFetch, download, fetchSmall, removeDownloads } from './download.ts';

const FILE = 'tether-edge-linux-x64';
const data = randomBytes(600 * 1024);
const sha = createHash('sha256').update(data).digest('hex');

interface Behaviour {
  /** Destroy the connection after this many body bytes of the next answer (once). */
  cutAfter?: number;
  /** Send this many body bytes, then nothing more (the connection stays open). */
  stallAfter?: number;
  /** Never answer (the request hangs). */
  hang?: boolean;
  /** Ignore Range: always 200 with the whole file. */
  noRanges?: boolean;
  status?: number;
  etag?: string;
  content?: Buffer;
}
let b: Behaviour = {};
const seen: { url: string; range?: string; ifRange?: string }[] = [];

function handler(req: IncomingMessage, res: ServerResponse): void {
  seen.push({ url: req.url!, ...(req.headers.range ? { range: req.headers.range } : {}), ...(req.headers['if-range'] ? { ifRange: String(req.headers['if-range']) } : {}) });
  if (b.hang) return;
  if (b.status) return void res.writeHead(b.status, { 'content-type': 'text/plain' }).end('nope');
  const content = b.content ?? data;
  const etag = b.etag ?? '"v1"';
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  let start = 0;
  if (m && !b.noRanges && req.headers['if-range'] === etag) {
    start = Number(m[1]);
    if (start >= content.length) return void res.writeHead(416, { 'content-range': `bytes */${content.length}` }).end();
    res.writeHead(206, { etag, 'content-length': content.length - start, 'content-range': `bytes ${start}-${content.length - 1}/${content.length}` });
  } else res.writeHead(200, { etag, 'content-length': content.length, 'accept-ranges': 'bytes' });
  const body = content.subarray(start);
  if (b.stallAfter !== undefined) return void res.write(body.subarray(0, b.stallAfter));
  const cut = b.cutAfter;
  if (cut !== undefined) {
    b.cutAfter = undefined;
    res.write(body.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 20));
    return;
  }
  res.end(body);
}

let server: http.Server;
let base: string;
let refusedBase: string;
let dir: string;

beforeAll(async () => {
  server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/rel/0.2.0`;
  // A port nothing listens on: connections are refused.
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
  refusedBase = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/rel/0.2.0`;
  await new Promise<void>((r) => closed.close(() => r()));
});
afterAll(() => {
  server.close();
  server.closeAllConnections?.();
});
afterEach(() => {
  b = {};
  seen.length = 0;
  if (dir) rmSync(dir, { recursive: true, force: true });
});
const fresh = () => (dir = mkdtempSync(join(tmpdir(), 'tether-download-')));

/** A hub that serves from the same origin server (as the relay would), recording the paths it was asked. */
function fakeHub(paths: string[]): HubFetch {
  return (path, headers) =>
    new Promise((resolve, reject) => {
      paths.push(path);
      http
        .get(`${base}/${path.split('/').pop()}`, { headers }, (res) => resolve({ status: res.statusCode!, headers: res.headers as Record<string, string>, body: res }))
        .on('error', reject);
    });
}

describe('download', () => {
  test('fetches the whole file, with its size and sha256, to <dir>/downloads/<upgrade>/<file>', async () => {
    const r = await download({ baseURL: base, file: FILE, dir: fresh(), upgrade: 'up-1' });
    expect(r).toEqual({ path: join(dir, 'downloads', 'up-1', FILE), bytes: data.length, sha256: sha, via: 'direct' });
    expect(readFileSync(r.path).equals(data)).toBe(true);
    expect(existsSync(`${r.path}.part`)).toBe(false);
    expect(seen.map((s) => s.url)).toEqual([`/rel/0.2.0/${FILE}`]);
  });

  test('a transfer cut mid-file is resumed in the same call with Range and If-Range', async () => {
    b.cutAfter = 200 * 1024;
    const r = await download({ baseURL: base, file: FILE, dir: fresh(), upgrade: 'up-1' });
    expect(r.sha256).toBe(sha);
    expect(r.bytes).toBe(data.length);
    expect(seen.length).toBe(2);
    expect(seen[0]!.range).toBeUndefined();
    expect(seen[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(Number(/\d+/.exec(seen[1]!.range!)![0])).toBeGreaterThan(0);
    expect(seen[1]!.ifRange).toBe('"v1"');
  });

  test('with no retries the cut fails, the part stays, and the next call resumes it (hashing the part first)', async () => {
    b.cutAfter = 250 * 1024;
    const e = await download({ baseURL: base, file: FILE, dir: fresh(), upgrade: 'up-1', retries: 0 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DownloadError);
    expect((e as DownloadError).reason).toBe('cut');
    expect((e as Error).message).toContain('kept for a resume');
    const part = join(dir, 'downloads', 'up-1', `${FILE}.part`);
    const kept = statSync(part).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(data.length);
    const r = await download({ baseURL: base, file: FILE, dir, upgrade: 'up-1' });
    expect(r.sha256).toBe(sha);
    expect(readFileSync(r.path).equals(data)).toBe(true);
    expect(seen[1]!.range).toBe(`bytes=${kept}-`);
  });

  test('a 200 instead of a 206 restarts the file from zero', async () => {
    b.cutAfter = 100 * 1024;
    await download({ baseURL: base, file: FILE, dir: fresh(), upgrade: 'up-1', retries: 0 }).catch(() => {});
    b.noRanges = true;
    const r = await download({ baseURL: base, file: FILE, dir, upgrade: 'up-1' });
    expect(seen[1]!.range).toBeDefined();
    expect(r.bytes).toBe(data.length);
    expect(r.sha256).toBe(sha);
    expect(readFileSync(r.path).equals(data)).toBe(true);
  });

  test('a changed file (another ETag) is fetched whole, not glued to the old part', async () => {
    b.cutAfter = 100 * 1024;
    await download({ baseURL: base, file: FILE, dir: fresh(), upgrade: 'up-1', retries: 0 }).catch(() => {});
    const other = randomBytes(300 * 1024);
    b.content = other;
    b.etag = '"v2"';
    const r = await download({ baseURL: base, file: FILE, dir, upgrade: 'up-1' });
    expect(seen[1]!.ifRange).toBe('"v1"');
    expect(r.sha256).toBe(createHash('sha256').update(other).digest('hex'));
    expect(r.bytes).toBe(other.length);
  });

  test('a file over maxBytes is refused and its part removed', async () => {
    const e = await download({ baseURL: base, file: FILE, dir: fresh(), upgrade: 'up-1', maxBytes: 1000 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DownloadError);
    expect((e as DownloadError).reason).toBe('too-large');
    expect((e as Error).message).toContain(`the file (${data.length} bytes) is more than the limit of 1000 bytes`);
    expect(existsSync(join(dir, 'downloads', 'up-1', `${FILE}.part`))).toBe(false);
  });

  test('a 404 from the origin is an http error naming the URL, and the hub is not asked', async () => {
    b.status = 404;
    const paths: string[] = [];
    const e = await download({ baseURL: base, file: FILE, dir: fresh(), upgrade: 'up-1', hub: fakeHub(paths) }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DownloadError);
    expect((e as DownloadError).reason).toBe('http');
    expect((e as DownloadError).status).toBe(404);
    expect((e as Error).message).toBe(`download ${base}/${FILE}: HTTP 404 Not Found`);
    expect(paths).toEqual([]);
  });

  test('when the origin refuses connections, the file comes through the hub', async () => {
    const paths: string[] = [];
    const r = await download({ baseURL: refusedBase, file: FILE, dir: fresh(), upgrade: 'up-1', hub: fakeHub(paths) });
    expect(r.via).toBe('hub');
    expect(r.sha256).toBe(sha);
    expect(paths).toEqual([`/tether/v1/artifacts/up-1/${FILE}`]);
  });

  test('no byte for idleTimeoutMs cuts the transfer; the part is kept', async () => {
    b.stallAfter = 64 * 1024;
    const e = await download({ baseURL: base, file: FILE, dir: fresh(), upgrade: 'up-1', retries: 0, idleTimeoutMs: 300 }).catch((x: unknown) => x);
    expect((e as DownloadError).reason).toBe('cut');
    expect((e as Error).message).toContain('no data for 300 ms');
    expect(statSync(join(dir, 'downloads', 'up-1', `${FILE}.part`)).size).toBe(64 * 1024);
  });

  test('an origin that accepts but does not answer within connectTimeoutMs counts as unreachable: the hub is asked', async () => {
    b.hang = true;
    const paths: string[] = [];
    const hub = fakeHub(paths);
    const r = await download({ baseURL: base, file: FILE, dir: fresh(), upgrade: 'up-1', connectTimeoutMs: 300, hub: (p, h) => ((b.hang = false), hub(p, h)) });
    expect(r.via).toBe('hub');
    expect(r.sha256).toBe(sha);
    expect(paths).toEqual([`/tether/v1/artifacts/up-1/${FILE}`]);
  });

  test('an abort keeps the part and says so', async () => {
    b.stallAfter = 32 * 1024;
    const ac = new AbortController();
    const p = download({ baseURL: base, file: FILE, dir: fresh(), upgrade: 'up-1', signal: ac.signal });
    setTimeout(() => ac.abort(), 200);
    const e = await p.catch((x: unknown) => x);
    expect((e as DownloadError).reason).toBe('aborted');
    expect(statSync(join(dir, 'downloads', 'up-1', `${FILE}.part`)).size).toBe(32 * 1024);
  });

  test('a part begun directly is resumed through the hub when the origin becomes unreachable (the same validator)', async () => {
    // The node's own way to the origin: a second server with the same files, stopped after the cut.
    const direct = http.createServer(handler);
    await new Promise<void>((r) => direct.listen(0, '127.0.0.1', () => r()));
    const directBase = `http://127.0.0.1:${(direct.address() as AddressInfo).port}/rel/0.2.0`;
    b.cutAfter = 300 * 1024;
    const paths: string[] = [];
    const first = await download({ baseURL: directBase, file: FILE, dir: fresh(), upgrade: 'up-1', retries: 0, hub: fakeHub(paths) }).catch((x: unknown) => x);
    expect((first as DownloadError).reason).toBe('cut');
    const kept = statSync(join(dir, 'downloads', 'up-1', `${FILE}.part`)).size;
    direct.closeAllConnections?.();
    await new Promise<void>((r) => direct.close(() => r()));
    const r = await download({ baseURL: directBase, file: FILE, dir, upgrade: 'up-1', hub: fakeHub(paths) });
    expect(r.via).toBe('hub');
    expect(r.sha256).toBe(sha);
    expect(paths).toEqual([`/tether/v1/artifacts/up-1/${FILE}`]);
    expect(seen.at(-1)).toEqual({ url: `/rel/0.2.0/${FILE}`, range: `bytes=${kept}-`, ifRange: '"v1"' });
  });

  test('a refused origin without a hub is an unreachable error', async () => {
    const e = await download({ baseURL: refusedBase, file: FILE, dir: fresh(), upgrade: 'up-1' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DownloadError);
    expect((e as DownloadError).reason).toBe('unreachable');
    expect((e as Error).message).toContain(`download ${refusedBase}/${FILE}: `);
  });

  test('bad names and URLs are refused before any request', async () => {
    for (const [file, upgrade, baseURL] of [
      ['../etc/passwd', 'up-1', base],
      [FILE, 'Up_1', base],
      [FILE, 'up-1', 'ftp://127.0.0.1/x'],
      [FILE, 'up-1', 'not a url'],
    ] as const) {
      const e = await download({ baseURL, file, dir: fresh(), upgrade }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(DownloadError);
      expect((e as DownloadError).reason).toBe('bad-request');
    }
    expect(seen).toEqual([]);
  });
});

describe('removeDownloads', () => {
  test('removes the folders of other upgrades, parts included, and keeps the one named', async () => {
    b.cutAfter = 10 * 1024;
    await download({ baseURL: base, file: FILE, dir: fresh(), upgrade: 'old', retries: 0 }).catch(() => {});
    await download({ baseURL: base, file: FILE, dir, upgrade: 'new' });
    expect(existsSync(join(dir, 'downloads', 'old', `${FILE}.part`))).toBe(true);
    await removeDownloads(dir, 'new');
    expect(existsSync(join(dir, 'downloads', 'old'))).toBe(false);
    expect(existsSync(join(dir, 'downloads', 'new', FILE))).toBe(true);
    await removeDownloads(dir);
    expect(existsSync(join(dir, 'downloads', 'new'))).toBe(false);
  });
});

describe('https', () => {
  let tlsServer: https.Server;
  let caFile: string;
  let tlsBase: string;
  let pkiDir: string;
  beforeAll(async () => {
    const pki = await createTunnelTestPki();
    pkiDir = mkdtempSync(join(tmpdir(), 'tether-download-ca-'));
    caFile = join(pkiDir, 'ca.crt');
    writeFileSync(caFile, pki.ca);
    tlsServer = https.createServer({ cert: pki.serverCert, key: pki.serverKey }, handler);
    await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', () => r()));
    tlsBase = `https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}/rel`;
  });
  afterAll(() => {
    tlsServer.close();
    tlsServer.closeAllConnections?.();
    rmSync(pkiDir, { recursive: true, force: true });
  });

  test('an https origin is verified with caFile', async () => {
    const r = await download({ baseURL: tlsBase, file: FILE, dir: fresh(), upgrade: 'up-1', caFile });
    expect(r.sha256).toBe(sha);
  });

  test('an https origin whose CA is not trusted is refused, and not retried through the hub', async () => {
    const paths: string[] = [];
    const e = await download({ baseURL: tlsBase, file: FILE, dir: fresh(), upgrade: 'up-1', hub: fakeHub(paths) }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DownloadError);
    expect((e as DownloadError).reason).toBe('bad-response');
    expect(paths).toEqual([]);
    expect(seen).toEqual([]);
  });
});

describe('fetchSmall', () => {
  test('reads a small file into memory', async () => {
    b.content = Buffer.from('0.2.0\n');
    const r = await fetchSmall({ baseURL: base, file: 'VERSION', upgrade: 'up-1', maxBytes: 100 });
    expect(r.body.toString()).toBe('0.2.0\n');
    expect(r.via).toBe('direct');
  });

  test('refuses more than maxBytes', async () => {
    const e = await fetchSmall({ baseURL: base, file: 'SHA256SUMS', upgrade: 'up-1', maxBytes: 100 }).catch((x: unknown) => x);
    expect((e as DownloadError).reason).toBe('too-large');
  });

  test('goes through the hub when the origin refuses connections', async () => {
    b.content = Buffer.from('sums');
    const paths: string[] = [];
    const r = await fetchSmall({ baseURL: refusedBase, file: 'SHA256SUMS', upgrade: 'up-1', maxBytes: 100, hub: fakeHub(paths) });
    expect(r).toEqual({ body: Buffer.from('sums'), via: 'hub' });
    expect(paths).toEqual(['/tether/v1/artifacts/up-1/SHA256SUMS']);
  });

  test("the hub's Status message is in the error", async () => {
    const hub: HubFetch = async () => {
      const { Readable } = await import('node:stream');
      const body = JSON.stringify({ kind: 'Status', code: 404, message: 'tether-hub: EdgeUpgrade up-1 not found' });
      return { status: 404, headers: { 'content-type': 'application/json' }, body: Readable.from([Buffer.from(body)]) };
    };
    const e = await fetchSmall({ baseURL: refusedBase, file: 'VERSION', upgrade: 'up-1', maxBytes: 100, hub }).catch((x: unknown) => x);
    expect((e as Error).message).toBe('download VERSION through the hub: HTTP 404 Not Found: tether-hub: EdgeUpgrade up-1 not found');
  });
});
