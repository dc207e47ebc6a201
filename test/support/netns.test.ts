/**
 * Edge sites on real network namespaces: reachability, cut/heal, WAN delay, teardown (also when
 * the owning process is killed). Needs root; skipped with the reason otherwise.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { acquireEdgeAddress, type EdgeAddressLease } from '../../scripts/cluster/edge-address.ts';
import { createMemoryLogger } from '../../shared/log.ts';
import { CONTROL_PLANE_ADDRESS, createEdgeSite, destroyAllSites, type EdgeSite } from './netns.ts';
import { run } from './netns/commands.ts';
import { until } from './wait.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('netns.test.ts skipped: network namespaces need root');

/** Runs inside the site: connects, does `rounds` echo round trips, prints {ok, rttMs | error}. */
const PROBE = `
const net = require('node:net');
const [host, port, rounds] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const s = net.connect({ host, port });
const t = setTimeout(() => { console.log(JSON.stringify({ ok: false, error: 'timeout' })); process.exit(0); }, 1500);
s.on('error', (e) => { console.log(JSON.stringify({ ok: false, error: e.code })); process.exit(0); });
s.on('connect', async () => {
  s.setNoDelay(true);
  const rtts = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await new Promise((r) => { s.once('data', r); s.write('x'); });
    rtts.push(performance.now() - t0);
  }
  rtts.sort((a, b) => a - b);
  clearTimeout(t);
  console.log(JSON.stringify({ ok: true, rttMs: rtts[Math.floor(rtts.length / 2)] }));
  process.exit(0);
});`;

type Probe = { ok: boolean; rttMs?: number; error?: string };

async function probe(site: EdgeSite, host: string, port: number, rounds = 1): Promise<Probe> {
  const r = await site.exec([process.execPath, '-e', PROBE, host, String(port), String(rounds)], { timeoutMs: 10_000 });
  return JSON.parse(r.stdout.trim().split('\n').pop() || '{"ok":false,"error":"no output"}') as Probe;
}

