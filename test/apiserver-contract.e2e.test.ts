/**
 * The apiserver's contract for edge cases (issue 12), on the real control plane: a table of
 * requests sent both straight to kube-apiserver v1.37.2 and through the agent in an edge site.
 * - Online, the agent answers exactly as the apiserver does: the same code and reason, and the
 *   same message (a request the agent cannot parse goes upstream unchanged).
 * - Offline, each gets the answer docs/offline.md ("Errors offline") documents: what the agent can
 *   decide alone (malformed parameters, invalid options, bad selectors, a bad continue token) is
 *   the apiserver's own answer, word for word; a resourceVersion newer than the store is the 504
 *   Timeout with the ResourceVersionTooLarge cause; what needs the apiserver is a 503 without
 *   Retry-After.
 * - A real client-go program (default retry settings) offline: each refusal is one request (no
 *   retries) with the documented Status; the durations are printed, never asserted.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Cluster, sharedCluster } from './support/cluster.ts';
import { type EdgeAgentProcess, type LocalClient, localClient, parseAddresses, spawnAgent, until } from './support/edge-agent.ts';
import { type EdgeSite, createEdgeSite } from './support/netns.ts';
import { run } from './support/run.ts';

const isRoot = process.getuid?.() === 0;
const repo = fileURLToPath(new URL('..', import.meta.url));
const edgeMain = join(repo, 'edge/main.ts');
const node = `contract-${process.pid}`;
const ns = `contract-${process.pid}`;
const probeBin = join(repo, '.tether/client-go-probe');
const goBin = Bun.which('go') ?? '/usr/local/go/bin/go';

interface Answer {
  status: number;
  body: any;
  retryAfter: string | null;
  source: string | null;
}

/** One edge case: a GET path (relative to the test namespace's configmaps unless absolute). */
interface Case {
  name: string;
  path: string;
  /** What the agent answers offline; absent: the apiserver's own answer, word for word. */
  offline?: { code: number; reason: string; causes?: string[] };
  /** The message holds a changing resourceVersion: compare it without the numbers. */
  unstableMessage?: boolean;
}

const cm = `/api/v1/namespaces/${ns}/configmaps`;
const cases: Case[] = [
  { name: 'limit: the largest int64', path: `${cm}?limit=9223372036854775807`, offline: { code: 200, reason: '' } },
  { name: 'limit: past 2^53', path: `${cm}?limit=9007199254740993`, offline: { code: 200, reason: '' } },
  { name: 'limit: past int64', path: `${cm}?limit=9223372036854775808` },
  { name: 'limit: negative (no paging)', path: `${cm}?limit=-5`, offline: { code: 200, reason: '' } },
  { name: 'limit: not a number', path: `${cm}?limit=abc` },
  { name: 'timeoutSeconds: not a number', path: `${cm}?timeoutSeconds=abc` },
  {
    name: 'list: resourceVersion newer than any',
    path: `${cm}?resourceVersion=999999999`,
    unstableMessage: true,
    offline: { code: 504, reason: 'Timeout', causes: ['ResourceVersionTooLarge'] },
  },
  {
    name: 'list: resourceVersion newer, NotOlderThan',
    path: `${cm}?resourceVersion=999999999&resourceVersionMatch=NotOlderThan`,
    unstableMessage: true,
    offline: { code: 504, reason: 'Timeout', causes: ['ResourceVersionTooLarge'] },
  },
  { name: 'list: malformed resourceVersion', path: `${cm}?resourceVersion=abc` },
  { name: 'watch: malformed resourceVersion', path: `${cm}?watch=1&resourceVersion=abc` },
  { name: 'get: malformed resourceVersion', path: `${cm}/one?resourceVersion=abc` },
  { name: 'continue: not a token', path: `${cm}?continue=garbage`, offline: { code: 400, reason: 'BadRequest' } },
  { name: 'continue: base64 of something else', path: `${cm}?continue=${Buffer.from('{"v":"x"}').toString('base64url')}`, offline: { code: 400, reason: 'BadRequest' } },
  // The token was never shown these online (the apiserver said 403 or 404): offline it is refused.
  { name: 'unknown resource (core)', path: '/api/v1/nosuchthings', offline: { code: 403, reason: 'Forbidden' } },
  { name: 'unknown resource (namespaced, named)', path: `/api/v1/namespaces/${ns}/nosuchthings/x`, offline: { code: 403, reason: 'Forbidden' } },
  { name: 'bad labelSelector', path: `${cm}?labelSelector=${encodeURIComponent('a===b')}` },
  { name: 'bad labelSelector: unclosed set', path: `${cm}?labelSelector=${encodeURIComponent('a in (b')}` },
  { name: 'unknown fieldSelector field', path: `${cm}?fieldSelector=${encodeURIComponent('spec.foo=bar')}` },
  { name: 'bad fieldSelector value', path: `${cm}?fieldSelector=${encodeURIComponent('metadata.name===x')}` },
  { name: 'resourceVersionMatch without resourceVersion', path: `${cm}?resourceVersionMatch=NotOlderThan` },
  { name: 'resourceVersionMatch unsupported', path: `${cm}?resourceVersion=1&resourceVersionMatch=Bogus` },
  { name: 'resourceVersionMatch Exact with resourceVersion 0', path: `${cm}?resourceVersion=0&resourceVersionMatch=Exact` },
  { name: 'sendInitialEvents without watch', path: `${cm}?sendInitialEvents=true` },
  { name: 'sendInitialEvents on a watch without resourceVersionMatch', path: `${cm}?watch=1&sendInitialEvents=true` },
];

