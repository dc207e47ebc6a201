/**
 * Certificate rotation on a cluster of its own whose controller manager signs 3-minute
 * certificates (`--cluster-signing-duration=3m`; the signer backdates notBefore by 5 minutes, so
 * each certificate spans 8 minutes and renewal falls 0.6–2.2 minutes after issuance).
 *
 * Nodes join with `tether-edge join`; the agent (edge/agent.ts's startAgent, as `tether-edge run`
 * starts it) serves from the joined node's files and rotates its certificate itself:
 * - the agent renews while a watch through it stays open; the watch's client sees no error and
 *   keeps receiving events after the first certificate has expired, and new requests authenticate
 *   with the new certificate;
 * - a certificate that expired while the agent was not running is reported with what to do, then
 *   replaced through a fresh bootstrap token made for that node (`token create --node-name`) put
 *   in the token file.
 * Bootstrap CSRs are approved by tether-hub's CSR approver (startCsrApprover): in a Tether cluster
 * kube-controller-manager approves only nodes' own renewals.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMemoryLogger } from '../shared/log.ts';
import { type CertRotation, startCertRotation } from '../edge/certs/rotation.ts';
import { PATHS } from '../edge/join/layout.ts';
import { startAgent } from '../edge/agent.ts';
import { edgeConfigSchema } from '../edge/config.ts';
import { type Cluster, startCluster, startCsrApprover } from './support/cluster.ts';
import { until } from './support/edge-agent.ts';
import { bunBin, run } from './support/run.ts';

const isRoot = process.getuid?.() === 0;
const edgeMain = fileURLToPath(new URL('../edge/main.ts', import.meta.url));
const hubMain = fileURLToPath(new URL('../cloud/main.ts', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'tether-rotation-e2e-'));
const ns = `rotation-${process.pid}`;

interface Joined {
  root: string;
  node: string;
  files: { caFile: string; certFile: string; keyFile: string; bootstrapTokenFile: string };
  first: X509Certificate;
}

describe.skipIf(!isRoot)('certificate rotation with 3-minute certificates', () => {
  let cluster: Cluster;
  let a: Joined;
  let b: Joined;
  const rotations: CertRotation[] = [];
  const closers: (() => unknown)[] = [];

  const tokenCreate = async (extra: string[] = []) => {
    const r = await run([bunBin, hubMain, 'token', 'create', '--kubeconfig', cluster.adminKubeconfig, '--server', cluster.server, '--ttl', '30m', ...extra]);
    if (r.code !== 0) throw new Error(`token create: ${r.stderr}`);
    return r.stdout.trim().split(' ').slice(2);
  };
  const joinNode = async (node: string, joinArgs: string[]): Promise<Joined> => {
    const root = join(work, node);
    mkdirSync(root);
    const r = await run([bunBin, edgeMain, 'join', ...joinArgs, '--node-name', node, '--root', root]);
    if (r.code !== 0) throw new Error(`join ${node}: ${r.stderr}`);
    const files = { caFile: join(root, PATHS.ca), certFile: join(root, PATHS.cert), keyFile: join(root, PATHS.key), bootstrapTokenFile: join(root, PATHS.bootstrapToken) };
    return { root, node, files, first: new X509Certificate(readFileSync(files.certFile)) };
  };

  beforeAll(async () => {
    cluster = await startCluster({ clusterSigningDuration: '3m' });
    const approver = await startCsrApprover(cluster);
    closers.push(() => approver.stop());
    await cluster.kubectl(['create', 'namespace', ns]);
    const joinArgs = await tokenCreate();
    a = await joinNode(`rotation-a-${process.pid}`, joinArgs);
    b = await joinNode(`rotation-b-${process.pid}`, joinArgs);
  }, 1_800_000);

  afterAll(async () => {
    for (const r of rotations) r.stop();
    for (const c of closers.reverse()) await c();
    await cluster?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('the controller manager issues certificates of 3 minutes (after 5 minutes of backdating)', () => {
    const life = Date.parse(a.first.validTo) - Date.parse(a.first.validFrom);
    expect(life).toBe(8 * 60_000);
  });

  test('the agent renews its certificate while a watch through it is open, and the watch client sees no error', async () => {
    // The agent itself (edge/agent.ts, the composition root of `tether-edge run`) with the joined node's files.
    const log = createMemoryLogger('info');
    const config = edgeConfigSchema.parse({
      servers: [cluster.server],
      caFile: a.files.caFile,
      certFile: a.files.certFile,
      keyFile: a.files.keyFile,
      bootstrapTokenFile: a.files.bootstrapTokenFile,
      dataDir: join(a.root, 'store'),
      listen: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
      insecurePlainHttp: true,
    });
    const agent = await startAgent({ config, nodeName: a.node, log });
    closers.push(() => agent.close());
    const proxy = agent.proxy;
    const rotation = { status: () => agent.status().certificate! };
    await until('agent online', async () => agent.status().online, (ok) => ok, 30_000);

    // A watch through the proxy, as kubelet's informers keep them.
    const errors: string[] = [];
    const names = new Set<string>();
    let open = true;
    const watch = http.get(`http://${proxy.address}/api/v1/namespaces/${ns}/services?watch=true`, { headers: { 'user-agent': 'rotation-e2e/1' } }, (res) => {
      if (res.statusCode !== 200) errors.push(`status ${res.statusCode}`);
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const ev = JSON.parse(buf.slice(0, i)) as { type: string; object: { metadata?: { name?: string } } };
          buf = buf.slice(i + 1);
          if (ev.type === 'ERROR') errors.push(JSON.stringify(ev.object));
          else if (ev.object.metadata?.name) names.add(ev.object.metadata.name);
        }
      });
      res.on('error', (e) => errors.push(`response: ${e.message}`));
      res.on('end', () => ((open = false), errors.push('the watch ended')));
    });
    watch.on('error', (e) => errors.push(`request: ${e.message}`));
    closers.push(() => watch.destroy());

    const firstExpiry = Date.parse(a.first.validTo);
    let i = 0;
    const seen = async () => {
      const name = `svc-${i++}`;
      await cluster.kubectl(['create', 'service', 'clusterip', name, '-n', ns, '--tcp=80:80']);
      await until(`watch event for ${name}`, async () => names.has(name), (ok) => ok, 30_000);
    };
    // Keep events flowing (one every few seconds) until two renewals happened and the first
    // certificate has expired.
    await seen();
    const rotationsWhenWatchOpened = rotation.status().rotations;
    let last = Date.now();
    await until(
      'two renewals and the first certificate expired',
      async () => {
        if (Date.now() - last > 3000) {
          last = Date.now();
          await seen();
        }
        return rotation.status();
      },
      (st) => st.rotations >= 2 && Date.now() > firstExpiry,
      600_000,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}\n${log.lines.slice(-20).map((l) => JSON.stringify(l)).join('\n')}`);
    });
    await seen(); // still delivering after the old certificate's end

    expect(rotationsWhenWatchOpened).toBe(0); // the watch was open before the first renewal
    expect(errors).toEqual([]);
    expect(open).toBe(true);
    const st = rotation.status();
    expect(st.problem).toBeNull();
    expect(st.state).toBe('valid');
    const current = new X509Certificate(readFileSync(a.files.certFile));
    expect(current.serialNumber).not.toBe(a.first.serialNumber);
    expect(Date.parse(current.validTo)).toBeGreaterThan(Date.now());

    // A new request through the proxy authenticates as the node: only the new certificate can.
    const who = await fetch(`http://${proxy.address}/apis/authentication.k8s.io/v1/selfsubjectreviews`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }),
    });
    expect(who.status).toBe(201);
    expect(((await who.json()) as any).status.userInfo.username).toBe(`system:node:${a.node}`);

    // The renewals were CSRs of the node itself, approved by the controller manager or by
    // tether-hub (both approve a node's own renewal; whichever comes first).
    const csrs = (await cluster.admin.request('GET', '/apis/certificates.k8s.io/v1/certificatesigningrequests')).body.items as any[];
    const renewals = csrs.filter((c) => c.spec.username === `system:node:${a.node}`);
    expect(renewals.length).toBeGreaterThanOrEqual(2);
    for (const c of renewals) {
      expect(c.status.conditions).toContainEqual(expect.objectContaining({ type: 'Approved', reason: expect.stringMatching(/^(AutoApproved|TetherNodeRenewal)$/) }));
    }
  }, 900_000);

  test('a certificate that expired while the agent was down is replaced through a fresh bootstrap token; until then status says what to do', async () => {
    const expiry = Date.parse(b.first.validTo);
    await until('the certificate of the stopped node expired', async () => Date.now(), (now) => now > expiry + 1000, 600_000);
    const log = createMemoryLogger('info');
    let handed = 0;
    const rotation = startCertRotation({
      nodeName: b.node,
      servers: [cluster.server],
      ...b.files,
      log,
      retryMs: 300,
      maxRetryMs: 1000,
      onRotated: () => void handed++,
    });
    rotations.push(rotation);
    const stuck = await until('a problem reported', async () => rotation.status(), (st) => st.problem !== null, 30_000);
    expect(stuck.state).toBe('expired');
    expect(stuck.problem).toContain('tether-hub token create');
    expect(stuck.problem).toContain(b.files.bootstrapTokenFile);
    expect(log.lines.some((l) => l.level === 'error' && String(l.error).includes(b.files.bootstrapTokenFile))).toBe(true);

    const fresh = await tokenCreate(['--node-name', b.node]); // b exists: only a token made for it may re-join it
    const token = fresh[fresh.indexOf('--token') + 1]!;
    writeFileSync(b.files.bootstrapTokenFile, `${token}\n`, { mode: 0o600 });
    const st = await until('re-bootstrapped', async () => rotation.status(), (s) => s.rotations === 1, 120_000);
    expect(st).toMatchObject({ state: 'valid', problem: null });
    expect(handed).toBe(1);
    expect(existsSync(b.files.bootstrapTokenFile)).toBe(false); // used once, then removed
    const renewed = new X509Certificate(readFileSync(b.files.certFile));
    expect(Date.parse(renewed.validTo)).toBeGreaterThan(Date.now());
    const who = await cluster.client({ certFile: b.files.certFile, keyFile: b.files.keyFile }).request('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'SelfSubjectReview',
    });
    expect(who.body.status.userInfo.username).toBe(`system:node:${b.node}`);
    const csrs = (await cluster.admin.request('GET', '/apis/certificates.k8s.io/v1/certificatesigningrequests')).body.items as any[];
    expect(csrs.filter((c) => c.spec.username === `system:bootstrap:${token.split('.')[0]}`).length).toBeGreaterThanOrEqual(1);
  }, 900_000);
});
