/**
 * The simulator against the in-memory apiserver: the requests a kubelet makes, and its HTTPS
 * endpoint. The end-to-end suite (test/kubelet-sim.e2e.test.ts) covers the real control plane.
 */
import { afterEach, beforeEach, expect, test } from 'bun:test';
import { createMemoryLogger } from '../../../shared/log.ts';
import { USER_AGENT } from './api-client.ts';
import { startFakeApiserver, type FakeApiserver } from './_fake-apiserver.ts';
import { createKubeletSim, type KubeletSim } from './sim.ts';
import { until, waitFor } from '../wait.ts';

let api: FakeApiserver;
let sim: KubeletSim;

beforeEach(() => {
  api = startFakeApiserver();
});
afterEach(async () => {
  await sim?.stop();
  api.stop();
});

async function startSim(): Promise<KubeletSim> {
  sim = createKubeletSim({
    nodeName: 'edge-1', server: api.url, address: '127.0.0.1', port: 0, log: createMemoryLogger('info'),
    leaseIntervalMs: 30, statusIntervalMs: 30, logIntervalMs: 20,
  });
  await sim.start();
  return sim;
}

const requests = (method: string, path: string | RegExp) =>
  api.requests.filter((r) => r.method === method && (typeof path === 'string' ? r.path === path : path.test(r.path)));

const boundPod = (name: string, extra: any = {}) => ({
  apiVersion: 'v1', kind: 'Pod',
  metadata: { name, namespace: 'default' },
  spec: {
    nodeName: 'edge-1', serviceAccountName: 'default',
    containers: [{ name: 'app', image: 'busybox:1', envFrom: [{ configMapRef: { name: 'app-config' } }] }],
    volumes: [
      { name: 'creds', secret: { secretName: 'app-secret' } },
      { name: 'kube-api-access', projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3607 } }, { configMap: { name: 'kube-root-ca.crt' } }] } },
    ],
    ...extra,
  },
  status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True' }] },
});