describe.skipIf(!isRoot)("the agent keeps kube-apiserver's contract for edge cases", () => {
  let cluster: Cluster;
  let site: EdgeSite;
  let agent: EdgeAgentProcess;
  let probe: LocalClient;
  let token: string;
  let adminUrl: string;
  const work = mkdtempSync(join(tmpdir(), 'tether-contract-e2e-'));
  const caDir = join(work, 'local-ca');
  const online = new Map<string, Answer>();
  // The agent answers a bearer token as its owner, so both sides see one identity; coredns is a
  // cached component, so its answers are recorded for the offline half.
  const ua = 'coredns/1.11.3';

  const explain = (e: unknown): never => {
    throw new Error(`${(e as Error).message}\n--- agent log ---\n${agent?.log.slice(-40).join('\n')}`);
  };

  /** GETs straight to the apiserver, from the host. */
  const direct = async (path: string): Promise<Answer> => {
    const res = await fetch(cluster.server + path, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/json', 'user-agent': ua },
      tls: { ca: cluster.caCertPem },
      signal: AbortSignal.timeout(15_000),
    } as RequestInit);
    // A watch that is accepted streams: the status and headers are what is compared.
    const text = path.includes('watch=1') && res.status === 200 ? (void res.body?.cancel(), '') : await res.text();
    return { status: res.status, body: parse(text), retryAfter: res.headers.get('retry-after'), source: null };
  };

  /** GETs through the agent from inside the site, in one process. */
  const viaAgent = async (paths: string[]): Promise<Answer[]> => {
    const file = join(work, `batch-${Date.now()}.json`);
    writeFileSync(file, JSON.stringify({ paths, token, ua, ca: probe.caPem }), { mode: 0o600 });
    const script = `
      const r = JSON.parse(await Bun.file(process.argv[1]).text());
      const out = [];
      for (const p of r.paths) {
        try {
          const res = await fetch('https://127.0.0.1:10261' + p, { headers: { authorization: 'Bearer ' + r.token, accept: 'application/json', 'user-agent': r.ua }, tls: { ca: r.ca }, signal: AbortSignal.timeout(15000) });
          const text = p.includes('watch=1') && res.status === 200 ? (res.body?.cancel(), '') : await res.text();
          out.push({ status: res.status, text, retryAfter: res.headers.get('retry-after'), source: res.headers.get('x-tether-source') });
        } catch (e) {
          out.push({ status: 0, text: String(e), retryAfter: null, source: null });
        }
      }
      console.log(JSON.stringify(out));`;
    const res = await site.exec([process.execPath, '-e', script, file], { timeoutMs: 120_000 });
    rmSync(file, { force: true });
    let out: { status: number; text: string; retryAfter: string | null; source: string | null }[];
    try {
      out = JSON.parse(res.stdout);
    } catch {
      throw new Error(`requests in site: ${res.stdout}\n${res.stderr}`);
    }
    return out.map((o) => ({ status: o.status, body: parse(o.text), retryAfter: o.retryAfter, source: o.source }));
  };

  const agentStatus = async () => {
    const r = await site.exec([process.execPath, edgeMain, 'status', '--json'], { timeoutMs: 20_000 });
    return JSON.parse(r.stdout) as { online: boolean };
  };

  /** The proxy's answered-requests counter, summed over all labels. */
  const proxyRequests = async () => {
    const r = await site.exec(['curl', '-s', '-m', '10', `${adminUrl}/metrics`], { timeoutMs: 20_000 });
    return r.stdout
      .split('\n')
      .filter((l) => l.startsWith('tether_proxy_requests_total{'))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  };

  beforeAll(async () => {
    cluster = await sharedCluster();
    // The client-go program, built from the scripts/kube module (module cache only).
    mkdirSync(join(repo, '.tether'), { recursive: true });
    const build = await run([goBin, 'build', '-o', probeBin, './cmd/client-go-probe'], { cwd: join(repo, 'scripts/kube'), timeoutMs: 900_000 });
    if (build.code !== 0) throw new Error(`build client-go-probe: ${build.stderr}`);

    const admin = cluster.admin;
    await admin.ensure('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    for (const name of ['one', 'two', 'three']) {
      await admin.ensure(cm, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { k: name } });
    }
    await admin.ensure(`/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'reader' } });
    await admin.ensure(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`, {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'configmaps' },
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch', 'create'] }],
    });
    await admin.ensure(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'configmaps' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'configmaps' },
      subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: ns }],
    });
    const tr = await admin.request('POST', `/api/v1/namespaces/${ns}/serviceaccounts/reader/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } });
    if (tr.status !== 201) throw new Error(`token request: ${JSON.stringify(tr.body)}`);
    token = tr.body.status.token;

    site = await createEdgeSite(`contract-${process.pid}`);
    const cert = await cluster.issueClientCert(`system:node:${node}`, ['system:nodes']);
    probe = localClient(caDir, 'client-go-probe', work);
    agent = spawnAgent(site, [
      '--node-name', node, '--servers', cluster.edgeServer, '--ca-file', cluster.caFile, '--cert-file', cert.certFile, '--key-file', cert.keyFile,
      '--data-dir', join(work, 'store'), '--local-ca-dir', caDir, '--log-format', 'text', '--rotate-certificates', 'false',
    ]);
    await until('agent listening on https', async () => agent.log.join('\n'), (l) => l.includes('proxy on https://127.0.0.1:10261')).catch(explain);
    adminUrl = parseAddresses(agent.log.join('\n'))!.admin;
    await until('agent online', agentStatus, (s) => s.online, 60_000).catch(explain);
  }, 1_800_000);

  afterAll(async () => {
    if (cluster) await cluster.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=false']);
    await agent?.stop();
    await site?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  test('online: every edge case answers as kube-apiserver does (code, reason, message)', async () => {
    // The whole list, recorded for the offline half (the token is shown it, coredns is cached).
    const list = await viaAgent([cm]);
    expect(list[0]!.status).toBe(200);
    // A continue token the apiserver issued, and a resourceVersion beside it (refused by storage).
    const page = await direct(`${cm}?limit=1`);
    const tokenCase: Case = { name: 'continue with a resourceVersion', path: `${cm}?limit=1&continue=${page.body.metadata.continue}&resourceVersion=5` };
    const all = [...cases, tokenCase];
    const agentAnswers = await viaAgent(all.map((c) => c.path));
    const rows: string[] = [];
    for (const [i, c] of all.entries()) {
      const want = await direct(c.path);
      const got = agentAnswers[i]!;
      online.set(c.name, want);
      rows.push(`${c.name.padEnd(58)} apiserver ${want.status} ${want.body?.reason ?? ''}`.padEnd(100) + ` agent ${got.status} ${got.body?.reason ?? ''}`);
      expect({ case: c.name, code: got.status, reason: got.body?.reason }).toEqual({ case: c.name, code: want.status, reason: want.body?.reason });
      const strip = (m: unknown) => (c.unstableMessage ? String(m).replace(/[0-9]+/g, 'N') : m);
      if (want.status !== 200) expect({ case: c.name, message: strip(got.body?.message ?? got.body) }).toEqual({ case: c.name, message: strip(want.body?.message ?? want.body) });
      expect(got.source).not.toBe('cache');
    }
    console.log(`online, apiserver vs agent:\n${rows.join('\n')}`);
  }, 300_000);

  test('offline: the documented answers, none with a Retry-After', async () => {
    expect(online.size).toBeGreaterThan(0);
    await site.cut();
    try {
      await until('agent offline', agentStatus, (s) => !s.online, 90_000).catch(explain);
      const answers = await viaAgent(cases.map((c) => c.path));
      const rows: string[] = [];
      const wrong: unknown[] = [];
      const check = (name: string, got: unknown, want: unknown) => {
        if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push({ case: name, got, want });
      };
      for (const [i, c] of cases.entries()) {
        const got = answers[i]!;
        const apiserver = online.get(c.name)!;
        rows.push(`${c.name.padEnd(58)} offline ${got.status} ${got.body?.reason ?? ''}`.padEnd(90) + ` ${String(got.body?.message ?? JSON.stringify(got.body)).slice(0, 140)}`);
        check(c.name, { retryAfter: got.retryAfter }, { retryAfter: null });
        if (c.offline) {
          check(c.name, { code: got.status, reason: got.status === 200 ? '' : got.body?.reason }, { code: c.offline.code, reason: c.offline.reason });
          if (c.offline.causes) check(c.name, got.body?.details?.causes?.map((x: { reason: string }) => x.reason), c.offline.causes);
          if (c.offline.code === 200) check(c.name, got.body?.items?.map((o: { metadata: { name: string } }) => o.metadata.name).sort(), ['kube-root-ca.crt', 'one', 'three', 'two']);
          if (c.offline.code === 403 || c.offline.code === 503) check(c.name, /offline/.test(String(got.body?.message)), true);
        } else {
          // Decided by the agent alone: the apiserver's own answer, word for word.
          check(c.name, { code: got.status, reason: got.body?.reason, message: got.body?.message }, { code: apiserver.status, reason: apiserver.body?.reason, message: apiserver.body?.message });
        }
      }
      console.log(`offline answers:\n${rows.join('\n')}`);
      expect(wrong).toEqual([]);
    } finally {
      await site.heal();
      await until('agent online again', agentStatus, (s) => s.online, 120_000).catch(explain);
    }
  }, 400_000);

  test('offline, a real client-go client gets each refusal in one request, without retries', async () => {
    await site.cut();
    try {
      await until('agent offline', agentStatus, (s) => !s.online, 90_000).catch(explain);
      const calls = [
        { name: 'uncached kind', verb: 'get', group: 'apps', version: 'v1', resource: 'controllerrevisions', namespace: ns, object: 'x' },
        { name: 'object not in the store', verb: 'get', group: '', version: 'v1', resource: 'secrets', namespace: ns, object: 'missing' },
        { name: 'write by an uncached client', verb: 'create', group: '', version: 'v1', resource: 'configmaps', namespace: ns, body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'offline-write' } } },
        { name: 'list newer than the store', verb: 'list', group: '', version: 'v1', resource: 'configmaps', namespace: ns, resourceVersion: '999999999' },
      ];
      const before = await proxyRequests();
      const r = await site.exec([probeBin, '--kubeconfig', probe.kubeconfig, '--calls', JSON.stringify(calls)], { timeoutMs: 600_000 });
      const after = await proxyRequests();
      const results = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { name: string; ms: number; roundTrips: number; code: number; reason: string; message: string; retryAfterSeconds?: number; causes?: { reason: string }[] });
      console.log(`client-go offline calls (default retries):\n${results.map((x) => `${x.name.padEnd(30)} ${String(x.ms).padStart(9)} ms  ${x.roundTrips} request(s)  ${x.code} ${x.reason}: ${x.message}`).join('\n')}`);
      expect(results.map((x) => x.name)).toEqual(calls.map((c) => c.name));
      for (const x of results) expect({ name: x.name, roundTrips: x.roundTrips, retryAfter: x.retryAfterSeconds ?? 0 }).toEqual({ name: x.name, roundTrips: 1, retryAfter: 0 });
      // The agent saw exactly one request per call.
      expect(after - before).toBe(calls.length);
      const by = new Map(results.map((x) => [x.name, x]));
      for (const n of ['uncached kind', 'object not in the store', 'write by an uncached client']) {
        expect(by.get(n)).toMatchObject({ code: 503, reason: 'ServiceUnavailable' });
        expect(by.get(n)!.message).toContain('offline');
      }
      expect(by.get('list newer than the store')).toMatchObject({ code: 504, reason: 'Timeout' });
      expect(by.get('list newer than the store')!.causes?.map((c) => c.reason)).toEqual(['ResourceVersionTooLarge']);
    } finally {
      await site.heal();
    }
  }, 900_000);
});

function parse(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
