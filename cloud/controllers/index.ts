/**
 * tether-hub's controllers: NodePool, PoolSet, autonomy, CSR approval and EdgeUpgrade, run by whichever hub
 * replica holds the controllers Lease. Contracts: docs/controllers.md.
 *
 *   const c = startControllers({ kubeconfig, log, registry, identity: podName, leaseNamespace: 'tether-system', config });
 *   …
 *   await c.stop();   // stops the controllers and releases the Lease
 */
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { Registry } from '../../shared/metrics.ts';
import { createRestClient, type KubeConfig } from '../kube/client.ts';
import { API_VERSION, POOLSET_LABEL } from '../api/keys.ts';
import { createApi } from './writes.ts';
import { createAutonomyController } from './autonomy/controller.ts';
import { defaultControllersConfig, type ControllersConfig } from './config.ts';
import type { ControllerContext, Informers } from './context.ts';
import { createCsrController } from './csr/controller.ts';
import { createEdgeUpgradeControllers } from './edge-upgrade/controller.ts';
import type { UpgradeLike } from './edge-upgrade/order.ts';
import { createSharedInformer, type SharedInformer } from './informers.ts';
import type { KubeObject, Pod } from './kube-types.ts';
import { startLeaderElection } from './leader.ts';
import { createControllerMetrics, type ControllerMetrics } from './metrics.ts';
import { createNodePoolControllers } from './node-pool/controller.ts';
import { createPoolSetController } from './pool-set/controller.ts';
import { runController, type Controller, type RunningController } from './runner.ts';

export { controllersConfigSchema, type ControllersConfig } from './config.ts';

export interface StartControllersOptions {
  kubeconfig: KubeConfig;
  log: Logger;
  registry: Registry;
  /** This replica's name in the Lease (the pod name). */
  identity: string;
  leaseNamespace: string;
  /**
   * The `controllers` section of the hub configuration, as the hub's schema parsed it (not parsed
   * again here); defaults for what is missing.
   */
  config?: Partial<ControllersConfig>;
  now?: () => number;
}

export interface Controllers {
  isLeader(): boolean;
  /** Resolves once this replica leads and its controllers run (or it is stopped). */
  running(): Promise<void>;
  /** Request/watch/reconcile counts since start (benchmarks, tests). */
  totals(): ReturnType<ControllerMetrics['totals']>;
  stop(): Promise<void>;
}

const paths = {
  nodes: '/api/v1/nodes',
  pods: '/api/v1/pods',
  nodePools: `/apis/${API_VERSION}/nodepools`,
  poolSets: `/apis/${API_VERSION}/poolsets`,
  edgeUpgrades: `/apis/${API_VERSION}/edgeupgrades`,
  deployments: '/apis/apps/v1/deployments',
  statefulSets: '/apis/apps/v1/statefulsets',
  csrs: '/apis/certificates.k8s.io/v1/certificatesigningrequests',
};

