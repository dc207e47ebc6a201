/**
 * `tether-edge run --upstream-via-hub` from the command line: the agent process dials a tunnel
 * server on 127.0.0.1 (shared/tunnel's websocket transport; a small node:http server stands in for
 * tether-hub's forwarder and the apiserver behind it), comes online through it with no --servers at
 * all, answers a request through its api streams, and reports the mode and the api bytes.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createMemoryLogger } from '../../shared/log.ts';
import { startWsServer } from '../../test/support/tunnel-pairs.ts';
import { createTunnelSession, type TunnelSession } from '../../shared/tunnel/session.ts';

const main = fileURLToPath(new URL('../main.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tether-run-via-hub-'));
const seen: { url?: string; auth?: string }[] = [];
const apiserver = http.createServer((req, res) => {
  seen.push({ url: req.url, auth: req.headers.authorization });
  if (req.url === '/readyz') return res.end('ok');
  if (req.url === '/version') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ major: '1', minor: '37', gitVersion: 'v1.37.2-through-the-hub' }));
  }
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 404, reason: 'NotFound' }));
});
let hub: Awaited<ReturnType<typeof startWsServer>>;
const sessions: TunnelSession[] = [];
let agent: ChildProcess;
let out = '';

beforeAll(async () => {
  hub = await startWsServer();
  const accept = async () => {
    for (;;) {
      const transport = await hub.next();
      sessions.push(
        createTunnelSession({
          transport,
          role: 'hub',
          log: createMemoryLogger('info'),
          onOpen: async (host, port) => {
            if (host !== 'kube-apiserver' || port !== 0) throw new Error('api streams only');
            const ab = new PassThrough();
            const ba = new PassThrough();
            apiserver.emit('connection', Duplex.from({ readable: ab, writable: ba }));
            return Duplex.from({ readable: ba, writable: ab });
          },
        }),
      );
    }
  };
  void accept();
  agent = spawn(process.execPath, [main, 'run', '--upstream-via-hub', '--hub-urls', hub.url, '--node-name', 'edge-cli', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0',
    '--data-dir', join(dir, 'store'), '--insecure-plain-http', 'true', '--rotate-certificates', 'false', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  agent.stdout!.on('data', (c) => (out += c));
  agent.stderr!.on('data', (c) => (out += c));
  await poll('the agent started', () => /admin on http:\/\/\S+,/.test(out));
});

afterAll(async () => {
  if (agent.exitCode === null) {
    const exited = new Promise((r) => agent.once('exit', r));
    agent.kill('SIGTERM');
    await exited;
  }
  for (const s of sessions) s.close('test done');
  await hub.close();
  apiserver.close();
  rmSync(dir, { recursive: true, force: true });
});

async function poll(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const admin = () => out.match(/admin on (http:\/\/\S+),/)![1]!;
const proxy = () => out.match(/proxy on (https?:\/\/\S+),/)![1]!;

test('run --upstream-via-hub with hubUrls and no servers comes online through the tunnel and answers through it', async () => {
  await poll('online', async () => ((await (await fetch(`${admin()}/status`)).json()) as { online: boolean }).online);
  const st = (await (await fetch(`${admin()}/status`)).json()) as { upstreamMode: string; upstreams: { server: string }[]; tunnel: { connected: boolean; api: { rawIn: number; wireIn: number } } };
  expect(st.upstreamMode).toBe('via-hub');
  expect(st.upstreams.map((u) => u.server)).toEqual(['http://kube-apiserver.tether/']);
  expect(st.tunnel.connected).toBe(true);
  const r = await fetch(`${proxy()}/version`);
  expect(r.status).toBe(200);
  expect(((await r.json()) as { gitVersion: string }).gitVersion).toBe('v1.37.2-through-the-hub');
  expect(seen.some((s) => s.url === '/version')).toBe(true);
  const after = (await (await fetch(`${admin()}/status`)).json()) as typeof st;
  expect(after.tunnel.api.rawIn).toBeGreaterThan(0);
  expect(after.tunnel.api.wireIn).toBeGreaterThan(0);
  const metrics = await (await fetch(`${admin()}/metrics`)).text();
  expect(metrics).toMatch(/^tether_tunnel_api_bytes_total\{direction="in",stage="raw"\} [1-9]/m);
  expect(metrics).toMatch(/^tether_tunnel_api_bytes_total\{direction="in",stage="wire"\} [1-9]/m);
  expect(metrics).toMatch(/^tether_tunnel_api_streams_total\{result="ok"\} [1-9]/m);
  // The HTTP-level byte meter counts as it does without the hub.
  expect(metrics).toMatch(/^tether_upstream_bytes_total\{direction="received",kind="request"\} [1-9]/m);
  expect(metrics).toMatch(/^tether_upstream_bytes_total\{direction="received",kind="probe"\} [1-9]/m);
}, 60_000);

test('run --upstream-via-hub without any hub URL is refused with a clear error', async () => {
  const p = spawn(process.execPath, [main, 'run', '--upstream-via-hub', '--data-dir', join(dir, 'store2'), '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (c) => (err += c));
  const code = await new Promise((r) => p.once('exit', r));
  expect(code).toBe(1);
  expect(err).toContain('upstreamViaHub: needs hubUrls (or hubUrl)');
}, 30_000);

test('run refuses a word left behind by "--upstream-via-hub false"', async () => {
  const p = spawn(process.execPath, [main, 'run', '--upstream-via-hub', 'false', '--hub-urls', hub.url], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (c) => (err += c));
  const code = await new Promise((r) => p.once('exit', r));
  expect(code).toBe(1);
  expect(err).toContain('run: unexpected argument "false"');
}, 30_000);
