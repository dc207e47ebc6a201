/**
 * Fuzz: the agent's proxy listener offline, in front of the real cache and snapshot store (issue 10,
 * "Done when": the fuzz suite for the proxy listener ends with a store that still passes
 * `store check`). In process: a stand-in apiserver (an mTLS server, this is not an end-to-end claim)
 * answers the kubelet's first lists so the recorder fills a real SQLite store; then the link is
 * "cut" (the pool has no upstream) and mutated kubelet requests — reads, watches, status patches of
 * every kind, lease and event writes, noise — go to the proxy with the kubelet's local certificate,
 * without one, or as bytes before TLS.
 *
 * Asserted: the proxy keeps serving; every answer starts with a status line and every refusal is a
 * Kubernetes Status of its code; descriptors and heap do not grow; afterwards `tether-edge store
 * check` passes on the store and SQLite's integrity check says ok. Seeds: a fixed one plus a printed
 * random one; TETHER_FUZZ_SEED replays one, TETHER_FUZZ_CASES sets the inputs per seed.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { Database } from 'bun:sqlite';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDb } from '#store-driver';
import { createMemoryLogger } from '../shared/log.ts';
import { Registry } from '../shared/metrics.ts';
import { createRandom, fuzzPlan, heapAfterGc, mutate, openFds } from './support/fuzz.ts';
import { createCache, createEventBus } from '../edge/cache/index.ts';
import { createLocalCa, localCaFrom } from '../edge/certs/local-ca.ts';
import { type FuzzSender, checkAnswer, exchange } from './support/fuzz-client.ts';
import { createListener, type Listener } from '../edge/proxy/listener.ts';
import { type ProxyServer, type Target, createProxyServer } from '../edge/proxy/server.ts';
import { type Store, createStore } from '../edge/store/index.ts';

const mk = (cn: string) => {
  const c = createLocalCa(cn);
  return localCaFrom('mem', c.certPem, c.keyPem);
};
const clusterCa = mk('cluster CA');
const localCa = mk('local CA');
const nodeCert = clusterCa.issue('system:node:edge-1', 'client');
const kubelet = localCa.issue('kubelet', 'client');
const dir = mkdtempSync(join(tmpdir(), 'tether-proxy-fuzz-'));
const edgeMain = fileURLToPath(new URL('../edge/main.ts', import.meta.url));

const pod = (i: number) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: `p${i}`, namespace: 'default', uid: `uid-${i}`, resourceVersion: String(10 + i), labels: { app: 'web' } },
  spec: { nodeName: 'edge-1', containers: [{ name: 'c', image: 'app:1' }] },
  status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }], podIP: `198.18.9.${i}` },
});
const nodeObj = {
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name: 'edge-1', uid: 'node-uid', resourceVersion: '9', labels: { 'kubernetes.io/hostname': 'edge-1' } },
  status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }], addresses: [{ type: 'InternalIP', address: '198.18.9.1' }] },
};
const lease = {
  apiVersion: 'coordination.k8s.io/v1',
  kind: 'Lease',
  metadata: { name: 'edge-1', namespace: 'kube-node-lease', uid: 'lease-uid', resourceVersion: '8' },
  spec: { holderIdentity: 'edge-1', leaseDurationSeconds: 40, renewTime: '2026-12-03T00:00:00.000000Z' },
};

/** What the stand-in apiserver answers while "online". */
function answer(url: string): unknown {
  const u = new URL(url, 'https://x');
  if (u.pathname === '/api/v1/pods') return { apiVersion: 'v1', kind: 'PodList', metadata: { resourceVersion: '20' }, items: [1, 2, 3].map(pod) };
  if (u.pathname === '/api/v1/nodes') return { apiVersion: 'v1', kind: 'NodeList', metadata: { resourceVersion: '20' }, items: [nodeObj] };
  if (u.pathname === '/api/v1/nodes/edge-1') return nodeObj;
  if (u.pathname === '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-1') return lease;
  return { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 404, reason: 'NotFound', message: 'not here' };
}

let apiserver: Listener;
let proxy: ProxyServer;
let store: Store;
let online = true;
let port = 0;

