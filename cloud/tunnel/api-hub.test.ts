/**
 * Api streams through the whole hub in process (cloud/hub.ts wiring): a real tunnel agent over a
 * TLS websocket with a node certificate opens api streams, the hub forwards them to a local HTTPS
 * "apiserver" as the node, and /metrics counts requests and bytes per node. No control plane.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { createMemoryLogger } from '../../shared/log.ts';
import { Registry } from '../../shared/metrics.ts';
import { hubConfigSchema } from '../config.ts';
import { startHub, type RunningHub } from '../hub.ts';
import type { ApiUpstream } from './api-forward.ts';
import { staticHubBackend } from './backend.ts';
import { createHubTestPki, type HubTestPki } from '../../test/support/pki.ts';
import { startTestAgent, type TunnelAgent } from '../../test/support/tunnel-agent.ts';
import { waitFor } from '../../test/support/wait.ts';

let pki: HubTestPki;
let apiserver: https.Server;
let upstream: ApiUpstream;
const seen: IncomingMessage['headers'][] = [];

beforeAll(async () => {
  pki = await createHubTestPki();
  const ca = readFileSync(pki.caFile);
  apiserver = https.createServer({ cert: readFileSync(pki.hub.certFile), key: readFileSync(pki.hub.keyFile) }, (req, res) => {
    seen.push(req.headers);
    const body = JSON.stringify({ kind: 'Node', metadata: { name: req.url }, padding: 'x'.repeat(4000) });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
  await new Promise<void>((r) => apiserver.listen(0, '127.0.0.1', () => r()));
  const agent = new https.Agent({ keepAlive: true, ca });
  upstream = {
    server: new URL(`https://127.0.0.1:${(apiserver.address() as AddressInfo).port}/`),
    agent: () => agent,
    hubHeaders: async () => ({ authorization: 'Bearer hub' }),
    close: () => agent.destroy(),
  };
});
afterAll(() => {
  apiserver.close();
  apiserver.closeAllConnections?.();
  pki.remove();
});

function get(open: () => Promise<Duplex>, path: string): Promise<{ status: number; body: string }> {
  const agent = new http.Agent({ keepAlive: false });
  (agent as unknown as { createConnection: (o: unknown, cb: (e: Error | null, s?: Duplex) => void) => void }).createConnection = (_o, cb) => {
    open().then(
      (d) => cb(null, Object.assign(d, { setKeepAlive: () => d, setNoDelay: () => d, setTimeout: () => d, ref: () => d, unref: () => d })),
      (e) => cb(e),
    );
  };
  return new Promise((resolve, reject) => {
    http
      .get({ host: 'kube-apiserver.tether', path, agent }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });
}

async function hubWith(config: Record<string, unknown>, node = 'n1'): Promise<{ h: RunningHub; registry: Registry; a: TunnelAgent; close(): Promise<void> }> {
  const registry = new Registry();
  const h = await startHub({
    config: hubConfigSchema.parse({ replicaId: 'hub-0', listen: '127.0.0.1:0', connectListen: '127.0.0.1:0', tlsCertFile: pki.hub.certFile, tlsKeyFile: pki.hub.keyFile, clientCaFile: pki.caFile, ...config }),
    backend: staticHubBackend({ n1: ['198.18.99.1'] }),
    log: createMemoryLogger('info'),
    registry,
    apiUpstream: upstream,
  });
  const creds = await pki.node(node);
  const a = startTestAgent({ hubUrls: [`wss://${h.agentAddress}`], caFile: pki.caFile, creds, node });
  await waitFor('agent connected or refused', () => a.connected || !!a.status().lastError);
  return { h, registry, a, close: async () => (await a.close(), await h.close()) };
}

describe('api streams through the hub', () => {
  test("an agent's api stream is forwarded as its node, and counted per node", async () => {
    const { registry, a, close } = await hubWith({});
    try {
      const r = await get(() => a.openApiStream(), '/api/v1/nodes/n1');
      expect(r.status).toBe(200);
      expect(seen.at(-1)!['impersonate-user']).toBe('system:node:n1');
      expect(seen.at(-1)!.authorization).toBe('Bearer hub');
      const text = registry.render();
      expect(text).toContain('tether_hub_api_requests_total{code="200"} 1');
      const sample = (direction: string, stage: string) => Number(new RegExp(`tether_hub_api_bytes_total\\{node="n1",direction="${direction}",stage="${stage}"\\} (\\d+)`).exec(text)?.[1] ?? NaN);
      expect(sample('out', 'raw')).toBeGreaterThan(4000);
      expect(sample('out', 'wire')).toBeGreaterThan(0);
      expect(sample('out', 'wire')).toBeLessThan(sample('out', 'raw'));
      expect(sample('in', 'raw')).toBeGreaterThan(0);
    } finally {
      await close();
    }
  });

  test('the totals of a node survive the end of its session', async () => {
    const { registry, a, close } = await hubWith({});
    await get(() => a.openApiStream(), '/api/v1/nodes/n1');
    const before = /tether_hub_api_bytes_total\{node="n1",direction="out",stage="raw"\} (\d+)/.exec(registry.render())?.[1];
    await close();
    const after = /tether_hub_api_bytes_total\{node="n1",direction="out",stage="raw"\} (\d+)/.exec(registry.render())?.[1];
    expect(Number(before)).toBeGreaterThan(0);
    expect(after).toBe(before!);
  });

  test('with admitUnregisteredNodes, a node without a Node object connects and can register through its api streams', async () => {
    const { a, close } = await hubWith({ admitUnregisteredNodes: true }, 'fresh');
    try {
      expect(a.connected).toBe(true);
      const r = await get(() => a.openApiStream(), '/api/v1/nodes');
      expect(r.status).toBe(200);
      expect(seen.at(-1)!['impersonate-user']).toBe('system:node:fresh');
    } finally {
      await close();
    }
    const refused = await hubWith({}, 'fresh');
    try {
      await waitFor('refusal', () => !!refused.a.status().lastError);
      expect(refused.a.status().lastError).toContain('hello: Node fresh does not exist');
      expect(refused.a.connected).toBe(false);
    } finally {
      await refused.close();
    }
  });

  test('apiStreams and artifactRelay false refuse api streams', async () => {
    const { a, close } = await hubWith({ apiStreams: false, artifactRelay: false });
    try {
      const e = await a.openApiStream().catch((x: unknown) => x);
      expect(String((e as Error).message)).toContain('accepts no streams');
    } finally {
      await close();
    }
  });
});
