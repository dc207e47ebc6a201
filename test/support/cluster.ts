/**
 * The real control plane for end-to-end suites.
 *
 * `sharedCluster()` gives every suite in a test run the same cluster: when TETHER_TEST_CLUSTER
 * names the state directory of a running cluster (`bun scripts/cluster.ts up --dir D`), it
 * attaches to it and never stops it; otherwise it starts one in a temporary directory on first
 * use; it stops (and its directory goes) when the test process ends. Set
 * TETHER_KEEP_CLUSTER_DIR=1 to keep temporary state directories (logs) for a look after the run.
 *
 * `startCluster()` starts a cluster of a suite's own, for suites that need different flags
 * (an egress selector towards a hub, say); the suite calls `stop()`.
 *
 * As in a Tether cluster, kube-controller-manager approves no bootstrap token's CSR (no
 * ClusterRoleBinding to the nodeclient ClusterRole, scripts/cluster/bootstrap.ts): a suite that
 * joins nodes with bootstrap tokens runs tether-hub's CSR approver with `startCsrApprover()`.
 * Nodes renewing their own certificates are still approved by kube-controller-manager too.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, type Logger } from '../../shared/log.ts';
import { createKubeRest, type KubeRest } from '../../scripts/cluster/api.ts';
import { controlPlaneBinDir } from '../../scripts/cluster/binaries.ts';
import { createBootstrapToken, type BootstrapTokenOptions } from '../../scripts/cluster/bootstrap.ts';
import { startControlPlane } from '../../scripts/cluster/control-plane.ts';
import type { HubEgress } from '../../scripts/cluster/egress.ts';
import { issueCert, readPem } from '../../scripts/cluster/pki.ts';
import { clusterLayout, readClusterState, type ClusterState } from '../../scripts/cluster/state.ts';
import { pollUntil } from '../../scripts/cluster/wait.ts';
import { runKubectl, type KubectlOptions, type KubectlResult } from './kubectl.ts';

export type { HubEgress, KubeRest, KubectlResult };

export interface Cluster {
  dir: string;
  /** https://127.0.0.1:<port> */
  server: string;
  /** https://198.18.0.1:<port>, for edge network namespaces */
  edgeServer: string;
  caFile: string;
  caCertPem: string;
  adminKubeconfig: string;
  binDir: string;
  /** Everything in cluster.json: ports, pids, files, logs. */
  state: ClusterState;
  /** A client certificate signed by the cluster CA (user `cn`, groups `orgs`), written under dir/clients. */
  issueClientCert(cn: string, orgs: string[], opts?: { days?: number }): Promise<{ certFile: string; keyFile: string }>;
  /**
   * A bootstrap token "<id>.<secret>" in kubeadm's default node token group, or in `groups` (a
   * Secret kube-system/bootstrap-token-<id>); resolves once the apiserver accepts it.
   */
  createBootstrapToken(opts?: BootstrapTokenOptions): Promise<string>;
  kubectl(args: string[], opts?: KubectlOptions): Promise<KubectlResult>;
  /** A JSON client on `server` as kubernetes-admin. */
  admin: KubeRest;
  /** A JSON client on `server`: anonymous, or with a client certificate or bearer token. */
  client(auth?: { certFile: string; keyFile: string } | { token: string }): KubeRest;
  stop(): Promise<void>;
}

export interface StartClusterOptions {
  /** State directory; default a new temporary directory, removed by stop(). */
  dir?: string;
  hub?: HubEgress;
  apiserverArgs?: string[];
  controllerManagerArgs?: string[];
  schedulerArgs?: string[];
  /** Default 20s. */
  nodeMonitorGracePeriod?: string;
  clusterSigningDuration?: string;
  log?: Logger;
}

function defaultLog(): Logger {
  return createLogger({ level: 'info', format: 'text' }).child({ of: 'test-cluster' });
}

const selfSubjectReview = { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' };

function clusterFrom(state: ClusterState, stop: () => Promise<void>): Cluster {
  const caCertPem = readPem(state.files.caCert);
  const ca = { certFile: state.files.caCert, keyFile: state.files.caKey };
  const clients = clusterLayout(state.dir).clients;
  const client: Cluster['client'] = (auth) =>
    createKubeRest({
      server: state.server,
      caPem: caCertPem,
      ...(auth && 'token' in auth ? { token: auth.token } : {}),
      ...(auth && 'certFile' in auth ? { certPem: readPem(auth.certFile), keyPem: readPem(auth.keyFile) } : {}),
    });
  const admin = client({ certFile: state.files.adminCert, keyFile: state.files.adminKey });
  return {
    dir: state.dir,
    server: state.server,
    edgeServer: state.edgeServer,
    caFile: state.files.caCert,
    caCertPem,
    adminKubeconfig: state.files.adminKubeconfig,
    binDir: state.binDir,
    state,
    async issueClientCert(cn, orgs, opts = {}) {
      const base = join(clients, `${cn.replace(/[^A-Za-z0-9.-]+/g, '_')}-${randomBytes(3).toString('hex')}`);
      return issueCert(ca, { certFile: `${base}.crt`, keyFile: `${base}.key` }, { cn, orgs, usage: ['client'], days: opts.days ?? 30 });
    },
    async createBootstrapToken(opts?: BootstrapTokenOptions) {
      const token = await createBootstrapToken(admin, opts);
      if (opts?.ttlSeconds !== undefined && opts.ttlSeconds <= 0) return token; // expired on arrival
      // The apiserver reads bootstrap tokens from an informer cache: wait until it knows this one.
      const self = client({ token });
      await pollUntil(
        'bootstrap token usable',
        async () => (await self.request('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', selfSubjectReview)).status === 201,
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      return token;
    },
    kubectl: (args, opts) => runKubectl(state.files.adminKubeconfig, args, opts),
    admin,
    client,
    stop,
  };
}

export async function startCluster(opts: StartClusterOptions = {}): Promise<Cluster> {
  const log = opts.log ?? defaultLog();
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'tether-cluster-'));
  const binDir = await controlPlaneBinDir((line) => log.info(line));
  const removeDir = !opts.dir && !process.env.TETHER_KEEP_CLUSTER_DIR;
  const cp = await startControlPlane({ ...opts, dir, binDir, log, removeDir });
  return clusterFrom(cp.state, cp.stop);
}

