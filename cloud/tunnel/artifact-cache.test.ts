/**
 * The relay's disk cache with a real origin on 127.0.0.1: one origin GET for many readers, readers
 * of a file still arriving, copies kept across a restart, the size cap, failures forgotten.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import http, { type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { createMemoryLogger } from '../../shared/log.ts';
import { type ArtifactCache, CacheFullError, createArtifactCache } from './artifact-cache.ts';
import { OriginError, createOriginFetch } from './artifact-origin.ts';
import { waitFor } from '../../test/support/wait.ts';

const files = new Map<string, Buffer>([
  ['/a', randomBytes(300 * 1024)],
  ['/b', randomBytes(200 * 1024)],
  ['/c', randomBytes(200 * 1024)],
]);
let hits: string[] = [];
/** Per path: hold the answer after its head and this many bytes until release() is called. */
const held = new Map<string, { bytes: number; res?: ServerResponse }>();
let server: http.Server;
let origin: string;
let dir: string;
const caches: ArtifactCache[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    hits.push(req.url!);
    if (req.url === '/moved') return void res.writeHead(302, { location: 'http://198.18.7.7/x' }).end();
    const body = files.get(req.url!);
    if (!body) return void res.writeHead(404).end('no');
    res.writeHead(200, { 'content-length': body.length, etag: `"${req.url}"` });
    const h = held.get(req.url!);
    if (h) {
      h.res = res;
      res.write(body.subarray(0, h.bytes));
      return;
    }
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server.close();
  server.closeAllConnections?.();
});
afterEach(() => {
  for (const c of caches.splice(0)) c.close();
  hits = [];
  held.clear();
  rmSync(dir, { recursive: true, force: true });
});

function cache(maxBytes = 10 * 1024 * 1024, at?: string): ArtifactCache {
  dir = at ?? mkdtempSync(join(tmpdir(), 'tether-artifacts-'));
  const c = createArtifactCache({ dir, maxBytes, fetch: createOriginFetch({ timeoutMs: 5000 }), idleTimeoutMs: 5000, log: createMemoryLogger('info') });
  caches.push(c);
  return c;
}

