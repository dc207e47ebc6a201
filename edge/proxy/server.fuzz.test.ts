/**
 * Fuzz: the agent's proxy listener, in process, over HTTPS with the local CA, in front of a fake
 * apiserver (an mTLS server answering every request and upgrade). Inputs are mutated from a corpus
 * of real local-client requests (the kubelet's lists, watches and status patches, a CSR, an exec
 * upgrade, a chunked body, dot segments, big headers), sent with the kubelet's certificate, without
 * one, or as noise before TLS.
 *
 * Asserted: the proxy never crashes and keeps serving; every answer starts with a status line;
 * every refusal (4xx/5xx) is a Kubernetes Status of that code; afterwards the process holds no
 * more descriptors than before (small tolerance) and the heap is bounded.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { Agent as HttpsAgent } from 'node:https';
import { createMemoryLogger } from '../../shared/log.ts';
import { Registry } from '../../shared/metrics.ts';
import { createRandom, fuzzPlan, heapAfterGc, mutate, openFds } from '../../test/support/fuzz.ts';
import { createLocalCa, localCaFrom } from '../certs/local-ca.ts';
import { type FuzzSender, checkAnswer, exchange } from '../../test/support/fuzz-client.ts';
import { createListener, type Listener } from './listener.ts';
import { type ProxyServer, type Target, createProxyServer } from './server.ts';

const mk = (cn: string) => {
  const c = createLocalCa(cn);
  return localCaFrom('mem', c.certPem, c.keyPem);
};
const clusterCa = mk('cluster CA');
const localCa = mk('local CA');
const nodeCert = clusterCa.issue('system:node:edge-1', 'client');
const kubelet = localCa.issue('kubelet', 'client');
let apiserver: Listener;
let proxy: ProxyServer;
let port = 0;

beforeAll(async () => {
  const serving = clusterCa.issue('apiserver', 'server', { hosts: ['127.0.0.1'] });
  apiserver = createListener(
    (req, res) => {
      req.resume();
      req.on('end', () => {
        const body = JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Success', code: 200 });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) }).end(body);
      });
    },
    { caPem: clusterCa.certPem, certPem: serving.certPem, keyPem: serving.keyPem },
  );
  apiserver.http.on('upgrade', (_req, socket) => {
    socket.on('error', () => {});
    socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n');
  });
  await new Promise<void>((r) => apiserver.socketServer.listen(0, '127.0.0.1', () => r()));
  const url = new URL(`https://127.0.0.1:${(apiserver.socketServer.address() as { port: number }).port}`);
  const target: Target = {
    url,
    agent: new HttpsAgent({ ca: clusterCa.certPem, cert: nodeCert.certPem, key: nodeCert.keyPem }),
    bearerAgent: new HttpsAgent({ ca: clusterCa.certPem }),
    tlsOptions: (withIdentity) => (withIdentity ? { ca: clusterCa.certPem, cert: nodeCert.certPem, key: nodeCert.keyPem } : { ca: clusterCa.certPem }),
  };
  const serving2 = localCa.issue('tether-edge', 'server', { hosts: ['127.0.0.1'] });
  proxy = await createProxyServer({
    listen: '127.0.0.1:0',
    upstreams: { pick: () => target, reportFailure: () => {}, track: () => () => {} },
    cache: {
      tapFor: () => undefined,
      read: () => ({ status: 200, body: { kind: 'FromCache' } }),
      watch: (_i, sink) => sink.end(),
      write: () => ({ status: 200, body: { kind: 'WrittenOffline' } }),
      document: () => undefined,
    },
    isCachedComponent: (c) => c === 'kubelet',
    log: createMemoryLogger('error'),
    requests: new Registry().counter('t', 't'),
    clientAuth: { mode: 'tls', tls: { caPem: localCa.certPem, certPem: serving2.certPem, keyPem: serving2.keyPem } },
  });
  port = Number(proxy.address.split(':').pop());
});

afterAll(async () => {
  await proxy?.close();
  await apiserver?.close();
});

const ex = (input: Uint8Array, who: FuzzSender) => exchange({ port, caPem: localCa.certPem, kubelet }, input, who);

const enc = (s: string) => new TextEncoder().encode(s);
const UA = 'User-Agent: kubelet/v1.34.4 (linux/amd64) kubernetes/abc\r\n';

test('the proxy listener survives mutated requests and noise; every refusal is a Status; nothing leaks', async () => {
  const patch = JSON.stringify({ status: { conditions: [{ type: 'Ready', status: 'True' }] } });
  const corpus = [
    `GET /api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1&limit=500 HTTP/1.1\r\nHost: 127.0.0.1:10261\r\n${UA}Accept: application/vnd.kubernetes.protobuf,application/json\r\n\r\n`,
    `GET /api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1&watch=true&resourceVersion=5&allowWatchBookmarks=true HTTP/1.1\r\nHost: x\r\n${UA}\r\n`,
    `GET /api/v1/namespaces/default/configmaps/kube-root-ca.crt HTTP/1.1\r\nHost: x\r\n${UA}\r\n`,
    `PATCH /api/v1/nodes/edge-1/status HTTP/1.1\r\nHost: x\r\n${UA}Content-Type: application/strategic-merge-patch+json\r\nContent-Length: ${patch.length}\r\n\r\n${patch}`,
    `POST /apis/certificates.k8s.io/v1/certificatesigningrequests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`,
    `POST /api/v1/namespaces/default/pods/p/exec?command=sh&stdin=true HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n`,
    `POST /api/v1/namespaces/default/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
    `GET /api/v1/namespaces/default/pods/../secrets HTTP/1.1\r\nHost: x\r\n\r\n`,
    `GET /apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nX-Big: ${'a'.repeat(2000)}\r\n\r\n`,
  ].map(enc);
  const { seeds, casesPerSeed } = fuzzPlan('edge proxy listener', 2000);
  checkAnswer((await ex(corpus[2]!, 'kubelet')).bytes, 'warm-up');
  const fdsBefore = openFds();
  const heapBefore = heapAfterGc();
  for (const seed of seeds) {
    const r = createRandom(seed);
    const inputs = Array.from({ length: casesPerSeed }, () => {
      const roll = r.int(20);
      const who: FuzzSender = roll === 0 ? 'noise' : roll === 1 ? 'none' : 'kubelet';
      return { who, bytes: who === 'noise' ? r.bytes(1 + r.int(600)) : mutate(r, r.pick(corpus), 16_000) };
    });
    const B = 32;
    for (let i = 0; i < inputs.length; i += B) {
      await Promise.all(
        inputs.slice(i, i + B).map(async ({ who, bytes }, k) => {
          const answer = (await ex(bytes, who)).bytes;
          if (who !== 'noise') checkAnswer(answer, `seed ${seed} case ${i + k} (${JSON.stringify(Buffer.from(bytes.subarray(0, 100)).toString('latin1'))})`);
        }),
      );
    }
  }
  // Still serving, and nothing held on to.
  const still = await ex(corpus[2]!, 'kubelet');
  expect(`${still.bytes.toString('latin1')}${still.error ?? ''}`).toStartWith('HTTP/1.1 200 ');
  const deadline = Date.now() + 20_000;
  while (openFds() > fdsBefore + 8 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect(openFds()).toBeLessThanOrEqual(fdsBefore + 8);
  expect(heapAfterGc() - heapBefore).toBeLessThan(96 * 1024 * 1024);
}, 300_000);
