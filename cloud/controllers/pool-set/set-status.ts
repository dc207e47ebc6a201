/** The PoolSet status from its workloads: per pool desired/ready/updated, totals, Ready condition. */
import type { PoolSet, PoolStatus } from '../../api/pool-set.ts';
import { POOLSET_POOL_LABEL } from '../../api/keys.ts';
import type { Workload } from '../kube-types.ts';

export function poolStatuses(workloads: Workload[]): PoolStatus[] {
  return workloads
    .map((w) => {
      const observed = (w.status?.observedGeneration ?? 0) >= (w.metadata.generation ?? 0);
      return {
        name: w.metadata.labels?.[POOLSET_POOL_LABEL] ?? '',
        workload: w.metadata.name,
        desired: (w.spec?.replicas as number | undefined) ?? 1,
        ready: w.status?.readyReplicas ?? 0,
        // Until the workload controller has seen the latest template, none of its pods is current.
        updated: observed ? (w.status?.updatedReplicas ?? 0) : 0,
        available: w.status?.availableReplicas ?? 0,
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

export function totals(pools: PoolStatus[]): Pick<NonNullable<PoolSet['status']>, 'poolCount' | 'replicas' | 'readyReplicas' | 'updatedReplicas'> {
  return {
    poolCount: pools.length,
    replicas: pools.reduce((n, p) => n + p.desired, 0),
    readyReplicas: pools.reduce((n, p) => n + p.ready, 0),
    updatedReplicas: pools.reduce((n, p) => n + p.updated, 0),
  };
}
