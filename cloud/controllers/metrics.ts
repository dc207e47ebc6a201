/** Prometheus metrics of the controllers, on the hub's registry. */
import type { Registry } from '../../shared/metrics.ts';
import type { WorkQueue } from './queue.ts';

export interface ControllerMetrics {
  reconciled(controller: string, result: 'success' | 'error' | 'conflict', ms: number): void;
  request(method: string, path: string, status: number): void;
  watchConnected(path: string): void;
  watchQueue(controller: string, queue: WorkQueue): void;
  setLeader(leading: boolean): void;
  /** Totals since start, for benchmarks and tests. */
  totals(): { requests: number; watches: number; reconciles: number };
}

/** /api/v1/nodes/n1/status → nodes/status; /apis/apps/v1/namespaces/x/deployments/y → deployments */
export function resourceOf(path: string): string {
  const parts = path.split('?')[0]!.split('/').filter(Boolean);
  const rest = parts[0] === 'api' ? parts.slice(2) : parts.slice(3);
  const r = rest[0] === 'namespaces' && rest.length > 2 ? rest.slice(2) : rest;
  return r.length > 2 ? `${r[0]}/${r[2]}` : (r[0] ?? 'unknown');
}

export function createControllerMetrics(registry: Registry): ControllerMetrics {
  const reconciles = registry.counter('tether_hub_reconcile_total', 'Reconciles by controller and result');
  const reconcileSeconds = registry.counter('tether_hub_reconcile_seconds_total', 'Time spent reconciling, by controller');
  const requests = registry.counter('tether_hub_kube_requests_total', 'Requests the controllers made to kube-apiserver, by verb, resource and status code');
  const watches = registry.counter('tether_hub_kube_watches_total', 'Watch connections the controllers opened, by resource');
  const queues = new Map<string, WorkQueue>();
  registry.gauge('tether_hub_workqueue_depth', 'Keys waiting in each work queue', () =>
    [...queues].map(([controller, q]) => ({ labels: { controller }, value: q.length() })),
  );
  const leader = registry.gauge('tether_hub_controllers_leader', '1 while this hub replica holds the controllers lease');
  leader.set(0);
  const totals = { requests: 0, watches: 0, reconciles: 0 };
  return {
    reconciled(controller, result, ms) {
      totals.reconciles++;
      reconciles.inc({ controller, result });
      reconcileSeconds.inc({ controller }, ms / 1000);
    },
    request(method, path, status) {
      totals.requests++;
      requests.inc({ verb: method, resource: resourceOf(path), code: String(status) });
    },
    watchConnected(path) {
      totals.watches++;
      watches.inc({ resource: resourceOf(path) });
    },
    watchQueue: (controller, q) => void queues.set(controller, q),
    setLeader: (l) => leader.set(l ? 1 : 0),
    totals: () => ({ ...totals }),
  };
}
