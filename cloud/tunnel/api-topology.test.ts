import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { createMemoryLogger } from '../../shared/log.ts';
import { createApiForwarder, type ApiUpstream } from './api-forward.ts';
import { classify, createHubTopology, type HubTopology } from './api-topology.ts';
import { createHubTestPki, type HubTestPki } from '../../test/support/pki.ts';
import { waitFor } from '../../test/support/wait.ts';

const svc = (topology: string | undefined) => ({
  kind: 'Service',
  metadata: { namespace: 'default', name: 'web', ...(topology ? { annotations: { 'apps.tether.dev/topology': topology } } : {}) },
});
const slice = (nodes: string[]) => ({
  kind: 'EndpointSlice',
  apiVersion: 'discovery.k8s.io/v1',
  metadata: { namespace: 'default', name: 'web-abc', labels: { 'kubernetes.io/service-name': 'web' }, resourceVersion: '7' },
  endpoints: nodes.map((n, i) => ({ addresses: [`10.0.0.${i + 1}`], nodeName: n })),
});
const pools = (a: string[], b: string[]) => [
  { metadata: { name: 'pool-a' }, status: { nodes: a } },
  { metadata: { name: 'pool-b' }, status: { nodes: b } },
];

function synced(): HubTopology {
  const t = createHubTopology();
  t.replaceServices([svc('apps.tether.dev/pool')]);
  t.replaceNodePools(pools(['n1', 'n2'], ['n3']));
  t.markSynced('services');
  t.markSynced('nodepools');
  return t;
}