async function all(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const url = (p: string) => new URL(origin + p);

describe('artifact cache', () => {
  test('concurrent opens of one file cost the origin one GET; every reader gets the bytes', async () => {
    const c = cache();
    const opened = await Promise.all([1, 2, 3, 4].map(() => c.open('uid-1', 'a', url('/a'))));
    const bodies = await Promise.all(opened.map((a) => all(a.read(0, a.info.size - 1))));
    for (const b of bodies) expect(b.equals(files.get('/a')!)).toBe(true);
    expect(opened[0]!.info).toEqual({ size: 300 * 1024, etag: '"/a"' });
    expect(hits).toEqual(['/a']);
    const again = await c.open('uid-1', 'a', url('/a'));
    expect((await all(again.read(1000, 1999))).equals(files.get('/a')!.subarray(1000, 2000))).toBe(true);
    expect(hits).toEqual(['/a']);
  });

  test('a reader streams a file still arriving, and gets the rest when the origin sends it', async () => {
    held.set('/a', { bytes: 64 * 1024 });
    const c = cache();
    const a = await c.open('uid-1', 'a', url('/a'));
    const r = a.read(0, a.info.size - 1);
    const first = await new Promise<Buffer>((resolve) => r.once('data', resolve));
    expect(first.length).toBeGreaterThan(0);
    expect(first.equals(files.get('/a')!.subarray(0, first.length))).toBe(true);
    const rest = all(r);
    held.get('/a')!.res!.end(files.get('/a')!.subarray(64 * 1024));
    expect(Buffer.concat([first, await rest]).equals(files.get('/a')!)).toBe(true);
  });

  test('a copy survives a restart of the hub: served from disk, no origin GET; parts are removed', async () => {
    const c1 = cache();
    const a = await c1.open('uid-1', 'a', url('/a'));
    await all(a.read(0, a.info.size - 1));
    // Readers may finish before the writer renames the part (it syncs first).
    await waitFor('the copy is complete on disk', () => existsSync(join(dir, 'uid-1', 'a')));
    c1.close();
    mkdirSync(join(dir, 'uid-2'));
    writeFileSync(join(dir, 'uid-2', 'b.part'), 'half');
    hits = [];
    const c2 = cache(undefined, dir);
    const again = await c2.open('uid-1', 'a', url('/a'));
    expect(again.info).toEqual({ size: 300 * 1024, etag: '"/a"' });
    expect((await all(again.read(0, again.info.size - 1))).equals(files.get('/a')!)).toBe(true);
    expect(hits).toEqual([]);
    expect(existsSync(join(dir, 'uid-2', 'b.part'))).toBe(false);
  });

  test('over the cap, the least recently opened copy no one reads is removed', async () => {
    const c = cache(550 * 1024);
    for (const [uid, p] of [['u1', '/b'], ['u2', '/c']] as const) {
      const a = await c.open(uid, p.slice(1), url(p));
      await all(a.read(0, a.info.size - 1));
      await waitFor(`${uid}${p} complete on disk`, () => existsSync(join(dir, uid, p.slice(1))));
    }
    // u1/b is older; a's 300 KiB need one copy to go.
    const a = await c.open('u3', 'a', url('/a'));
    await all(a.read(0, a.info.size - 1));
    expect(c.bytes).toBe(500 * 1024);
    expect(existsSync(join(dir, 'u1', 'b'))).toBe(false);
    expect(existsSync(join(dir, 'u2', 'c'))).toBe(true);
    hits = [];
    await c.open('u2', 'c', url('/c'));
    expect(hits).toEqual([]);
  });

  test('a file that does not fit beside copies being read is refused with CacheFullError', async () => {
    held.set('/b', { bytes: 1024 });
    const c = cache(350 * 1024);
    await c.open('u1', 'b', url('/b'));
    const e = await c.open('u2', 'a', url('/a')).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CacheFullError);
    expect((e as Error).message).toContain('is full of files being fetched or read');
    const big = await c.open('u3', 'a', url('/a')).catch((x: unknown) => x);
    expect(big).toBeInstanceOf(CacheFullError);
    held.get('/b')!.res!.end(files.get('/b')!.subarray(1024));
  });

  test("the origin's 404 and redirects are OriginErrors; a failure is forgotten and retried", async () => {
    const c = cache();
    const e = await c.open('u1', 'x', url('/missing')).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OriginError);
    expect((e as OriginError).status).toBe(404);
    const moved = await c.open('u1', 'y', url('/moved')).catch((x: unknown) => x);
    expect((moved as Error).message).toContain('the origin redirects (302) to http://198.18.7.7/x; the hub does not follow redirects');
    await c.open('u1', 'x', url('/missing')).catch(() => {});
    expect(hits).toEqual(['/missing', '/moved', '/missing']);
    expect(existsSync(join(dir, 'u1')) ? readdirSync(join(dir, 'u1')) : []).toEqual([]);
  });

  test('an origin cut mid-file cuts the readers and removes the part; the next open fetches again', async () => {
    held.set('/a', { bytes: 10 * 1024 });
    const c = cache();
    const a = await c.open('u1', 'a', url('/a'));
    const reader = a.read(0, a.info.size - 1);
    await new Promise((resolve) => reader.once('data', resolve));
    const rest = all(reader);
    held.get('/a')!.res!.socket!.destroy();
    expect(await rest.then(() => 'read whole', (x: unknown) => String(x))).toContain('Error');
    held.clear();
    const b = await c.open('u1', 'a', url('/a'));
    expect((await all(b.read(0, b.info.size - 1))).equals(files.get('/a')!)).toBe(true);
    expect(hits).toEqual(['/a', '/a']);
  });
});