beforeAll(async () => {
  const serving = clusterCa.issue('apiserver', 'server', { hosts: ['127.0.0.1'] });
  apiserver = createListener(
    (req, res) => {
      req.resume();
      req.on('end', () => {
        const body = JSON.stringify(answer(req.url ?? '/'));
        const code = body.includes('"NotFound"') ? 404 : 200;
        res.writeHead(code, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }).end(body);
      });
    },
    { caPem: clusterCa.certPem, certPem: serving.certPem, keyPem: serving.keyPem },
  );
  await new Promise<void>((r) => apiserver.socketServer.listen(0, '127.0.0.1', () => r()));
  const url = new URL(`https://127.0.0.1:${(apiserver.socketServer.address() as { port: number }).port}`);
  const target: Target = {
    url,
    agent: new HttpsAgent({ ca: clusterCa.certPem, cert: nodeCert.certPem, key: nodeCert.keyPem }),
    bearerAgent: new HttpsAgent({ ca: clusterCa.certPem }),
    tlsOptions: (withIdentity) => (withIdentity ? { ca: clusterCa.certPem, cert: nodeCert.certPem, key: nodeCert.keyPem } : { ca: clusterCa.certPem }),
  };
  store = createStore(openDb({ path: join(dir, 'tether.db') }));
  const log = createMemoryLogger('error');
  const cache = createCache({ store, bus: createEventBus(), log, onStoreError: () => {}, onStoreOk: () => {}, onDecodeError: () => {}, onEventsDropped: () => {} });
  const servingLocal = localCa.issue('tether-edge', 'server', { hosts: ['127.0.0.1'] });
  proxy = await createProxyServer({
    listen: '127.0.0.1:0',
    upstreams: { pick: () => (online ? target : undefined), reportFailure: () => {}, track: () => () => {} },
    cache,
    isCachedComponent: (c) => c === 'kubelet',
    log,
    requests: new Registry().counter('t', 't'),
    clientAuth: { mode: 'tls', tls: { caPem: localCa.certPem, certPem: servingLocal.certPem, keyPem: servingLocal.keyPem } },
  });
  port = Number(proxy.address.split(':').pop());
});

afterAll(async () => {
  await proxy?.close();
  await apiserver?.close();
  rmSync(dir, { recursive: true, force: true });
});

const ex = async (input: Uint8Array, who: FuzzSender) => (await exchange({ port, caPem: localCa.certPem, kubelet, idleMs: 400 }, input, who)).bytes;

const enc = (s: string) => new TextEncoder().encode(s);
const UA = 'User-Agent: kubelet/v1.34.4 (linux/amd64) kubernetes/abc\r\n';
const req = (method: string, path: string, body?: { type: string; text: string }) =>
  `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:10261\r\n${UA}Accept: application/json\r\n` +
  (body ? `Content-Type: ${body.type}\r\nContent-Length: ${Buffer.byteLength(body.text)}\r\n\r\n${body.text}` : '\r\n');