/** Uses a cluster another process runs (state dir with cluster.json); stop() leaves it running. */
export async function attachCluster(dir: string): Promise<Cluster> {
  let state: ClusterState;
  try {
    state = readClusterState(join(dir, 'cluster.json'));
  } catch (e) {
    throw new Error(`attach to cluster in ${dir}: no readable cluster.json (is \`bun scripts/cluster.ts up --dir ${dir}\` running?)`, { cause: e });
  }
  const cluster = clusterFrom(state, async () => {});
  const ready = await cluster.admin.request('GET', '/readyz', undefined, 5000);
  if (ready.status !== 200) throw new Error(`attach to cluster in ${dir}: /readyz answered ${ready.status}`);
  return cluster;
}

let shared: Promise<Cluster> | undefined;

export function sharedCluster(): Promise<Cluster> {
  shared ??= (async () => {
    const existing = process.env.TETHER_TEST_CLUSTER;
    if (existing) return attachCluster(existing);
    // Never stopped by a suite: SIGINT/SIGTERM stop it gracefully, and when the test process
    // ends (bun test emits no exit event) the kernel and the watchdog clean up.
    const cluster = await startCluster();
    return { ...cluster, stop: async () => {} };
  })();
  return shared;
}

export interface CsrApprover {
  /** The approver's log lines (JSON), the last 300. */
  log: string[];
  stop(): Promise<void>;
}

const deployDir = fileURLToPath(new URL('../../deploy/', import.meta.url));

/**
 * A kubeconfig for tether-hub as deployed: deploy/namespace.yaml and deploy/rbac.yaml applied, and a
 * 2-hour token of the tether-hub ServiceAccount (so a hub in a test has exactly the RBAC that
 * deploy/ grants, never the admin's). The file is root-only, in a fresh temporary folder.
 */
export async function hubKubeconfig(cluster: Cluster): Promise<string> {
  const kubectl = async (args: string[]) => {
    const r = await cluster.kubectl(args, { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  await kubectl(['apply', '-f', join(deployDir, 'namespace.yaml'), '-f', join(deployDir, 'rbac.yaml')]);
  const token = (await kubectl(['create', 'token', 'tether-hub', '-n', 'tether-system', '--duration=2h'])).trim();
  const file = join(mkdtempSync(join(tmpdir(), 'tether-hub-sa-')), 'kubeconfig');
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: cluster.server, 'certificate-authority': cluster.caFile } }],
      users: [{ name: 'hub', user: { token } }],
      contexts: [{ name: 'hub', context: { cluster: 'c', user: 'hub' } }],
      'current-context': 'hub',
    }),
    { mode: 0o600 },
  );
  return file;
}

/**
 * tether-hub's CSR approver, and no other controller, in this test process: as the hub's
 * service account with exactly the RBAC of deploy/rbac.yaml, holding the controllers Lease in
 * tether-system (one approver per cluster leads at a time; stop() releases it). Resolves once it runs.
 */
export async function startCsrApprover(cluster: Cluster, opts: { identity?: string; timeoutMs?: number } = {}): Promise<CsrApprover> {
  const file = await hubKubeconfig(cluster);
  const [{ startControllers }, { loadKubeConfig }, { Registry }] = await Promise.all([
    import('../../cloud/controllers/index.ts'),
    import('../../cloud/kube/client.ts'),
    import('../../shared/metrics.ts'),
  ]);
  const lines: string[] = [];
  const log = createLogger({
    level: 'info',
    write: (l) => {
      lines.push(l);
      lines.splice(0, Math.max(0, lines.length - 300));
    },
  });
  const controllers = startControllers({
    kubeconfig: loadKubeConfig(file),
    log,
    registry: new Registry(),
    identity: opts.identity ?? `csr-approver-${process.pid}-${randomBytes(3).toString('hex')}`,
    leaseNamespace: 'tether-system',
    config: { nodePools: false, poolSets: false, autonomy: false, csrApproval: true, edgeUpgrades: false, retryMaxMs: 5000 },
  });
  const timeoutMs = opts.timeoutMs ?? 90_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`CSR approver not running after ${timeoutMs} ms (another holder of Lease tether-system/tether-hub-controllers?):\n${lines.slice(-10).join('\n')}`)), timeoutMs);
  });
  try {
    await Promise.race([controllers.running(), late]);
  } catch (e) {
    await controllers.stop();
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return { log: lines, stop: () => controllers.stop() };
}
