/**
 * The node Lease, renewed as the kubelet's lease controller does (component-helpers' lease
 * controller, renew interval 10 s, lease duration 40 s):
 *
 *   - with a lease from the last round: PUT it back with a new renewTime (no GET);
 *   - without one, or after a failed PUT: GET it and PUT it, or POST it when the GET says 404;
 *   - a failed round is retried after 200 ms, doubling up to 7 s; then back to every interval.
 *
 * The lease is owned by the Node (an ownerReference with the node's uid, once known), so it goes
 * when the node is deleted.
 */
import { messageOf } from '../../../shared/errors.ts';
import type { Logger } from '../../../shared/log.ts';
import type { ApiClient } from './api-client.ts';

export interface LeaseOptions {
  client: ApiClient;
  nodeName: string;
  /** The node's uid for the owner reference, when known. */
  nodeUid(): string | undefined;
  log: Logger;
  intervalMs?: number;
  durationSeconds?: number;
  now?: () => Date;
}

export interface LeaseRenewer {
  start(): void;
  stop(): void;
  /** Time of the last successful renewal. */
  lastRenewal(): Date | undefined;
  /** Runs one round now (tests). */
  renewOnce(): Promise<boolean>;
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
export const microTime = (d: Date) => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export function createLeaseRenewer(o: LeaseOptions): LeaseRenewer {
  const interval = o.intervalMs ?? 10_000;
  const now = o.now ?? (() => new Date());
  const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${o.nodeName}`;
  let latest: any;
  let renewedAt: Date | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let failures = 0;

  const withRenewal = (lease: any) => {
    const uid = o.nodeUid();
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      ...lease,
      metadata: {
        ...lease.metadata,
        name: o.nodeName,
        namespace: 'kube-node-lease',
        ...(uid && !lease.metadata?.ownerReferences?.length
          ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: o.nodeName, uid }] }
          : {}),
      },
      spec: {
        ...lease.spec,
        holderIdentity: o.nodeName,
        leaseDurationSeconds: o.durationSeconds ?? 40,
        renewTime: microTime(now()),
      },
    };
  };

  async function ensure(): Promise<{ lease: any; created: boolean }> {
    const got = await o.client.request('GET', path);
    if (got.status === 200) return { lease: got.body, created: false };
    if (got.status !== 404) throw new Error(`get lease: status ${got.status}`);
    const created = await o.client.request('POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', {
      body: withRenewal({ metadata: {}, spec: {} }),
    });
    if (created.status !== 201) throw new Error(`create lease: status ${created.status}: ${created.body?.message ?? ''}`);
    return { lease: created.body, created: true };
  }

  async function renewOnce(): Promise<boolean> {
    try {
      if (latest) {
        const res = await o.client.request('PUT', path, { body: withRenewal(latest) });
        if (res.status === 200) {
          latest = res.body;
          renewedAt = now();
          return true;
        }
        o.log.warn('lease update failed, fetching it again', { status: res.status });
        latest = undefined;
      }
      const { lease, created } = await ensure();
      if (created) {
        latest = lease; // a fresh lease carries its renewTime already
        renewedAt = now();
        return true;
      }
      const res = await o.client.request('PUT', path, { body: withRenewal(lease) });
      if (res.status !== 200) throw new Error(`update lease: status ${res.status}: ${res.body?.message ?? ''}`);
      latest = res.body;
      renewedAt = now();
      return true;
    } catch (e) {
      latest = undefined;
      o.log.warn('lease renewal failed', { error: messageOf(e) });
      return false;
    }
  }

  function schedule(ms: number): void {
    if (stopped) return;
    timer = setTimeout(async () => {
      const ok = await renewOnce();
      failures = ok ? 0 : failures + 1;
      schedule(ok ? interval : Math.min(7000, 200 * 2 ** (failures - 1)));
    }, ms);
  }

  return {
    start: () => schedule(0),
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    lastRenewal: () => renewedAt,
    renewOnce,
  };
}