test('registers its Node with labels, addresses and its kubelet port; every request says it is a kubelet', async () => {
  const s = await startSim();
  await s.registered;
  const post = requests('POST', '/api/v1/nodes')[0]!;
  const node = post.body;
  expect(node.metadata.labels).toMatchObject({ 'kubernetes.io/hostname': 'edge-1', 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': expect.any(String) });
  expect(node.status.addresses).toEqual([{ type: 'InternalIP', address: '127.0.0.1' }, { type: 'Hostname', address: 'edge-1' }]);
  expect(node.status.daemonEndpoints.kubeletEndpoint.Port).toBe(s.port());
  expect(node.status.capacity.pods).toBe('110');
  expect(node.status.conditions.find((c: any) => c.type === 'Ready').status).toBe('True');
  expect(node.status.nodeInfo.kubeletVersion).toBe('v1.37.2');
  for (const r of api.requests) {
    expect(r.headers.get('user-agent')).toBe(USER_AGENT);
    expect(r.headers.get('accept')).toBe('application/json');
  }
  expect(USER_AGENT).toMatch(/^kubelet\/v1\.37\.2 \(linux\/\w+\) kubernetes\/\w+$/);
});

test('an existing Node is fetched and patched through its status subresource', async () => {
  api.put('nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'edge-1', labels: { keep: 'me' } }, status: {} });
  await (await startSim()).registered;
  expect(requests('POST', '/api/v1/nodes')[0]).toBeDefined();
  expect(requests('GET', '/api/v1/nodes/edge-1').length).toBeGreaterThan(0);
  const patch = requests('PATCH', '/api/v1/nodes/edge-1/status')[0]!;
  expect(patch.headers.get('content-type')).toBe('application/strategic-merge-patch+json');
  expect(api.get('nodes', '', 'edge-1').metadata.labels).toMatchObject({ keep: 'me', 'kubernetes.io/hostname': 'edge-1' });
});

test('creates its Lease, then renews it by PUT with a newer renewTime and the node as owner', async () => {
  await startSim();
  const leasePath = '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-1';
  await waitFor('two renewals', () => requests('PUT', leasePath).length >= 2, 4_000);
  expect(requests('POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases').length).toBe(1);
  const [a, b] = requests('PUT', leasePath);
  expect(a!.body.spec.holderIdentity).toBe('edge-1');
  expect(a!.body.spec.leaseDurationSeconds).toBe(40);
  expect(b!.body.spec.renewTime > a!.body.spec.renewTime).toBe(true);
  expect(b!.body.spec.renewTime).toMatch(/\.\d{6}Z$/);
  const lease = await until('owner', () => api.get('leases', 'kube-node-lease', 'edge-1')?.metadata.ownerReferences?.[0], (v) => !!v, 4_000);
  expect(lease).toMatchObject({ kind: 'Node', name: 'edge-1', uid: api.get('nodes', '', 'edge-1').metadata.uid });
});

test('posts node status heartbeats as strategic merge patches after reading the node at resourceVersion 0', async () => {
  await startSim();
  await waitFor('heartbeats', () => requests('PATCH', '/api/v1/nodes/edge-1/status').length >= 3, 4_000);
  const gets = requests('GET', '/api/v1/nodes/edge-1');
  expect(gets.some((g) => g.query.get('resourceVersion') === '0')).toBe(true);
  const [, second, third] = requests('PATCH', '/api/v1/nodes/edge-1/status');
  expect(second!.headers.get('content-type')).toBe('application/strategic-merge-patch+json');
  const beat = (p: any) => p.body.status.conditions.find((c: any) => c.type === 'Ready');
  expect(beat(second).status).toBe('True');
  expect(beat(third).lastHeartbeatTime >= beat(second).lastHeartbeatTime).toBe(true);
  expect(second!.body.status['$setElementOrder/conditions']).toContainEqual({ type: 'Ready' });
});

test('a bound pod gets its token, its ConfigMaps and Secrets watched, and is reported Running with an IP', async () => {
  api.put('pods', boundPod('web'));
  api.put('pods', { ...boundPod('elsewhere'), spec: { ...boundPod('x').spec, nodeName: 'edge-2' } });
  const s = await startSim();
  const pod = await until('running', () => (api.get('pods', 'default', 'web')?.status.phase === 'Running' ? api.get('pods', 'default', 'web') : undefined), (v) => !!v, 4_000);
  expect(pod.status.podIP).toMatch(/^127\.0\.0\.(\d+)$/);
  expect(Number(pod.status.podIP.split('.')[3])).toBeGreaterThanOrEqual(10);
  expect(pod.status.hostIP).toBe('127.0.0.1');
  expect(pod.status.conditions.map((c: any) => `${c.type}=${c.status}`)).toEqual(
    expect.arrayContaining(['Ready=True', 'ContainersReady=True', 'Initialized=True', 'PodScheduled=True']));
  expect(pod.status.containerStatuses[0]).toMatchObject({ name: 'app', ready: true, state: { running: { startedAt: expect.any(String) } } });
  const patch = requests('PATCH', '/api/v1/namespaces/default/pods/web/status')[0]!;
  expect(patch.headers.get('content-type')).toBe('application/strategic-merge-patch+json');
  expect(patch.body.metadata.uid).toBe(pod.metadata.uid);
  const token = requests('POST', '/api/v1/namespaces/default/serviceaccounts/default/token')[0]!;
  expect(token.body.spec.boundObjectRef).toMatchObject({ kind: 'Pod', name: 'web', uid: pod.metadata.uid });
  expect(s.watchedObjects()).toEqual(['configmaps/default/app-config', 'configmaps/default/kube-root-ca.crt', 'secrets/default/app-secret']);
  await waitFor('configmap watch', () => requests('GET', '/api/v1/namespaces/default/configmaps').some((r) => r.query.get('watch') === 'true'), 4_000);
  expect(requests('GET', '/api/v1/namespaces/default/configmaps')[0]!.query.get('fieldSelector')).toMatch(/^metadata\.name=/);
  expect(s.pods().map((p) => p.name)).toEqual(['web']);
  expect(requests('PATCH', /elsewhere/).length).toBe(0);
});

test('a pod marked for deletion is stopped and deleted with gracePeriodSeconds=0 and a uid precondition', async () => {
  api.put('pods', boundPod('gone'));
  const s = await startSim();
  await waitFor('running', () => api.get('pods', 'default', 'gone')?.status.phase === 'Running', 4_000);
  const pod = api.get('pods', 'default', 'gone');
  api.put('pods', { ...pod, metadata: { ...pod.metadata, deletionTimestamp: new Date().toISOString(), deletionGracePeriodSeconds: 30 } });
  await waitFor('deleted', () => !api.get('pods', 'default', 'gone'), 4_000);
  const del = requests('DELETE', '/api/v1/namespaces/default/pods/gone')[0]!;
  expect(del.body).toMatchObject({ gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid } });
  await waitFor('forgotten', () => s.pods().length === 0, 4_000);
  expect(s.watchedObjects()).toEqual([]);
});

test('list-watches Services and keeps them in memory', async () => {
  api.put('services', { metadata: { name: 'kubernetes', namespace: 'default' }, spec: {} });
  const s = await startSim();
  await waitFor('listed', () => s.services().length === 1, 4_000);
  api.put('services', { metadata: { name: 'web', namespace: 'shop' }, spec: {} });
  await waitFor('watched', () => s.services().length === 2, 4_000);
  expect(requests('GET', '/api/v1/services').some((r) => r.query.get('watch') === 'true')).toBe(true);
});

test('serves healthz, metrics, its pods and followed container logs over HTTPS', async () => {
  api.put('pods', boundPod('logger'));
  const s = await startSim();
  await waitFor('running', () => !!s.pods()[0], 4_000);
  const base = `https://127.0.0.1:${s.port()}`;
  const get = (path: string) => fetch(base + path, { tls: { rejectUnauthorized: false } } as RequestInit);
  expect(await (await get('/healthz')).text()).toBe('ok');
  const metrics = await (await get('/metrics')).text();
  expect(metrics).toContain('kubelet_running_pods 1');
  expect(metrics).toMatch(/rest_client_requests_total\{code="201",host="127\.0\.0\.1:\d+",method="POST"\} \d+/);
  const pods = (await (await get('/pods')).json()) as { items: any[] };
  expect(pods.items.map((p: any) => p.metadata.name)).toEqual(['logger']);
  expect((await get('/containerLogs/default/logger/nope')).status).toBe(404);

  const follow = await get('/containerLogs/default/logger/app?follow=true&tailLines=1&timestamps=true');
  const reader = follow.body!.getReader();
  let text = '';
  while ((text.match(/\n/g) ?? []).length < 3) text += new TextDecoder().decode((await reader.read()).value);
  const lines = text.trim().split('\n');
  const numbers = lines.map((l) => Number(/line (\d+)$/.exec(l)![1]));
  expect(numbers[1]).toBe(numbers[0]! + 1);
  expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:]+\.\d{9}Z \S+ logger\/app line \d+$/);
  await reader.cancel();
});

