import { afterEach, expect, test } from 'bun:test';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCode, isTetherError } from '../../shared/errors.ts';
import { createMemoryLogger } from '../../shared/log.ts';
import { createNodeRequests } from './node-requests.ts';
import { createUpstreamPool } from './pool.ts';
import { createUpstreamTargets } from './targets.ts';
import { createTrafficMeter } from './traffic.ts';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** A plain-HTTP apiserver recording what it is asked; /watch streams one line and stays open. */
async function apiserver() {
  const seen: { method: string; path: string; ua: string; type?: string; body: string }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', path: req.url ?? '', ua: String(req.headers['user-agent']), ...(req.headers['content-type'] ? { type: req.headers['content-type'] } : {}), body: Buffer.concat(chunks).toString() });
      res.writeHead(200, { 'content-type': 'application/json' });
      if (req.url?.startsWith('/watch')) return void res.write('{"type":"ADDED"}\n');
      res.end('{"kind":"Node"}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

async function rig(server: string) {
  const meter = createTrafficMeter();
  const pool = createUpstreamPool({ servers: [server], lbMode: 'priority', tls: {}, log: createMemoryLogger('error'), probe: async () => {}, retryMinMs: 60_000 });
  cleanup.push(() => pool.close());
  await pool.ready;
  const upstreams = createUpstreamTargets({ pool, meter, tls: {} });
  cleanup.push(() => upstreams.close());
  const requests = createNodeRequests({ upstreams, nodeName: 'edge 1', userAgent: 'tether-edge/9.9.9' });
  return { pool, meter, requests };
}

const refused = () => Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });

test('pinned calls go to the upstream picked then, as the node with its user agent, their bytes counted under their kind', async () => {
  const api = await apiserver();
  const { meter, requests } = await rig(api.url);
  expect(requests.online()).toBe(true);
  const on = requests.pinned()!;
  const r = await on('replay')('POST', '/api/v1/namespaces/default/events', { contentType: 'application/json', body: '{"a":1}' });
  expect(r.status).toBe(200);
  await on('discovery')('GET', '/version');
  expect(api.seen.map(({ method, path, ua, body }) => ({ method, path, ua, body }))).toEqual([
    { method: 'POST', path: '/api/v1/namespaces/default/events', ua: 'tether-edge/9.9.9', body: '{"a":1}' },
    { method: 'GET', path: '/version', ua: 'tether-edge/9.9.9', body: '' },
  ]);
  expect(meter.total().sent.replay).toBeGreaterThan(0);
  expect(meter.total().received.discovery).toBeGreaterThan(0);
  expect(meter.total().sent.request).toBe(0);
});

test("patchNode sends a merge patch of this node's Node; offline it rejects E_UPSTREAM_UNAVAILABLE and nothing is pinned", async () => {
  const api = await apiserver();
  const { pool, requests } = await rig(api.url);
  await requests.patchNode('{"metadata":{}}');
  expect(api.seen.at(-1)).toMatchObject({ method: 'PATCH', path: '/api/v1/nodes/edge%201', type: 'application/merge-patch+json', body: '{"metadata":{}}' });
  pool.reportFailure(pool.all()[0]!, refused());
  expect(requests.online()).toBe(false);
  expect(requests.pinned()).toBeUndefined();
  const e = await requests.patchNode('{}').catch((x: unknown) => x);
  expect(isTetherError(e, ErrorCode.UpstreamUnavailable)).toBe(true);
  expect(String(e)).toContain('patch node edge 1: offline');
});

test('a watch is tracked: the upstream turning unhealthy aborts it (status 0, a broken link); offline a watch is never sent and ends at once with status 0', async () => {
  const api = await apiserver();
  const { pool, meter, requests } = await rig(api.url);
  const lines: string[] = [];
  const w = requests.watch('/watch?x=1', (l) => lines.push(l));
  while (lines.length === 0) await new Promise((r) => setImmediate(r));
  expect(lines).toEqual(['{"type":"ADDED"}']);
  expect(meter.total().received.watch).toBeGreaterThan(0);
  pool.reportFailure(pool.all()[0]!, refused());
  expect(await w.done).toEqual({ status: 0 });
  expect(api.seen.filter((s) => s.path === '/watch?x=1')).toHaveLength(1);
  expect(await requests.watch('/watch?x=2', () => {}).done).toEqual({ status: 0 });
  expect(api.seen.filter((s) => s.path === '/watch?x=2')).toHaveLength(0);
});
