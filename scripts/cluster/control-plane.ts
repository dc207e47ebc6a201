/**
 * Starts and stops one control plane: etcd, kube-apiserver, kube-controller-manager and
 * kube-scheduler with fresh PKI in a state directory (layout in state.ts).
 *
 * Start order: state dir, edge address, ports, PKI and kubeconfigs, etcd (wait /health),
 * apiserver (wait /readyz), controller manager and scheduler, bootstrap objects, then wait until
 * the controllers have done their first work (both healthz ok, the four system namespaces,
 * default/default ServiceAccount, default/kube-root-ca.crt) and write cluster.json.
 * If any component exits while starting, the start fails at once with the tail of its log,
 * and everything started so far is stopped.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { createKubeRest, type KubeRest } from './api.ts';
import { createBootstrapObjects } from './bootstrap.ts';
import { createClusterPki } from './cluster-pki.ts';
import { apiserverSpec, controllerManagerSpec, etcdSpec, schedulerSpec, type ComponentConfig } from './components.ts';
import { acquireEdgeAddress, type EdgeAddressLease } from './edge-address.ts';
import { writeEgressSelector, type HubEgress } from './egress.ts';
import { writeKubeconfig } from './kubeconfig.ts';
import { readPem } from './pki.ts';
import { freePorts } from './ports.ts';
import { clusterLayout, readClusterState, writeClusterState, type ClusterLayout, type ClusterState } from './state.ts';
import { logTail, onSignal, spawnSupervised, type Supervised } from './supervisor.ts';
import { startWatchdog } from './watchdog.ts';
import { pollUntil } from './wait.ts';

export interface ControlPlaneOptions {
  dir: string;
  binDir: string;
  log: Logger;
  /** Route the apiserver's `cluster` egress through the hub's HTTP CONNECT endpoint. */
  hub?: HubEgress;
  apiserverArgs?: string[];
  controllerManagerArgs?: string[];
  schedulerArgs?: string[];
  /** kube-controller-manager --node-monitor-grace-period; default 20s (upstream: 50s). */
  nodeMonitorGracePeriod?: string;
  /** kube-controller-manager --cluster-signing-duration; default 8760h. */
  clusterSigningDuration?: string;
  /** Default 198.18.0.1, on the root-namespace interface tether-cp0. */
  edgeAddress?: string;
  serviceCidr?: string;
  readyTimeoutMs?: number;
  /** Delete the state directory when the cluster stops (or its owner dies); default false. */
  removeDir?: boolean;
}

export interface ControlPlane {
  readonly state: ClusterState;
  readonly layout: ClusterLayout;
  /** The apiserver as kubernetes-admin. */
  readonly admin: KubeRest;
  /** Rejects when a component exits on its own after the start. */
  readonly crashed: Promise<never>;
  stop(): Promise<void>;
}