export function startControllers(opts: StartControllersOptions): Controllers {
  const config: ControllersConfig = { ...defaultControllersConfig, ...opts.config };
  const log = opts.log.child({ of: 'controllers' });
  const metrics = createControllerMetrics(opts.registry);
  const rest = createRestClient(opts.kubeconfig, { onRequest: (m, p, s) => metrics.request(m, p, s), maxSockets: config.workers * 4 + 4 });
  const api = createApi(rest);
  let session: { stop(): Promise<void> } | undefined;
  let onRunning: () => void = () => {};
  const runningP = new Promise<void>((r) => (onRunning = r));
  let onStopped: () => void = () => {};
  const stoppedP = new Promise<void>((r) => (onStopped = r));

  async function lead(): Promise<void> {
    const started = new Set<SharedInformer<KubeObject>>();
    const memo = new Map<string, SharedInformer<KubeObject>>();
    const informer = <T extends KubeObject>(path: string, labelSelector?: string) => () => {
      let inf = memo.get(path);
      if (!inf) {
        inf = createSharedInformer<KubeObject>(path, { kc: opts.kubeconfig, rest, log, labelSelector, onWatch: (p) => metrics.watchConnected(p) });
        memo.set(path, inf);
        started.add(inf);
      }
      return inf as unknown as SharedInformer<T>;
    };
    // Not shared: one per node its controller watches, stopped by that controller (or with the session).
    const podsOn = (node: string): SharedInformer<Pod> => {
      const inf = createSharedInformer<Pod>(paths.pods, {
        kc: opts.kubeconfig,
        rest,
        log,
        fieldSelector: `spec.nodeName=${node}`,
        onWatch: (p) => metrics.watchConnected(p),
      });
      const own = inf as unknown as SharedInformer<KubeObject>;
      started.add(own);
      return {
        ...inf,
        get synced() {
          return inf.synced;
        },
        async stop() {
          started.delete(own);
          await inf.stop();
        },
      };
    };
    const scanPods = async (each: (pods: Pod[]) => void) => {
      let cont: string | undefined;
      do {
        const res = await rest.request<{ items: Pod[]; metadata: { continue?: string }; message?: string }>({ method: 'GET', path: paths.pods, query: { limit: '500', continue: cont } });
        if (res.status !== 200) throw new TetherError(ErrorCode.UpstreamUnavailable, `list ${paths.pods}: HTTP ${res.status}: ${res.body?.message ?? ''}`);
        each(res.body.items);
        cont = res.body.metadata.continue || undefined;
      } while (cont);
    };
    const informers: Informers = {
      nodes: informer(paths.nodes),
      podsOn,
      scanPods,
      nodePools: informer(paths.nodePools),
      poolSets: informer(paths.poolSets),
      deployments: informer(paths.deployments, POOLSET_LABEL),
      statefulSets: informer(paths.statefulSets, POOLSET_LABEL),
      csrs: informer(paths.csrs),
    };
    const ctx: ControllerContext = {
      api,
      log,
      informers,
      queue: { baseDelayMs: config.retryBaseMs, maxDelayMs: config.retryMaxMs },
      now: opts.now ?? Date.now,
    };
    const controllers: Controller[] = [
      ...(config.nodePools ? createNodePoolControllers(ctx, { statusBatchMs: config.statusBatchMs }) : []),
      ...(config.poolSets ? [createPoolSetController(ctx, { statusBatchMs: config.statusBatchMs })] : []),
      ...(config.autonomy ? [createAutonomyController(ctx, { restoreSeconds: config.autonomyRestoreSeconds })] : []),
      ...(config.csrApproval
        ? [
            createCsrController(ctx, {
              bootstrapGroups: config.csrBootstrapGroups,
              bootstrapSigners: config.csrBootstrapSigners,
              bootstrapExistingNodes: config.csrBootstrapExistingNodes,
            }),
          ]
        : []),
      // EdgeUpgrades are read by this controller only: their informer is not one of ctx.informers.
      ...(config.edgeUpgrades ? createEdgeUpgradeControllers(ctx, informer<UpgradeLike>(paths.edgeUpgrades)()) : []),
    ];
    let stopped = false;
    let running: RunningController[] = [];
    session = {
      async stop() {
        stopped = true;
        await Promise.all(running.map((r) => r.stop()));
        for (const c of controllers) c.queue.shutDown();
        await Promise.all(controllers.map((c) => c.stop?.()));
        await Promise.all([...started].map((i) => i.stop()));
      },
    };
    // Each controller starts once its own informers are filled, so one missing resource (CRDs not
    // installed yet) holds back only the controllers that need it.
    await Promise.all(
      controllers.map(async (c) => {
        await Promise.all(c.needs.map((i) => i.start()));
        if (stopped) return;
        running.push(runController(c, { workers: config.workers, log, metrics }));
        log.info('controller running', { controller: c.name });
      }),
    );
    if (!stopped) onRunning();
  }

  const election = startLeaderElection({
    api,
    namespace: opts.leaseNamespace,
    name: config.leaseName,
    identity: opts.identity,
    leaseDurationMs: config.leaseDurationSeconds * 1000,
    renewDeadlineMs: config.renewDeadlineSeconds * 1000,
    retryPeriodMs: config.retryPeriodSeconds * 1000,
    log,
    onStartedLeading: () => {
      metrics.setLeader(true);
      // Informers sync in the background: the election loop must keep renewing meanwhile.
      void lead().catch((e) => log.error('controllers failed to start', { error: (e as Error).message }));
    },
    async onStoppedLeading() {
      metrics.setLeader(false);
      const s = session;
      session = undefined;
      await s?.stop();
      log.info('controllers stopped');
    },
  });

  return {
    isLeader: () => election.isLeader(),
    running: () => Promise.race([runningP, stoppedP]),
    totals: () => metrics.totals(),
    async stop() {
      onStopped();
      await election.stop();
    },
  };
}
