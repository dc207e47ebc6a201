/**
 * Certificate rotation on a cluster of its own whose controller manager signs 3-minute
 * certificates (`--cluster-signing-duration=3m`; the signer backdates notBefore by 5 minutes, so
 * each certificate spans 8 minutes and renewal falls 0.6–2.2 minutes after issuance).
 *
 * Nodes join with `tether-edge join`; the agent's upstream pool and proxy are composed in-process
 * with `startCertRotation` wired as edge/agent.ts is to wire it (onRotated → pool.setTls):
 * - the agent renews while a watch through it stays open; the watch's client sees no error and
 *   keeps receiving events after the first certificate has expired, and new requests authenticate
 *   with the new certificate;
 * - a certificate that expired while the agent was not running is reported with what to do, then
 *   replaced through a fresh bootstrap token put in the token file.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMemoryLogger } from '../shared/log.ts';
import { Registry } from '../shared/metrics.ts';
import { type CertRotation, startCertRotation } from '../edge/certs/rotation.ts';
import { PATHS } from '../edge/join/layout.ts';
import { type ProxyCache, type ProxyServer, type Target, createProxyServer } from '../edge/proxy/server.ts';
import { type Upstream, type UpstreamPool, createUpstreamPool } from '../edge/upstream/pool.ts';
import { type Cluster, startCluster } from './support/cluster.ts';
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

  const tokenCreate = async () => {
    const r = await run([bunBin, hubMain, 'token', 'create', '--kubeconfig', cluster.adminKubeconfig, '--server', cluster.server, '--ttl', '30m']);
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
    const log = createMemoryLogger('info');
    const tls: { ca: Buffer; cert: Buffer; key: Buffer } = { ca: readFileSync(a.files.caFile), cert: readFileSync(a.files.certFile), key: readFileSync(a.files.keyFile) };
    const pool: UpstreamPool = createUpstreamPool({ servers: [cluster.server], lbMode: 'priority', tls, log: log.child({ part: 'upstream' }) });
    closers.push(() => pool.close());
    // The agent's wiring (edge/agent.ts): targets read the pool's current agent for every request.
    const bearer = new HttpsAgent({ keepAlive: true, ca: tls.ca });
    closers.push(() => bearer.destroy());
    const targets = new Map<Upstream, Target>();
    const targetOf = (u: Upstream): Target => {
      let t = targets.get(u);
      if (!t) {
        t = {
          url: u.url,
          get agent() {
            return u.agent;
          },
          bearerAgent: bearer,
          tlsOptions: (withIdentity) => (withIdentity ? { ca: tls.ca, cert: tls.cert, key: tls.key } : { ca: tls.ca }),
        };
        targets.set(u, t);
      }
      return t;
    };
    const onlineOnly = (): never => {
      throw new Error('offline answers are not part of this test');
    };
    const cache: ProxyCache = { tapFor: () => undefined, read: onlineOnly, watch: onlineOnly, write: onlineOnly, document: () => undefined };
    const proxy: ProxyServer = await createProxyServer({
      listen: '127.0.0.1:0',
      upstreams: {
        pick: () => {
          const u = pool.pick();
          return u ? targetOf(u) : undefined;
        },
        reportFailure: (t, e) => pool.reportFailure(pool.all().find((u) => u.url === t.url)!, e),
        track: (t, abort) => pool.track(pool.all().find((u) => u.url === t.url)!, abort),
      },
      cache,
      isCachedComponent: () => false,
      log: log.child({ part: 'proxy' }),
      requests: new Registry().counter('requests_total', 'requests'),
    });
    closers.push(() => proxy.close());
    await pool.ready;

    const rotation = startCertRotation({
      nodeName: a.node,
      servers: () => [pool.pick()?.url.href ?? cluster.server],
      ...a.files,
      log: log.child({ part: 'certs' }),
      onRotated: (material) => {
        tls.cert = material.cert;
        tls.key = material.key;
        pool.setTls(material);
      },
    });
    rotations.push(rotation);

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

    // The renewals were CSRs of the node itself, approved by the controller manager.
    const csrs = (await cluster.admin.request('GET', '/apis/certificates.k8s.io/v1/certificatesigningrequests')).body.items as any[];
    const renewals = csrs.filter((c) => c.spec.username === `system:node:${a.node}`);
    expect(renewals.length).toBeGreaterThanOrEqual(2);
    for (const c of renewals) expect(c.status.conditions).toContainEqual(expect.objectContaining({ type: 'Approved', reason: 'AutoApproved' }));
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

    const fresh = await tokenCreate();
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