function firstIp(cidr: string): string {
  const [base = ''] = cidr.split('/');
  const n = base.split('.').reduce((acc, o) => acc * 256 + Number(o), 0) + 1;
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** An empty directory, or one a stopped cluster left (marker present), becomes a fresh state dir. */
function prepareDir(l: ClusterLayout): void {
  if (existsSync(l.dir) && readdirSync(l.dir).length > 0) {
    if (!existsSync(l.marker)) {
      throw new TetherError(ErrorCode.BadConfig, `prepare ${l.dir}: not empty and not a cluster state directory`);
    }
    if (existsSync(l.stateFile)) {
      const owner = (() => {
        try {
          return readClusterState(l.stateFile).ownerPid;
        } catch {
          return 0;
        }
      })();
      if (owner && alive(owner)) {
        throw new TetherError(ErrorCode.BadConfig, `prepare ${l.dir}: a cluster started by pid ${owner} is running there`);
      }
    }
    rmSync(l.dir, { recursive: true, force: true });
  }
  for (const d of [l.dir, l.pki, l.clients, l.logs]) mkdirSync(d, { recursive: true, mode: 0o700 });
  writeFileSync(l.marker, '');
}

export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const log = opts.log;
  const l = clusterLayout(opts.dir);
  const edgeAddress = opts.edgeAddress ?? '198.18.0.1';
  const serviceCidr = opts.serviceCidr ?? '198.19.0.0/16';
  const kubernetesServiceIp = firstIp(serviceCidr);
  const timeoutMs = opts.readyTimeoutMs ?? 120_000;
  const started: Supervised[] = [];
  let lease: EdgeAddressLease | undefined;
  let stopping = false;
  let wroteState = false;

  // Stops whatever has started so far, in reverse order; used on a failed start, by stop() and
  // on SIGINT/SIGTERM. At a plain process exit the supervisor kills the groups instead.
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      stopping = true;
      if (wroteState) rmSync(l.stateFile, { force: true });
      const [etcd, apiserver, ...rest] = started;
      await Promise.all(rest.map((p) => p.stop()));
      await apiserver?.stop();
      await etcd?.stop();
      lease?.release();
      if (opts.removeDir && dirPrepared) rmSync(l.dir, { recursive: true, force: true });
      watchdog.disarm();
      unregister();
      if (started.length) log.info('control plane stopped', { dir: l.dir });
    })());
  const unregister = onSignal(stop);
  // Cleans up if this process dies without calling stop().
  const watchdog = startWatchdog();
  let dirPrepared = false;

  // Rejects when a component exits while we did not ask it to.
  let crash: (e: Error) => void = () => {};
  const crashed = new Promise<never>((_, reject) => (crash = reject));
  crashed.catch(() => {});
  const watch = (p: Supervised) => {
    started.push(p);
    watchdog.watch(p.pid);
    void p.exited.then((s) => {
      if (stopping) return;
      log.error('component exited', { component: p.name, code: s.code, signal: s.signal, log: p.logFile });
      crash(
        new TetherError(
          ErrorCode.UpstreamUnavailable,
          `${p.name} exited (code ${s.code}, signal ${s.signal}); last log lines from ${p.logFile}:\n${logTail(p.logFile)}`,
        ),
      );
    });
    return p;
  };

  try {
    prepareDir(l);
    dirPrepared = true;
    watchdog.removeOnDeath(opts.removeDir ? l.dir : l.stateFile);
    lease = acquireEdgeAddress(log, { address: edgeAddress });
    watchdog.releaseOnDeath(lease.user);
    const free = await freePorts(5, '0.0.0.0');
    const [apiserverPort, etcdClient, etcdPeer, controllerManager, scheduler] = free as [number, number, number, number, number];
    const ports = { apiserver: apiserverPort, etcdClient, etcdPeer, controllerManager, scheduler };
    const server = `https://127.0.0.1:${ports.apiserver}`;
    const edgeServer = `https://${edgeAddress}:${ports.apiserver}`;

    const hub = opts.hub;
    const config: ComponentConfig = {
      binDir: opts.binDir,
      layout: l,
      ports,
      advertiseAddress: edgeAddress,
      serviceCidr,
      withEgressSelector: !!hub,
      nodeMonitorGracePeriod: opts.nodeMonitorGracePeriod ?? '20s',
      clusterSigningDuration: opts.clusterSigningDuration ?? '8760h',
      apiserverArgs: opts.apiserverArgs ?? [],
      controllerManagerArgs: opts.controllerManagerArgs ?? [],
      schedulerArgs: opts.schedulerArgs ?? [],
    };
    const t0 = performance.now();
    const poll = async (what: string, check: () => Promise<boolean>) => {
      await pollUntil(what, check, { timeoutMs, abort: crashed });
      log.debug('ready', { what, ms: Math.round(performance.now() - t0) });
    };

    // etcd needs no certificates (plain http on loopback): start it while the PKI is made.
    const etcd = watch(spawnSupervised(etcdSpec(config), log));
    const etcdHealthy = poll('etcd /health', async () => {
      const res = await fetch(`http://127.0.0.1:${ports.etcdClient}/health`, { signal: AbortSignal.timeout(2000) });
      return res.ok && ((await res.json()) as { health?: string }).health === 'true';
    });
    etcdHealthy.catch(() => {}); // awaited below; a PKI failure must not leave it unhandled
    const needEgressClient = !!hub && 'url' in hub && hub.url.startsWith('https://') && !hub.certFile;
    await createClusterPki(l, { edgeAddress, kubernetesServiceIp, egressClient: needEgressClient });
    const kc = (file: string, pair: { certFile: string; keyFile: string }, user: string) =>
      writeKubeconfig(file, { server, caFile: l.ca.certFile, ...pair, user });
    kc(l.adminKubeconfig, l.admin, 'kubernetes-admin');
    kc(l.controllerManagerKubeconfig, l.controllerManager, 'system:kube-controller-manager');
    kc(l.schedulerKubeconfig, l.scheduler, 'system:kube-scheduler');
    if (hub) {
      writeEgressSelector(l.egressSelector, needEgressClient ? { ...hub, ...l.egressClient } : hub);
    }

    await etcdHealthy;

    const apiserver = watch(spawnSupervised(apiserverSpec(config), log));
    const caPem = readPem(l.ca.certFile);
    const admin = createKubeRest({ server, caPem, certPem: readPem(l.admin.certFile), keyPem: readPem(l.admin.keyFile) });
    await poll('kube-apiserver /readyz', async () => (await admin.request('GET', '/readyz', undefined, 3000)).status === 200);

    const cm = watch(spawnSupervised(controllerManagerSpec(config), log));
    const sched = watch(spawnSupervised(schedulerSpec(config), log));

    await poll('system namespaces', async () => {
      const res = await admin.request('GET', '/api/v1/namespaces');
      const names = new Set<string>((res.body?.items ?? []).map((n: { metadata: { name: string } }) => n.metadata.name));
      return ['default', 'kube-system', 'kube-public', 'kube-node-lease'].every((n) => names.has(n));
    });
    await createBootstrapObjects(admin, edgeServer, caPem);

    const healthz = (port: number) => async () => {
      const res = await fetch(`https://127.0.0.1:${port}/healthz`, { tls: { rejectUnauthorized: false }, signal: AbortSignal.timeout(2000) });
      return res.ok;
    };
    await poll('kube-controller-manager /healthz', healthz(ports.controllerManager));
    await poll('kube-scheduler /healthz', healthz(ports.scheduler));
    const exists = (path: string) => async () => (await admin.request('GET', path)).status === 200;
    await poll('default ServiceAccount', exists('/api/v1/namespaces/default/serviceaccounts/default'));
    await poll('kube-root-ca.crt ConfigMap', exists('/api/v1/namespaces/default/configmaps/kube-root-ca.crt'));

    const version = (await admin.request('GET', '/version')).body as { gitVersion?: string };
    const state: ClusterState = {
      version: 1,
      dir: l.dir,
      ownerPid: process.pid,
      startedAt: new Date().toISOString(),
      kubernetesVersion: version.gitVersion ?? 'unknown',
      binDir: opts.binDir,
      server,
      edgeServer,
      edgeAddress,
      serviceCidr,
      kubernetesServiceIp,
      ports,
      files: {
        caCert: l.ca.certFile,
        caKey: l.ca.keyFile,
        adminCert: l.admin.certFile,
        adminKey: l.admin.keyFile,
        adminKubeconfig: l.adminKubeconfig,
        frontProxyCaCert: l.frontProxyCa.certFile,
        saKey: l.saKey,
        saPub: l.saPub,
        ...(hub ? { egressSelector: l.egressSelector } : {}),
      },
      pids: { etcd: etcd.pid, apiserver: apiserver.pid, controllerManager: cm.pid, scheduler: sched.pid },
      logs: { etcd: etcd.logFile, apiserver: apiserver.logFile, controllerManager: cm.logFile, scheduler: sched.logFile },
    };
    writeClusterState(l.stateFile, state);
    wroteState = true;
    log.info('control plane ready', { server, edgeServer, version: state.kubernetesVersion, dir: l.dir });

    return { state, layout: l, admin, crashed, stop };
  } catch (e) {
    await stop().catch((stopError: unknown) => log.warn('stop after failed start', { error: messageOf(stopError) }));
    throw e;
  }
}
