/** What every controller is built from: the API, the shared informers, settings and a clock. */
import type { Logger } from '../../shared/log.ts';
import type { NodePool } from '../api/node-pool.ts';
import type { PoolSet } from '../api/pool-set.ts';
import type { Api } from './api.ts';
import type { ControllersConfig } from './config.ts';
import type { SharedInformer } from './informers.ts';
import type { CertificateSigningRequest, Node, Pod, Workload } from './kube-types.ts';
import type { WorkQueueOptions } from './queue.ts';

export interface Informers {
  nodes(): SharedInformer<Node>;
  pods(): SharedInformer<Pod>;
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
  config: ControllersConfig;
  queue: WorkQueueOptions;
  now: () => number;
}
