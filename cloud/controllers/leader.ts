/**
 * Leader election over a coordination.k8s.io Lease, as client-go's leaderelection does, so that
 * of several hub replicas exactly one runs the controllers.
 *
 * A candidate reads the Lease. It takes it when there is none, when it is its own, or when the
 * record (holder, renew time …) has not changed for a whole lease duration as seen on the
 * candidate's own clock (so clock skew between replicas does not matter). Taking and renewing
 * are updates conditional on the resourceVersion read, so two candidates cannot both win. The
 * leader renews every retry period; when it has not managed to renew for `renewDeadline` it
 * stops leading (the callback runs) and becomes a candidate again. `stop()` ends leading and
 * releases the Lease (holder cleared, duration 1 s) so another replica takes over at once.
 */
import { messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { apiStatusOf, type Api } from './writes.ts';
import { microTime, type Lease } from './kube-types.ts';

export interface LeaderElectionOptions {
  api: Api;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  log: Logger;
  onStartedLeading(): Promise<void> | void;
  onStoppedLeading(): Promise<void> | void;
  now?: () => number;
  /** Waits `ms` or until aborted. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export interface LeaderElection {
  isLeader(): boolean;
  /** Resolves once this replica leads (or the election is stopped). */
  leading(): Promise<void>;
  stop(): Promise<void>;
}

const defaultSleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });

export function startLeaderElection(opts: LeaderElectionOptions): LeaderElection {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? defaultSleep;
  const log = opts.log.child({ lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
  const path = `/apis/coordination.k8s.io/v1/namespaces/${opts.namespace}/leases`;
  const abort = new AbortController();
  let leader = false;
  let observed = '';
  let observedAt = 0;
  let current: Lease | undefined;
  let onLead: () => void = () => {};
  const leadP = new Promise<void>((r) => (onLead = r));

  const record = (identity: string | null, durationMs: number, prev?: Lease): Lease['spec'] => {
    const t = microTime(now());
    const same = prev?.spec?.holderIdentity === identity;
    return {
      holderIdentity: identity,
      leaseDurationSeconds: Math.max(1, Math.round(durationMs / 1000)),
      acquireTime: same && prev?.spec?.acquireTime ? prev.spec.acquireTime : t,
      renewTime: t,
      leaseTransitions: (prev?.spec?.leaseTransitions ?? 0) + (same || !prev ? 0 : 1),
    };
  };

  async function tryAcquireOrRenew(): Promise<boolean> {
    if (leader && current) {
      // Renewal from the lease last written: one request; a conflict falls back to reading it.
      try {
        current = await opts.api.put<Lease>(`${path}/${opts.name}`, { ...current, spec: record(opts.identity, opts.leaseDurationMs, current) });
        observed = JSON.stringify(current.spec);
        observedAt = now();
        return true;
      } catch (e) {
        if (apiStatusOf(e) !== 409) throw e;
      }
    }
    const lease = await opts.api.get<Lease>(`${path}/${opts.name}`);
    if (!lease) {
      current = await opts.api.create<Lease>(path, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: opts.name, namespace: opts.namespace },
        spec: record(opts.identity, opts.leaseDurationMs),
      });
      observed = JSON.stringify(current.spec);
      observedAt = now();
      return true;
    }
    const raw = JSON.stringify(lease.spec ?? {});
    if (raw !== observed) {
      observed = raw;
      observedAt = now();
    }
    const holder = lease.spec?.holderIdentity ?? '';
    const durationMs = (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
    if (holder && holder !== opts.identity && now() - observedAt < durationMs) return false;
    current = await opts.api.put<Lease>(`${path}/${opts.name}`, { ...lease, spec: record(opts.identity, opts.leaseDurationMs, lease) });
    observed = JSON.stringify(current.spec);
    observedAt = now();
    return true;
  }

  async function attempt(): Promise<boolean> {
    try {
      return await tryAcquireOrRenew();
    } catch (e) {
      (apiStatusOf(e) === 409 ? log.debug : log.warn)('lease update failed', { error: messageOf(e) });
      return false;
    }
  }

  const loop = (async () => {
    let lastRenew = 0;
    while (!abort.signal.aborted) {
      if (!leader) {
        if (await attempt()) {
          if (abort.signal.aborted) break;
          leader = true;
          lastRenew = now();
          log.info('started leading');
          onLead();
          await opts.onStartedLeading();
          continue;
        }
        await sleep(opts.retryPeriodMs * (1 + Math.random() * 0.2), abort.signal);
        continue;
      }
      await sleep(opts.retryPeriodMs, abort.signal);
      if (abort.signal.aborted) break;
      if (await attempt()) lastRenew = now();
      else if (now() - lastRenew > opts.renewDeadlineMs) {
        leader = false;
        log.warn('stopped leading: could not renew the lease in time', { renewDeadlineMs: opts.renewDeadlineMs });
        await opts.onStoppedLeading();
      }
    }
  })();

  return {
    isLeader: () => leader,
    leading: () => Promise.race([leadP, new Promise<void>((r) => abort.signal.addEventListener('abort', () => r()))]),
    async stop() {
      abort.abort();
      await loop;
      if (!leader) return;
      leader = false;
      await opts.onStoppedLeading();
      try {
        if (current) await opts.api.put(`${path}/${opts.name}`, { ...current, spec: { ...record(null, 1000, current), holderIdentity: null } });
        log.info('released the lease');
      } catch (e) {
        log.warn('could not release the lease', { error: messageOf(e) });
      }
    },
  };
}
