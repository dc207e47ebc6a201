/**
 * The Node bundle (tether-edge.mjs, for 32-bit ARM) runs the agent under Node 20 with
 * better-sqlite3, against the real control plane: it passes a kubelet LIST through and records it,
 * and a restart with no reachable apiserver answers the same LIST from the store.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Cluster, sharedCluster } from './support/cluster.ts';
import { parseAddresses, until } from './support/edge-agent.ts';
import { bunBin, run } from './support/run.ts';

const root = join(import.meta.dir, '..');
const out = mkdtempSync(join(tmpdir(), 'tether-node-bundle-'));
const node = `node-bundle-${process.pid}`;
let cluster: Cluster;
let cert: { certFile: string; keyFile: string };
const children: ChildProcess[] = [];

beforeAll(async () => {
  const b = await run([bunBin, join(root, 'scripts/build.ts'), '--out', out, '--target', 'bun-linux-x64', '--no-xz', '--no-gz'], { cwd: root });
  if (b.code !== 0) throw new Error(`build failed:\n${b.stdout}\n${b.stderr}`);
  symlinkSync(join(root, 'node_modules'), join(out, 'node_modules'));
  cluster = await sharedCluster();
  cert = await cluster.issueClientCert(`system:node:${node}`, ['system:nodes']);
  await cluster.admin.ensure('/api/v1/namespaces/default/pods', {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: `${node}-pod`, namespace: 'default' },
    spec: { nodeName: node, containers: [{ name: 'c', image: 'registry.invalid/x:1' }] },
  });
}, 600_000);

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await cluster?.admin.request('DELETE', `/api/v1/namespaces/default/pods/${node}-pod?gracePeriodSeconds=0`);
  rmSync(out, { recursive: true, force: true });
});

async function startUnderNode(server: string): Promise<{ proxy: string; admin: string; child: ChildProcess }> {
  const child = spawn('node', [join(out, 'tether-edge.mjs'), 'run', '--node-name', node, '--servers', server, '--ca-file', cluster.caFile,
    '--cert-file', cert.certFile, '--key-file', cert.keyFile, '--data-dir', join(out, 'store'), '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--insecure-plain-http', 'true'],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const addrs = await until('agent under node', async () => parseAddresses(text), (a) => a !== undefined, 30_000).catch((e) => {
    throw new Error(`${(e as Error).message}\n${text}`);
  });
  return { ...addrs!, child };
}

const list = (proxy: string) =>
  fetch(`${proxy}/api/v1/pods?fieldSelector=spec.nodeName%3D${node}`, { headers: { 'user-agent': 'kubelet/v1.34.4' } }).then(
    async (r) => ({ status: r.status, source: r.headers.get('x-tether-source'), names: ((await r.json()) as { items?: { metadata: { name: string } }[] }).items?.map((p) => p.metadata.name) }),
  );

test('the agent runs under Node: online pass-through is recorded, and served from the store after a restart offline', async () => {
  const version = await run(['node', '--version']);
  expect(Number(version.stdout.slice(1).split('.')[0])).toBeGreaterThanOrEqual(20);
  const online = await startUnderNode(cluster.server);
  await until('online', async () => (await (await fetch(`${online.admin}/status`)).json()) as { online: boolean }, (s) => s.online);
  const first = await list(online.proxy);
  expect(first).toEqual({ status: 200, source: null, names: [`${node}-pod`] });
  await until('recorded', async () => (await (await fetch(`${online.admin}/status`)).json()) as { store: { objects: Record<string, number> } }, (s) => s.store.objects['v1/pods'] === 1);
  online.child.kill('SIGKILL');
  const offline = await startUnderNode('https://127.0.0.1:1');
  expect(await list(offline.proxy)).toEqual({ status: 200, source: 'cache', names: [`${node}-pod`] });
}, 300_000);