test('exec upgrades reach the streams module for the pods this node runs; other upgrades answer 404', async () => {
  api.put('pods', boundPod('shell'));
  const s = await startSim();
  await waitFor('running', () => !!s.pods()[0], 4_000);
  const url = (path: string) => `wss://127.0.0.1:${s.port()}${path}`;
  // Both spellings of the stream flags: the kubelet API's (output, error) and the streams parser's.
  const flags = 'output=1&error=1&stdout=1&stderr=1';
  const exec = (path: string) =>
    new Promise<{ opened: boolean; out: string; status: string }>((resolve) => {
      const ws = new WebSocket(url(path), { protocols: ['v5.channel.k8s.io'], tls: { rejectUnauthorized: false } } as any);
      ws.binaryType = 'arraybuffer';
      let opened = false;
      let out = '';
      let status = '';
      ws.onopen = () => (opened = true);
      ws.onmessage = (m) => {
        const b = new Uint8Array(m.data as ArrayBuffer);
        if (b[0] === 1) out += new TextDecoder().decode(b.subarray(1));
        if (b[0] === 3) status += new TextDecoder().decode(b.subarray(1));
      };
      ws.onclose = () => resolve({ opened, out, status });
      ws.onerror = () => {};
    });
  const ok = await exec(`/exec/default/shell/app?command=echo&command=hi&${flags}`);
  expect(ok).toMatchObject({ opened: true, out: 'hi\n' });
  expect(JSON.parse(ok.status).status).toBe('Success');
  expect((await exec(`/exec/default/nobody/app?command=echo&${flags}`)).opened).toBe(false);
  expect((await exec(`/exec/default/shell/nope?command=echo&${flags}`)).opened).toBe(false);
  expect((await exec('/somewhere/else')).opened).toBe(false);

  const raw = await fetch(`https://127.0.0.1:${s.port()}/exec/default/nobody/app?command=echo&${flags}`, {
    headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13', 'sec-websocket-protocol': 'v5.channel.k8s.io' },
    tls: { rejectUnauthorized: false },
  } as RequestInit);
  expect(raw.status).toBe(404);
});
