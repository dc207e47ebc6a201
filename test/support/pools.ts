/**
 * Helpers shared by the pools end-to-end suites (test/pools*.e2e.test.ts): simulated kubelets in
 * edge sites, kubectl that throws, the controllers in-process, polling.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, type Logger } from '../../shared/log.ts';
import { Registry } from '../../shared/metrics.ts';
import { loadKubeConfig } from '../../cloud/kube/client.ts';
import { startControllers, type Controllers, type ControllersConfig } from '../../cloud/controllers/index.ts';
import type { Cluster } from './cluster.ts';
import { createEdgeSite, type EdgeSite } from './netns.ts';

export { until } from './edge-agent.ts';

const simMain = fileURLToPath(new URL('./kubelet-sim/main.ts', import.meta.url));
export const crdDir = fileURLToPath(new URL('../../deploy/crds/', import.meta.url));
export const deployDir = fileURLToPath(new URL('../../deploy/', import.meta.url));

export function kubectlOf(cluster: Cluster) {
  return async (args: string[], input?: string): Promise<string> => {
    const r = await cluster.kubectl(args, { input, timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
}

/**
 * What a suite's in-process hub needs: the CRDs (established), deploy/'s namespace and RBAC, the
 * suite's namespace with the hub's Lease roles in it (deploy/ grants them in tether-system), and a
 * token of the tether-hub service account, so the hub runs with exactly deploy/'s rights.
 */
export async function prepareHub(cluster: Cluster, ns: string, crds: string[]): Promise<string> {
  const kubectl = kubectlOf(cluster);
  await kubectl(['apply', '-f', crdDir]);
  await kubectl(['wait', '--for', 'condition=established', ...crds.map((c) => `crd/${c}.apps.tether.dev`)]);
  await kubectl(['apply', '-f', `${deployDir}namespace.yaml`, '-f', `${deployDir}rbac.yaml`]);
  await kubectl(['create', 'namespace', ns]);
  await kubectl(['create', 'role', 'lease', '-n', ns, '--verb=get,update', '--resource=leases', '--resource-name=tether-hub-controllers']);
  await kubectl(['create', 'role', 'lease-create', '-n', ns, '--verb=create', '--resource=leases']);
  for (const r of ['lease', 'lease-create']) await kubectl(['create', 'rolebinding', r, '-n', ns, `--role=${r}`, '--serviceaccount=tether-system:tether-hub']);
  return (await kubectl(['create', 'token', 'tether-hub', '-n', 'tether-system', '--duration=2h'])).trim();
}

export interface SimNode {
  name: string;
  cert: { certFile: string; keyFile: string };
  site: EdgeSite;
  child: ChildProcess;
  log: string[];
  stop(): Promise<void>;
}

/** A simulated kubelet for node `name` in its own edge site, with the node's own client certificate. */
export async function startSimNode(cluster: Cluster, name: string, siteName: string): Promise<SimNode> {
  const site = await createEdgeSite(siteName);
  const cert = await cluster.issueClientCert(`system:node:${name}`, ['system:nodes']);
  const child = site.spawn([process.execPath, simMain, '--node-name', name, '--server', cluster.edgeServer, '--ca', cluster.caFile,
    '--cert', cert.certFile, '--key', cert.keyFile, '--address', site.address, '--log-level', 'warn']);
  const log: string[] = [];
  const keep = (d: Buffer) => {
    log.push(...String(d).trimEnd().split('\n'));
    log.splice(0, Math.max(0, log.length - 100));
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return {
    name,
    cert,
    site,
    child,
    log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await site.destroy();
    },
  };
}

export function nodeReady(node: any): boolean {
  return (node?.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
}

/** A kubeconfig file for `server` with a bearer token (the hub's service account in the suites). */
export function tokenKubeconfig(cluster: Cluster, token: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'pools-e2e-'));
  const file = join(dir, 'kubeconfig');
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: cluster.server, 'certificate-authority': cluster.caFile } }],
      users: [{ name: 'u', user: { token } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }),
  );
  return file;
}

export interface InProcessHub {
  controllers: Controllers;
  registry: Registry;
  log: string[];
}

/** The controllers in this test process, as one hub replica named `identity`. */
export function startHub(kubeconfig: string, identity: string, leaseNamespace: string, config: Partial<ControllersConfig> = {}): InProcessHub {
  const lines: string[] = [];
  const log: Logger = createLogger({
    level: 'info',
    write: (l) => {
      lines.push(l);
      lines.splice(0, Math.max(0, lines.length - 300));
    },
  });
  const registry = new Registry();
  const controllers = startControllers({ kubeconfig: loadKubeConfig(kubeconfig), log, registry, identity, leaseNamespace, config: { retryMaxMs: 5000, ...config } });
  return { controllers, registry, log: lines };
}
