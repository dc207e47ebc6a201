/**
 * `tether-edge join` and `reset` on the real control plane, run inside an edge site as an operator
 * would on a node, with the join command printed by `tether-hub token create`:
 * - a fresh node joins: tether-hub's CSR approver (the real controller; kube-controller-manager
 *   approves no bootstrap CSR in a Tether cluster) approves its CSR and kube-controller-manager
 *   signs it; join makes the local CA (0700, key 0600) and writes the kubelet's and kube-proxy's
 *   kubeconfigs with local client certificates; the agent started from the written configuration
 *   serves the kubelet simulator (which uses the written kubelet kubeconfig, over HTTPS) and the
 *   Node becomes Ready; a local process without the certificate is refused;
 * - a token naming no node cannot join a node that exists; a token from
 *   `token create --node-name` for it can;
 * - a kubeadm node is converted (kubelet kubeconfig pointed at the agent with the kubelet's local
 *   certificate, original kept) and reset
 *   leaves its root exactly as it was;
 * - a wrong token, a wrong CA hash, an unreachable server and an expired token are refused with a
 *   message that says what to do, and the root is left exactly as it was.
 * Files go under `--root` (a temporary directory standing for the node's /).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { ChildProcess } from 'node:child_process';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { createBootstrapToken } from '../scripts/cluster/bootstrap.ts';
import { treeSnapshot } from '../edge/join/_tree.ts';
import { joinNode } from '../edge/join/join.ts';
import { resetNode } from '../edge/join/reset.ts';
import { createMemoryLogger } from '../shared/log.ts';
import { type Cluster, type CsrApprover, sharedCluster, startCsrApprover } from './support/cluster.ts';
import { type EdgeAgentProcess, requestInSite, spawnAgent, until } from './support/edge-agent.ts';
import { type EdgeSite, createEdgeSite } from './support/netns.ts';
import { bunBin, run } from './support/run.ts';

const isRoot = process.getuid?.() === 0;
const edgeMain = fileURLToPath(new URL('../edge/main.ts', import.meta.url));
const hubMain = fileURLToPath(new URL('../cloud/main.ts', import.meta.url));
const simMain = fileURLToPath(new URL('./support/kubelet-sim/main.ts', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'tether-join-e2e-'));
const fresh = `join-fresh-${process.pid}`;
const converted = `join-kubeadm-${process.pid}`;
const rejoin = `join-rejoin-${process.pid}`;

describe.skipIf(!isRoot)('tether-edge join and reset on the real control plane', () => {
  let cluster: Cluster;
  let approver: CsrApprover;
  let site: EdgeSite;
  let agent: EdgeAgentProcess | undefined;
  let sim: ChildProcess | undefined;
  let joinCommand: string;
  let joinArgs: Record<string, string>;
  const tokens: string[] = [];

  /** `tether-edge join …` inside the edge site. */
  const join_ = (args: string[]) => site.exec([bunBin, edgeMain, 'join', ...args], { timeoutMs: 180_000 });
  const argsOf = (a: Record<string, string>) => Object.entries(a).flatMap(([k, v]) => [`--${k}`, v]);

  /** A root that looks like a kubeadm node: kubelet kubeconfig, kubelet defaults, kubelet state. */
  const kubeadmRoot = (name: string) => {
    const root = join(work, name);
    const put = (p: string, content: string, mode: number) => {
      mkdirSync(dirname(join(root, p)), { recursive: true });
      writeFileSync(join(root, p), content);
      chmodSync(join(root, p), mode);
    };
    put('/etc/kubernetes/kubelet.conf', [
      'apiVersion: v1', 'kind: Config',
      'clusters:', '- cluster:', '    certificate-authority-data: QUJD', '    server: https://10.0.0.1:6443', '  name: default-cluster',
      'contexts:', '- context:', '    cluster: default-cluster', '    user: default-auth', '  name: default-context',
      'current-context: default-context',
      'users:', '- name: default-auth', '  user:', '    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem',
      '    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem', '',
    ].join('\n'), 0o600);
    put('/etc/default/kubelet', 'KUBELET_EXTRA_ARGS="--v=2"\n', 0o644);
    put('/var/lib/kubelet/config.yaml', 'kind: KubeletConfiguration\n', 0o644);
    return root;
  };

  beforeAll(async () => {
    cluster = await sharedCluster();
    approver = await startCsrApprover(cluster);
    site = await createEdgeSite(`join-${process.pid}`);
    const r = await run([bunBin, hubMain, 'token', 'create', '--kubeconfig', cluster.adminKubeconfig, '--ttl', '30m', '--hub', 'wss://198.18.0.1:8443', '--description', 'join e2e']);
    if (r.code !== 0) throw new Error(`tether-hub token create: ${r.stderr}`);
    joinCommand = r.stdout.trim();
    const words = joinCommand.split(' ');
    joinArgs = {};
    for (let i = 2; i < words.length; i += 2) joinArgs[words[i]!.replace(/^--/, '')] = words[i + 1]!;
    tokens.push(joinArgs.token!.split('.')[0]!);
  }, 1_800_000);

  afterAll(async () => {
    sim?.kill('SIGTERM');
    await agent?.stop();
    await approver?.stop();
    await site?.destroy();
    if (cluster) {
      await cluster.kubectl(['delete', 'node', fresh, converted, rejoin, `join-systemd-${process.pid}`, '--ignore-not-found', '--wait=false']);
      for (const id of tokens) await cluster.admin.request('DELETE', `/api/v1/namespaces/kube-system/secrets/bootstrap-token-${id}`);
    }
    rmSync(work, { recursive: true, force: true });
  });

  test('tether-hub token create prints a join command with the server of cluster-info, the CA pin and the hub', () => {
    expect(joinCommand).toMatch(/^tether-edge join --server \S+ --token [a-z0-9]{6}\.[a-z0-9]{16} --ca-cert-hash sha256:[0-9a-f]{64} --hub wss:\/\/198\.18\.0\.1:8443$/);
    expect(joinArgs.server).toBe(cluster.edgeServer);
  });

  test('a fresh node joins: the controller manager signs its certificate, the agent serves the kubelet simulator, the node is Ready', async () => {
    const root = join(work, 'fresh');
    mkdirSync(root);
    const releasePub = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
    writeFileSync(join(work, 'release.pub'), releasePub);
    const r = await join_([...argsOf(joinArgs), '--node-name', fresh, '--root', root, '--release-key', join(work, 'release.pub')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`as node ${fresh}`);

    const pki = join(root, 'etc/tether/pki');
    expect(statSync(pki).mode & 0o777).toBe(0o700);
    for (const f of ['node.key', 'node.crt']) expect(statSync(join(pki, f)).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(readFileSync(join(pki, 'node.crt')));
    expect(cert.subject.split('\n')).toEqual(['O=system:nodes', `CN=system:node:${fresh}`]);
    expect(cert.verify(new X509Certificate(cluster.caCertPem).publicKey)).toBe(true);
    expect(readFileSync(join(pki, 'ca.crt'), 'utf8')).toBe(cluster.caCertPem);
    const csrName = /certificate from (\S+),/.exec(r.stdout)?.[1];
    const csr = (await cluster.admin.request('GET', `/apis/certificates.k8s.io/v1/certificatesigningrequests/${csrName}`)).body;
    expect(csr.spec.username).toBe(`system:bootstrap:${joinArgs.token!.split('.')[0]}`);
    expect(csr.spec.signerName).toBe('kubernetes.io/kube-apiserver-client-kubelet');
    expect(csr.status.conditions).toContainEqual(expect.objectContaining({ type: 'Approved', reason: 'TetherBootstrap' }));

    const config = parseYaml(readFileSync(join(root, 'etc/tether/edge.yaml'), 'utf8'));
    expect(config).toMatchObject({ nodeName: fresh, servers: [cluster.edgeServer], hubUrl: 'wss://198.18.0.1:8443', releaseKey: releasePub });
    expect(r.stdout).not.toContain('no release key pinned');
    const kubeletConfPath = join(root, 'etc/kubernetes/kubelet.conf');
    const kubeletConf = parseYaml(readFileSync(kubeletConfPath, 'utf8'));
    const kubeletServer = kubeletConf.clusters[0].cluster.server as string;
    expect(kubeletServer).toBe('https://127.0.0.1:10261');
    // The local CA, root-only, and the kubelet's and kube-proxy's local certificates signed by it.
    const localDir = join(root, 'etc/tether/pki/local');
    expect(statSync(localDir).mode & 0o777).toBe(0o700);
    for (const f of ['ca.key', 'ca.crt']) expect(statSync(join(localDir, f)).mode & 0o777).toBe(0o600);
    const localCa = new X509Certificate(readFileSync(join(localDir, 'ca.crt')));
    const pem = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');
    const kubeletCert = new X509Certificate(pem(kubeletConf.users[0].user['client-certificate-data']));
    expect(kubeletCert.subject).toBe('CN=kubelet');
    expect(kubeletCert.checkIssued(localCa) && kubeletCert.verify(localCa.publicKey)).toBe(true);
    expect(pem(kubeletConf.clusters[0].cluster['certificate-authority-data'])).toBe(localCa.toString());
    const kubeProxyConf = parseYaml(readFileSync(join(root, 'etc/tether/kube-proxy.conf'), 'utf8'));
    expect(statSync(join(root, 'etc/tether/kube-proxy.conf')).mode & 0o777).toBe(0o600);
    expect(new X509Certificate(pem(kubeProxyConf.users[0].user['client-certificate-data'])).subject).toBe('CN=kube-proxy');
    expect(readFileSync(join(root, 'etc/systemd/system/tether-edge.service'), 'utf8')).toContain(' run --config /etc/tether/edge.yaml');

    // The agent from the written configuration; the file paths in it are the node's, so they are
    // pointed under --root here (flags win over the file).
    agent = spawnAgent(site, [
      '--config', join(root, 'etc/tether/edge.yaml'),
      '--ca-file', join(root, config.caFile), '--cert-file', join(root, config.certFile), '--key-file', join(root, config.keyFile),
      '--data-dir', join(root, config.dataDir), '--local-ca-dir', join(root, config.localCaDir), '--log-format', 'text',
    ]);
    await until('agent listening', async () => agent!.log.join('\n'), (l) => l.includes('proxy on https://127.0.0.1:10261'));
    sim = site.spawn([bunBin, simMain, '--node-name', fresh, '--kubeconfig', kubeletConfPath, '--address', site.address]);
    const ready = await until(
      'node Ready',
      async () => ((await cluster.admin.request('GET', `/api/v1/nodes/${fresh}`)).body?.status?.conditions ?? []) as { type: string; status: string }[],
      (cs) => cs.some((c) => c.type === 'Ready' && c.status === 'True'),
    ).catch((e) => {
      throw new Error(`${(e as Error).message}\n--- agent ---\n${agent!.log.slice(-30).join('\n')}`);
    });
    expect(ready.find((c) => c.type === 'Ready')?.status).toBe('True');
    // Trusting the agent is not enough to be the node: without the kubelet's certificate, 401.
    const bare = await requestInSite(site, { path: `/api/v1/nodes/${fresh}`, caPem: localCa.toString(), headers: { 'user-agent': 'kubelet/v1.34.4' } }, work);
    expect(bare.status).toBe(401);
    expect(bare.body.kind).toBe('Status');
  });

  test('a token naming no node cannot join a node that exists; a token created for that node can', async () => {
    // The Node as a joined node's kubelet would have registered it.
    const made = await cluster.admin.request('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: rejoin } });
    expect(made.status).toBe(201);
    const root = join(work, 'rejoin');
    mkdirSync(root);
    const before = treeSnapshot(root);
    const refused = await join_([...argsOf(joinArgs), '--node-name', rejoin, '--root', root]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('(TetherNodeExists)');
    expect(refused.stderr).toContain(`tether-hub token create --node-name ${rejoin}`);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(treeSnapshot(root)).toEqual(before);

    const r = await run([bunBin, hubMain, 'token', 'create', '--kubeconfig', cluster.adminKubeconfig, '--ttl', '30m', '--node-name', rejoin, '--description', 'join e2e re-join']);
    expect(r.code).toBe(0);
    const words = r.stdout.trim().split(' ');
    const token = words[words.indexOf('--token') + 1]!;
    tokens.push(token.split('.')[0]!);
    expect(words.slice(-2)).toEqual(['--node-name', rejoin]);
    // the printed command as it stands, with only --root added
    const again = await join_([...words.slice(2), '--root', root]);
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    const csrName = /certificate from (\S+),/.exec(again.stdout)?.[1];
    const csr = (await cluster.admin.request('GET', `/apis/certificates.k8s.io/v1/certificatesigningrequests/${csrName}`)).body;
    expect(csr.spec.username).toBe(`system:bootstrap:${token.split('.')[0]}`);
    expect(csr.status.conditions).toContainEqual(expect.objectContaining({ type: 'Approved', reason: 'TetherBootstrapNamed' }));
    const cert = new X509Certificate(readFileSync(join(root, 'etc/tether/pki/node.crt')));
    expect(cert.subject.split('\n')).toEqual(['O=system:nodes', `CN=system:node:${rejoin}`]);
  }, 300_000);

  test('a kubeadm node is converted (kubelet kubeconfig pointed at the agent, original kept) and reset leaves its root exactly as before', async () => {
    const root = kubeadmRoot('kubeadm');
    const before = treeSnapshot(root);
    const r = await join_([...argsOf(joinArgs), '--node-name', converted, '--pool', 'shop-7', '--root', root]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('next: no release key pinned: over-the-air upgrades will be refused');
    expect(parseYaml(readFileSync(join(root, 'etc/tether/edge.yaml'), 'utf8')).releaseKey).toBeUndefined();
    expect(r.stdout).toContain('/etc/kubernetes/kubelet.conf   (replaced; original kept in /etc/tether/backup)');
    const conf = parseYaml(readFileSync(join(root, 'etc/kubernetes/kubelet.conf'), 'utf8'));
    const localCaPem = readFileSync(join(root, 'etc/tether/pki/local/ca.crt'), 'utf8');
    expect(conf.clusters).toEqual([{ name: 'default-cluster', cluster: { server: 'https://127.0.0.1:10261', 'certificate-authority-data': Buffer.from(localCaPem).toString('base64') } }]);
    expect(conf.users[0].name).toBe('default-auth');
    expect(new X509Certificate(Buffer.from(conf.users[0].user['client-certificate-data'], 'base64')).subject).toBe('CN=kubelet');
    expect(conf.users[0].user['client-certificate']).toBeUndefined();
    expect(readFileSync(join(root, 'etc/tether/backup/etc/kubernetes/kubelet.conf'), 'utf8')).toContain('server: https://10.0.0.1:6443');
    expect(readFileSync(join(root, 'etc/tether/kubelet.env'), 'utf8')).toContain('KUBELET_EXTRA_ARGS="--v=2 --node-labels=apps.tether.dev/pool=shop-7"');
    expect(readFileSync(join(root, 'etc/systemd/system/kubelet.service.d/20-tether.conf'), 'utf8')).toContain('EnvironmentFile=-/etc/tether/kubelet.env');
    // The agent's store appears while it runs; reset removes it too.
    writeFileSync(join(root, 'var/lib/tether/tether.db'), 'store');

    const again = await join_([...argsOf(joinArgs), '--node-name', converted, '--root', root]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('has joined already');
    expect(again.stderr).toContain('tether-edge reset');

    const reset = await site.exec([bunBin, edgeMain, 'reset', '--root', root]);
    expect(reset.code).toBe(0);
    expect(reset.stdout).toContain('restored /etc/kubernetes/kubelet.conf');
    expect(treeSnapshot(root)).toEqual(before);
  });

  test('with systemd, join enables and starts the agent and restarts a running kubelet; reset stops and disables it', async () => {
    const calls: string[] = [];
    const systemd = { systemctl: async (args: string[]) => (calls.push(args.join(' ')), { code: 0, output: '' }) };
    const root = kubeadmRoot('systemd');
    const log = createMemoryLogger();
    const joined = await joinNode({
      server: joinArgs.server!, token: joinArgs.token!, caCertHash: joinArgs['ca-cert-hash']!, nodeName: `join-systemd-${process.pid}`,
      root, binary: '/usr/local/bin/tether-edge', timeoutMs: 60_000, log, systemd,
    });
    expect(calls).toEqual(['daemon-reload', 'enable --now tether-edge.service', 'try-restart kubelet.service']);
    expect(joined.next).toContain('started tether-edge.service');
    calls.length = 0;
    await resetNode({ root, log, systemd });
    expect(calls).toEqual(['disable --now tether-edge.service', 'daemon-reload', 'try-restart kubelet.service']);
  });

  describe('refusals leave the root as it was', () => {
    const cases: [string, () => Promise<string[]>, RegExp[]][] = [
      [
        'a wrong token secret',
        async () => [...argsOf({ ...joinArgs, token: `${joinArgs.token!.split('.')[0]}.0000000000000000` })],
        [/does not match the cluster's signature/, /secret part of --token/, /tether-hub token create/],
      ],
      [
        'an unknown token',
        async () => [...argsOf({ ...joinArgs, token: 'zzzzzz.0000000000000000' }), '--timeout', '3s'],
        [/does not know token id zzzzzz/, /create a fresh one on the hub with `tether-hub token create`/],
      ],
      [
        'a wrong CA hash',
        async () => [...argsOf({ ...joinArgs, 'ca-cert-hash': `sha256:${'0'.repeat(64)}` })],
        [/does not match --ca-cert-hash/, /check the hash against `tether-hub token create`/],
      ],
      [
        'an unreachable server',
        async () => [...argsOf({ ...joinArgs, server: 'https://198.18.0.1:1' }), '--timeout', '3s'],
        [/cannot reach https:\/\/198\.18\.0\.1:1/, /check --server/],
      ],
      [
        'an expired token',
        async () => {
          // A token that lived 15 s: the token cleaner deletes it once expired.
          const token = await createBootstrapToken(cluster.admin, { ttlSeconds: 15, description: 'join e2e expiring' });
          const id = token.split('.')[0]!;
          tokens.push(id);
          await until('expired token deleted by the token cleaner', async () => (await cluster.admin.request('GET', `/api/v1/namespaces/kube-system/secrets/bootstrap-token-${id}`)).status, (s) => s === 404);
          return [...argsOf({ ...joinArgs, token }), '--timeout', '3s'];
        },
        [/token is mistyped, expired or deleted/, /tether-hub token create/],
      ],
    ];
    for (const [what, args, messages] of cases) {
      test(`${what}: refused with what to do`, async () => {
        const root = kubeadmRoot(`refused-${what.replace(/\W+/g, '-')}`);
        const before = treeSnapshot(root);
        const r = await join_([...(await args()), '--node-name', `join-refused-${process.pid}`, '--root', root]);
        expect(r.code).toBe(1);
        expect(r.stdout).toBe('');
        for (const m of messages) expect(r.stderr).toMatch(m);
        expect(r.stderr.trim().split('\n')).toHaveLength(1); // one readable line, no stack trace
        expect(treeSnapshot(root)).toEqual(before);
      }, 120_000);
    }
  });
});