describe('classify', () => {
  test('GET/LIST/WATCH of endpointslices and endpoints, with their namespace', () => {
    expect(classify('GET', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=a')).toEqual({ resource: 'endpointslices', namespace: 'default', watch: false });
    expect(classify('GET', '/apis/discovery.k8s.io/v1/endpointslices?watch=true&resourceVersion=5')).toEqual({ resource: 'endpointslices', namespace: '', watch: true });
    expect(classify('GET', '/api/v1/namespaces/kube-system/endpoints/kube-dns')).toEqual({ resource: 'endpoints', namespace: 'kube-system', watch: false });
    expect(classify('GET', '/api/v1/endpoints?watch=1')).toEqual({ resource: 'endpoints', namespace: '', watch: true });
  });
  test('anything else is not filtered', () => {
    expect(classify('POST', '/api/v1/namespaces/default/endpoints')).toBeUndefined();
    expect(classify('GET', '/api/v1/endpointslices')).toBeUndefined();
    expect(classify('GET', '/apis/discovery.k8s.io/v1/endpoints')).toBeUndefined();
    expect(classify('GET', '/api/v1/namespaces/default/pods')).toBeUndefined();
    expect(classify('GET', '/api/v1/namespaces/default/endpoints/x/status')).toBeUndefined();
  });
});

describe('hub topology state', () => {
  test("a node's view keeps its pool's endpoints only, in objects and lists", () => {
    const t = synced();
    expect(t.filterBody('n1', slice(['n1', 'n2', 'n3'])).endpoints.map((e) => e.nodeName)).toEqual(['n1', 'n2']);
    expect(t.filterBody('n3', slice(['n1', 'n2', 'n3'])).endpoints.map((e) => e.nodeName)).toEqual(['n3']);
    const { kind: _k, ...item } = slice(['n1', 'n3']);
    const list = t.filterBody('n1', { kind: 'EndpointSliceList', items: [item] });
    expect(list.items[0]!.endpoints.map((e) => e.nodeName)).toEqual(['n1']);
    expect((list.items[0] as { kind?: string }).kind).toBeUndefined();
  });

  test('a topology change of a Service ends the watches of its namespace (and all-namespace ones) only', () => {
    const t = synced();
    const ended: string[] = [];
    t.watch('n1', 'default', (r) => ended.push(`default:${r}`));
    t.watch('n1', '', (r) => ended.push(`all:${r}`));
    t.watch('n1', 'other', (r) => ended.push(`other:${r}`));
    t.observeService('MODIFIED', svc('apps.tether.dev/pool')); // unchanged topology
    expect(ended).toEqual([]);
    t.observeService('MODIFIED', svc('kubernetes.io/hostname'));
    expect(ended.sort()).toEqual(['all:the topology of Service default/web changed', 'default:the topology of Service default/web changed']);
  });

  test("a pool change ends only the watches of nodes whose pool view changed", () => {
    const t = synced();
    const ended: string[] = [];
    for (const n of ['n1', 'n2', 'n3']) t.watch(n, 'default', () => ended.push(n));
    t.observeNodePool('MODIFIED', { metadata: { name: 'pool-b' }, status: { nodes: ['n3', 'n4'] } });
    expect(ended).toEqual(['n3']);
  });
});

let pki: HubTestPki;
let apiserver: https.Server;
let upstream: ApiUpstream;
const routes = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();
const seen: IncomingMessage['headers'][] = [];

beforeAll(async () => {
  pki = await createHubTestPki();
  apiserver = https.createServer({ cert: readFileSync(pki.hub.certFile), key: readFileSync(pki.hub.keyFile) }, (req, res) => {
    seen.push(req.headers);
    routes.get(req.url!.split('?')[0]!)?.(req, res);
  });
  await new Promise<void>((r) => apiserver.listen(0, '127.0.0.1', () => r()));
  const agent = new https.Agent({ keepAlive: true, ca: readFileSync(pki.caFile) });
  upstream = { server: new URL(`https://127.0.0.1:${(apiserver.address() as AddressInfo).port}/`), agent: () => agent, hubHeaders: async () => ({}), close: () => agent.destroy() };
});
afterAll(() => {
  apiserver.close();
  apiserver.closeAllConnections?.();
  upstream.close?.();
  pki.remove();
});

function edge(open: () => Promise<Duplex>): http.Agent {
  const agent = new http.Agent({ keepAlive: false });
  (agent as unknown as { createConnection: (o: unknown, cb: (e: Error | null, s?: Duplex) => void) => void }).createConnection = (_o, cb) => {
    open().then((d) => cb(null, Object.assign(d, { setKeepAlive: () => d, setNoDelay: () => d, setTimeout: () => d, ref: () => d, unref: () => d })), (e) => cb(e));
  };
  return agent;
}

describe('filtering before the link', () => {
  test("a LIST of EndpointSlices crosses the link with the node's pool's endpoints only, asked uncompressed", async () => {
    const t = synced();
    routes.set('/apis/discovery.k8s.io/v1/namespaces/default/endpointslices', (_req, res) => {
      const { kind: _k, ...item } = slice(['n1', 'n2', 'n3']);
      const body = JSON.stringify({ kind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: '9' }, items: [item] });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
    const f = createApiForwarder({ upstream, impersonation: 'constrained', topology: t, log: createMemoryLogger() });
    const body = await new Promise<string>((resolve, reject) =>
      http
        .get({ host: 'x', path: '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices', agent: edge(() => f.open('n3', 'kube-apiserver', 0)), headers: { 'accept-encoding': 'gzip' } }, (res) => {
          let b = '';
          res.on('data', (c) => (b += c));
          res.on('end', () => (expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(b)), resolve(b)));
        })
        .on('error', reject),
    );
    expect(JSON.parse(body).items[0].endpoints.map((e: { nodeName: string }) => e.nodeName)).toEqual(['n3']);
    expect(seen.at(-1)!['accept-encoding']).toBe('identity');
    f.close();
  });

  test('a WATCH is filtered event by event and ended with 410 Expired when the topology changes', async () => {
    const t = synced();
    let upstreamClosed = false;
    let sendSecond!: () => void;
    routes.set('/apis/discovery.k8s.io/v1/endpointslices', (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(JSON.stringify({ type: 'ADDED', object: slice(['n1', 'n3']) }) + '\n');
      sendSecond = () => res.write(JSON.stringify({ type: 'MODIFIED', object: slice(['n2', 'n3']) }) + '\n' + JSON.stringify({ type: 'BOOKMARK', object: { kind: 'EndpointSlice', metadata: { resourceVersion: '8' } } }) + '\n');
      req.socket.once('close', () => (upstreamClosed = true));
    });
    const f = createApiForwarder({ upstream, impersonation: 'constrained', topology: t, log: createMemoryLogger() });
    const events: { type: string; object: any }[] = [];
    let ended = false;
    let pending = '';
    http
      .get({ host: 'x', path: '/apis/discovery.k8s.io/v1/endpointslices?watch=true', agent: edge(() => f.open('n1', 'kube-apiserver', 0)) }, (res) => {
        res.on('data', (c: Buffer) => {
          pending += c;
          for (let i = pending.indexOf('\n'); i >= 0; i = pending.indexOf('\n')) {
            events.push(JSON.parse(pending.slice(0, i)));
            pending = pending.slice(i + 1);
          }
        });
        res.on('end', () => (ended = true));
      })
      .on('error', () => {});
    await waitFor('first event', () => events.length === 1);
    expect(events[0]!.object.endpoints.map((e: { nodeName: string }) => e.nodeName)).toEqual(['n1']);
    sendSecond();
    await waitFor('second event and bookmark', () => events.length === 3);
    expect(events[1]!.object.endpoints.map((e: { nodeName: string }) => e.nodeName)).toEqual(['n2']);
    expect(events[2]!.type).toBe('BOOKMARK');
    expect(ended).toBe(false);
    t.observeNodePool('MODIFIED', { metadata: { name: 'pool-a' }, status: { nodes: ['n1'] } });
    await waitFor('watch ended', () => ended);
    expect(events.at(-1)).toMatchObject({ type: 'ERROR', object: { kind: 'Status', reason: 'Expired', code: 410 } });
    expect(events.at(-1)!.object.message).toContain('pool membership of node n1 changed');
    await waitFor('upstream watch aborted', () => upstreamClosed);
    f.close();
  });

  test('before the first Service and NodePool lists, answers pass unfiltered', async () => {
    const t = createHubTopology();
    t.replaceServices([svc('kubernetes.io/hostname')]);
    routes.set('/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-abc', (_req, res) => {
      const body = JSON.stringify(slice(['n1', 'n2']));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
    const f = createApiForwarder({ upstream, impersonation: 'constrained', topology: t, log: createMemoryLogger() });
    const get = () =>
      new Promise<any>((resolve, reject) =>
        http
          .get({ host: 'x', path: '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-abc', agent: edge(() => f.open('n1', 'kube-apiserver', 0)) }, (res) => {
            let b = '';
            res.on('data', (c) => (b += c));
            res.on('end', () => resolve(JSON.parse(b)));
          })
          .on('error', reject),
      );
    expect((await get()).endpoints.length).toBe(2);
    t.markSynced('services');
    t.markSynced('nodepools');
    expect((await get()).endpoints.map((e: { nodeName: string }) => e.nodeName)).toEqual(['n1']);
    f.close();
  });
});