const netnsList = async () => (await run(['ip', 'netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]);

describe.skipIf(!isRoot)('edge sites', () => {
  let server: Server;
  let port = 0;
  let site: EdgeSite;
  let cp: EdgeAddressLease;

  beforeAll(async () => {
    cp = acquireEdgeAddress(createMemoryLogger());
    server = createServer((c) => c.on('data', (d) => c.write(d)));
    await new Promise<void>((r) => server.listen(0, CONTROL_PLANE_ADDRESS, r));
    port = (server.address() as { port: number }).port;
    site = await createEdgeSite('nstest');
  });

  afterAll(async () => {
    await site?.destroy();
    server?.close();
    cp?.release();
  }, 60_000);

  test('a site has its addresses, and reaches the control plane and its gateway', async () => {
    expect(site.ns).toBe('tether-nstest');
    expect(site.address).toBe(`198.18.${site.index}.2`);
    expect(site.gateway).toBe(`198.18.${site.index}.1`);
    expect((await site.exec(['ip', '-o', 'addr', 'show'])).stdout).toContain(`${site.address}/24`);
    expect((await probe(site, CONTROL_PLANE_ADDRESS, port)).ok).toBe(true);
    const gw = createServer((c) => c.end('hi'));
    await new Promise<void>((r) => gw.listen(0, site.gateway, r));
    expect((await probe(site, site.gateway, (gw.address() as { port: number }).port)).ok).toBe(true);
    gw.close();
  }, 60_000);

  test('cut() stops traffic both ways and heal() restores it', async () => {
    const inside = site.spawn([process.execPath, '-e',
      `require('node:net').createServer((c) => c.end('in')).listen(7070, '${site.address}', () => console.log('up'))`]);
    await new Promise((r) => inside.stdout!.once('data', r));
    const fromRoot = async () => (await run([process.execPath, '-e',
      `const s=require('node:net').connect(7070,'${site.address}');s.on('data',()=>{console.log('ok');process.exit(0)});` +
      `s.on('error',()=>{console.log('err');process.exit(0)});setTimeout(()=>{console.log('timeout');process.exit(0)},1500)`],
    )).stdout.trim();
    expect(await fromRoot()).toBe('ok');

    await site.cut();
    const cutProbe = await until('cut', () => probe(site, CONTROL_PLANE_ADDRESS, port), (p) => !p.ok);
    expect(cutProbe.error).toBe('timeout'); // a silent drop, not a refusal
    expect(await until('cut from root', fromRoot, (v) => v !== 'ok')).toBe('timeout');

    await site.heal();
    expect((await until('heal', () => probe(site, CONTROL_PLANE_ADDRESS, port), (p) => p.ok)).ok).toBe(true);
    expect(await until('heal from root', fromRoot, (v) => v === 'ok')).toBe('ok');
    inside.kill();
  }, 60_000);

  test('wan({ delayMs: 50 }) raises the round-trip time; cut and heal still work; off restores', async () => {
    const before = await probe(site, CONTROL_PLANE_ADDRESS, port, 10);
    expect(before.ok).toBe(true);
    await site.wan({ delayMs: 50 });
    const during = await until('wan delay', () => probe(site, CONTROL_PLANE_ADDRESS, port, 10), (p) => p.ok);
    expect(during.rttMs!).toBeGreaterThan(before.rttMs!);

    await site.cut();
    expect((await until('cut under wan', () => probe(site, CONTROL_PLANE_ADDRESS, port), (p) => !p.ok)).ok).toBe(false);
    await site.heal();
    expect((await until('heal under wan', () => probe(site, CONTROL_PLANE_ADDRESS, port), (p) => p.ok)).ok).toBe(true);

    await site.wan({});
    const after = await until('wan off', () => probe(site, CONTROL_PLANE_ADDRESS, port, 10), (p) => p.ok);
    expect(after.rttMs!).toBeLessThan(during.rttMs!);
  }, 60_000);

  test('destroy() kills processes inside and removes the namespace and links', async () => {
    const other = await createEdgeSite('nstest-destroy');
    const sleeper = other.spawn(['sleep', '600']);
    const exited = new Promise((r) => sleeper.once('exit', r));
    expect(await netnsList()).toContain('tether-nstest-destroy');
    await other.destroy();
    await exited;
    expect(await netnsList()).not.toContain('tether-nstest-destroy');
    expect((await run(['ip', 'link', 'show', `tether-${other.index}-h`])).code).not.toBe(0);
  }, 60_000);
});

describe.skipIf(!isRoot)('edge site teardown when the owner dies', () => {
  const netnsModule = fileURLToPath(new URL('./netns.ts', import.meta.url));
  const owner = (name: string) => {
    const child = spawn(process.execPath, ['-e',
      `const { createEdgeSite } = await import(${JSON.stringify(netnsModule)});` +
      `const s = await createEdgeSite('${name}'); s.spawn(['sleep', '600']); console.log('up ' + s.index);` +
      `setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const up = new Promise<number>((r) => child.stdout.once('data', (d: Buffer) => r(Number(String(d).split(' ')[1]))));
    return { child, up };
  };

  test('destroyAllSites() removes every site of this process, with the processes inside', async () => {
    const sites = await Promise.all([createEdgeSite('nstest-all-a'), createEdgeSite('nstest-all-b')]);
    expect(new Set(sites.map((s) => s.index)).size).toBe(2);
    const sleeper = sites[0]!.spawn(['sleep', '600']);
    const exited = new Promise((r) => sleeper.once('exit', r));
    await sites[1]!.wan({ delayMs: 5 });
    await destroyAllSites();
    await exited;
    const list = await netnsList();
    expect(list).not.toContain('tether-nstest-all-a');
    expect(list).not.toContain('tether-nstest-all-b');
    expect((await run(['ip', 'link', 'show', `tether-${sites[1]!.index}-wr`])).code).not.toBe(0);
  }, 60_000);

  test('SIGTERM to the owning process tears its site down', async () => {
    const { child, up } = owner('nstest-sigterm');
    await up;
    expect(await netnsList()).toContain('tether-nstest-sigterm');
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    expect(await netnsList()).not.toContain('tether-nstest-sigterm');
  }, 60_000);

  test('after SIGKILL of the owning process, its watchdog removes the site', async () => {
    const { child, up } = owner('nstest-sigkill');
    await up;
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    await until('watchdog cleanup', netnsList, (l) => !l.includes('tether-nstest-sigkill'));
    expect(await netnsList()).not.toContain('tether-nstest-sigkill');
  }, 60_000);

  test('a site left by a run killed with its watchdog is swept when the name is used again', async () => {
    const { child, up } = owner('nstest-stale');
    const index = await up;
    for (const pid of watchdogsOf(child.pid!)) process.kill(pid, 'SIGKILL');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(await netnsList()).toContain('tether-nstest-stale');
    const again = await createEdgeSite('nstest-stale');
    expect((await run(['ip', 'netns', 'pids', again.ns])).stdout.trim()).toBe(''); // the old sleeper is gone
    if (again.index !== index) expect((await run(['ip', 'link', 'show', `tether-${index}-h`])).code).not.toBe(0);
    await again.destroy();
    expect(await netnsList()).not.toContain('tether-nstest-stale');
  }, 60_000);
});

/** Pids of the netns watchdogs guarding `pid` (from /proc/<pid>/cmdline). */
function watchdogsOf(pid: number): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).filter((p) => {
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      return argv.some((a) => a.endsWith('netns/watchdog.ts')) && argv.includes(String(pid));
    } catch {
      return false;
    }
  });
}
