/** What every controller is built from: the API, the shared informers, the queue's retry settings and a clock; each controller takes its own options beside it. */
import type { Logger } from '../../shared/log.ts';
import type { NodePool } from '../api/node-pool.ts';
import type { PoolSet } from '../api/pool-set.ts';
import type { Api } from './writes.ts';
import type { SharedInformer } from './informers.ts';
import type { CertificateSigningRequest, Node, Pod, Workload } from './kube-types.ts';
import type { WorkQueueOptions } from './queue.ts';

export interface Informers {
  nodes(): SharedInformer<Node>;
  /**
   * The pods bound to one node (a field selector), in an informer of their own, not shared: its
   * caller starts and stops it. The autonomy controller watches only the nodes it acts on rather
   * than caching every pod in the cluster.
   */
  podsOn(node: string): SharedInformer<Pod>;
  /** One paged LIST of every pod, passed page by page to `each` and not kept (a scan at start). */
  scanPods(each: (pods: Pod[]) => void): Promise<void>;
  nodePools(): SharedInformer<NodePool>;
  poolSets(): SharedInformer<PoolSet>;
  deployments(): SharedInformer<Workload>;
  statefulSets(): SharedInformer<Workload>;
  csrs(): SharedInformer<CertificateSigningRequest>;
}

export interface ControllerContext {
  api: Api;
  log: Logger;
  informers: Informers;
  queue: WorkQueueOptions;
  now: () => number;
}