test('offline, mutated kubelet requests through the real cache leave a store that passes store check', async () => {
  // Online: the kubelet's lists and gets, recorded into the store by the real recorder.
  for (const path of ['/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1', '/api/v1/nodes?fieldSelector=metadata.name%3Dedge-1', '/api/v1/nodes/edge-1', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-1']) {
    const a = (await ex(enc(req('GET', path)), 'kubelet')).toString('latin1');
    expect(a, path).toStartWith('HTTP/1.1 200 ');
  }
  const recorded = () => store.objects.counts();
  for (let i = 0; i < 100 && !(recorded()['v1/pods'] && recorded()['v1/nodes']); i++) await new Promise((r) => setTimeout(r, 20));
  expect(recorded()['v1/pods']).toBe(3);
  online = false;
  const readBack = (await ex(enc(req('GET', '/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1')), 'kubelet')).toString('latin1');
  expect(readBack).toStartWith('HTTP/1.1 200 ');
  expect(readBack).toContain('"p2"');

  const smp = 'application/strategic-merge-patch+json';
  const corpus = [
    req('GET', '/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1&limit=2'),
    req('GET', '/api/v1/namespaces/default/pods/p1'),
    req('GET', '/api/v1/nodes/edge-1'),
    req('GET', '/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1&watch=true&resourceVersion=20&timeoutSeconds=1'),
    req('PATCH', '/api/v1/nodes/edge-1/status', { type: smp, text: JSON.stringify({ status: { conditions: [{ type: 'Ready', status: 'False', reason: 'Fuzz' }] } }) }),
    req('PATCH', '/api/v1/namespaces/default/pods/p1/status', { type: smp, text: JSON.stringify({ metadata: { uid: 'uid-1' }, status: { $setElementOrder: [{ type: 'Ready' }], conditions: [{ type: 'Ready', status: 'False' }] } }) }),
    req('PATCH', '/api/v1/namespaces/default/pods/p2/status', { type: 'application/merge-patch+json', text: JSON.stringify({ status: { phase: 'Failed', message: 'x' } }) }),
    req('PATCH', '/api/v1/namespaces/default/pods/p3/status', { type: 'application/json-patch+json', text: JSON.stringify([{ op: 'replace', path: '/status/phase', value: 'Succeeded' }, { op: 'add', path: '/status/conditions/0', value: { type: 'X', status: 'True' } }]) }),
    req('PUT', '/api/v1/nodes/edge-1/status', { type: 'application/json', text: JSON.stringify({ ...nodeObj, status: { ...nodeObj.status, conditions: [{ type: 'Ready', status: 'Unknown' }] } }) }),
    req('PUT', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-1', { type: 'application/json', text: JSON.stringify({ ...lease, spec: { ...lease.spec, renewTime: '2026-12-03T01:00:00.000000Z' } }) }),
    req('POST', '/api/v1/namespaces/default/events', { type: 'application/json', text: JSON.stringify({ apiVersion: 'v1', kind: 'Event', metadata: { name: 'e1', namespace: 'default' }, involvedObject: { kind: 'Pod', name: 'p1', namespace: 'default' }, reason: 'Fuzz', message: 'm' }) }),
    req('PATCH', '/api/v1/namespaces/default/pods/p1/status', { type: smp, text: '{"__proto__":{"polluted":1},"status":{}}' }),
  ].map(enc);

  const { seeds, casesPerSeed } = fuzzPlan('edge proxy listener, offline with the real store', 1500);
  const fdsBefore = openFds();
  const heapBefore = heapAfterGc();
  for (const seed of seeds) {
    const r = createRandom(seed);
    const inputs = Array.from({ length: casesPerSeed }, () => {
      const roll = r.int(20);
      const who: FuzzSender = roll === 0 ? 'noise' : roll === 1 ? 'none' : 'kubelet';
      // Now and then an input unmutated, so well-formed offline writes land too.
      const base = r.pick(corpus);
      return { who, bytes: who === 'noise' ? r.bytes(1 + r.int(600)) : r.int(4) === 0 ? base : mutate(r, base, 16_000) };
    });
    const B = 24;
    for (let i = 0; i < inputs.length; i += B) {
      await Promise.all(
        inputs.slice(i, i + B).map(async ({ who, bytes }, k) => {
          const answer = await ex(bytes, who);
          if (who !== 'noise') checkAnswer(answer, `seed ${seed} case ${i + k} (${JSON.stringify(Buffer.from(bytes.subarray(0, 120)).toString('latin1'))})`);
        }),
      );
    }
  }
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  // Still serving from the store, and nothing held on to.
  const still = (await ex(enc(req('GET', '/api/v1/namespaces/default/pods/p1')), 'kubelet')).toString('latin1');
  expect(still).toStartWith('HTTP/1.1 200 ');
  expect(store.outbox.peek(1000).length).toBeGreaterThan(0); // well-formed offline writes were queued
  const deadline = Date.now() + 20_000;
  while (openFds() > fdsBefore + 8 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect(openFds()).toBeLessThanOrEqual(fdsBefore + 8);
  expect(heapAfterGc() - heapBefore).toBeLessThan(96 * 1024 * 1024);

  // The store after it all: SQLite's own integrity check, and the agent's `store check`.
  await proxy.close();
  store.db.close();
  const db = new Database(join(dir, 'tether.db'), { readonly: true });
  expect(db.query('PRAGMA integrity_check').all()).toEqual([{ integrity_check: 'ok' }]);
  db.close();
  const sc = spawnSync(process.execPath, [edgeMain, 'store', 'check', '--data-dir', dir, '--json'], { encoding: 'utf8', timeout: 60_000 });
  expect(sc.status, sc.stderr).toBe(0);
  expect(JSON.parse(sc.stdout)).toMatchObject({ ok: true });
}, 300_000);
