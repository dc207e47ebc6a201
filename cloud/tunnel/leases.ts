/**
 * Which replica holds which node's tunnel, recorded in coordination.k8s.io Leases so that every
 * replica can route a CONNECT to the owner in one hop.
 *
 * One Lease per edge node, in one namespace (default `tether-system`), named by `leaseName`:
 *   spec.holderIdentity         the replica id holding the agent's session ("" once released)
 *   spec.renewTime              renewed every `renewEveryMs` while the session lasts
 *   spec.leaseDurationSeconds   a holder not renewed for this long is gone (crashed replica)
 *   annotations tether.dev/connect-address   the holder's internal CONNECT address (host:port)
 *               tether.dev/node               the node name (lease names may be shortened)
 *               tether.dev/credential         which credential the agent's session authenticated
 *                                             with (certificate fingerprint, or token hash): a
 *                                             session with another one is refused by every replica
 *                                             while this Lease is live (tunnels.ts)
 *   labels      tether.dev/role=tunnel        what the replicas' Lease informers select
 *
 * A released Lease stays (holder "") and marks the node as an edge node: a CONNECT to it answers
 * "no tunnel connected" at once instead of the hub dialing an address it cannot reach.
 *
 * The keeper takes a lease whoever held it: an agent has one session at a time, so the replica
 * it just connected to is the owner, and a previous holder learns it lost the node at its next
 * renewal (`onLost`), when it closes its stale session. Writes use resourceVersion preconditions.
 */
import { createHash } from 'node:crypto';
import { ErrorCode, isTetherError, messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';

export const LEASE_ROLE_LABEL = 'tether.dev/role';
export const LEASE_ROLE = 'tunnel';
export const ADDRESS_ANNOTATION = 'tether.dev/connect-address';
export const NODE_ANNOTATION = 'tether.dev/node';
export const CREDENTIAL_ANNOTATION = 'tether.dev/credential';

export interface LeaseState {
  name: string;
  node: string;
  holder: string;
  address: string;
  /** Milliseconds since the epoch. */
  renewMs: number;
  acquireMs: number;
  durationSeconds: number;
  transitions: number;
  /** The holder's session credential ("" or absent when released or unknown). */
  credential?: string;
  resourceVersion?: string;
}

/** The narrow Lease API the keeper needs; conflicts throw E_STORE_CONFLICT. */
export interface LeaseApi {
  get(name: string): Promise<LeaseState | undefined>;
  create(s: LeaseState): Promise<LeaseState>;
  update(s: LeaseState): Promise<LeaseState>;
}

/** `tunnel-<node>`, or a shortened name with a hash when that would pass 253 characters. */
export function leaseName(node: string): string {
  const name = `tunnel-${node}`;
  if (name.length <= 253) return name;
  return `${name.slice(0, 236)}-${createHash('sha256').update(node).digest('hex').slice(0, 16)}`;
}

export interface LeaseKeeperOptions {
  api: LeaseApi;
  replica: string;
  /** This replica's CONNECT address for peers. */
  address: string;
  durationSeconds: number;
  renewEveryMs?: number;
  log: Logger;
  now?: () => number;
  /** Another replica took the node over: the local session is stale. */
  onLost(node: string, holder: string): void;
}

export interface LeaseKeeper {
  hold(node: string, credential?: string): Promise<void>;
  release(node: string): Promise<void>;
  held(): string[];
  /** Stops renewing; with `release`, hands every lease back first. */
  close(opts?: { release?: boolean }): Promise<void>;
}

export function createLeaseKeeper(opts: LeaseKeeperOptions): LeaseKeeper {
  const { api, replica, log } = opts;
  const now = opts.now ?? Date.now;
  const held = new Map<string, LeaseState>();
  const busy = new Map<string, Promise<void>>();

  /** One write at a time per node, in call order. */
  const serial = (node: string, fn: () => Promise<void>) => {
    const next = (busy.get(node) ?? Promise.resolve()).then(fn, fn);
    busy.set(node, next);
    void next.finally(() => busy.get(node) === next && busy.delete(node));
    return next;
  };

  const take = async (node: string, credential: string | undefined): Promise<LeaseState> => {
    const name = leaseName(node);
    for (let attempt = 0; ; attempt++) {
      const cur = await api.get(name);
      const t = now();
      const mine: LeaseState = {
        name, node, holder: replica, address: opts.address, renewMs: t, durationSeconds: opts.durationSeconds,
        acquireMs: cur && cur.holder === replica ? cur.acquireMs : t,
        transitions: (cur?.transitions ?? 0) + (cur && cur.holder !== replica ? 1 : 0),
        credential: credential ?? '',
        resourceVersion: cur?.resourceVersion,
      };
      try {
        return cur ? await api.update(mine) : await api.create(mine);
      } catch (e) {
        if (!isTetherError(e, ErrorCode.StoreConflict) || attempt >= 4) throw e;
      }
    }
  };

  const renew = (node: string) =>
    serial(node, async () => {
      const last = held.get(node);
      if (!last) return;
      try {
        held.set(node, await api.update({ ...last, renewMs: now() }));
      } catch (e) {
        if (!isTetherError(e, ErrorCode.StoreConflict)) return log.warn('renew tunnel lease failed', { node, error: messageOf(e) });
        const cur = await api.get(last.name).catch(() => undefined);
        if (!held.has(node)) return;
        if (cur && cur.holder !== replica) {
          held.delete(node);
          log.warn('tunnel lease taken over by another replica', { node, holder: cur.holder });
          opts.onLost(node, cur.holder);
        } else if (cur) {
          held.set(node, await api.update({ ...cur, renewMs: now() }).catch(() => cur));
        }
      }
    });

  const timer = setInterval(() => {
    for (const node of held.keys()) void renew(node);
  }, opts.renewEveryMs ?? Math.max(1000, (opts.durationSeconds * 1000) / 3));
  timer.unref?.();

  const release = (node: string) =>
    serial(node, async () => {
      const last = held.get(node);
      held.delete(node);
      if (!last) return;
      try {
        await api.update({ ...last, holder: '', credential: '', renewMs: now() });
      } catch (e) {
        // Someone else wrote it (a newer holder): nothing of ours left to release.
        if (!isTetherError(e, ErrorCode.StoreConflict)) log.warn('release tunnel lease failed', { node, error: messageOf(e) });
      }
    });

  return {
    hold: (node, credential) =>
      serial(node, async () => {
        held.set(node, await take(node, credential));
      }),
    release,
    held: () => [...held.keys()],
    async close(o = {}) {
      clearInterval(timer);
      if (o.release) await Promise.all([...held.keys()].map((n) => release(n)));
      held.clear();
    },
  };
}

/** What a replica knows about every tunnel lease, fed by a Lease informer. */
export interface LeaseView {
  apply(s: LeaseState): void;
  remove(name: string): void;
  /** The live holder of a node's tunnel, if any. */
  owner(node: string): { replica: string; address: string; credential?: string } | undefined;
  /** Whether the node ever had a tunnel (a lease exists, held or not). */
  known(node: string): boolean;
  readonly size: number;
}

export function createLeaseView(now: () => number = Date.now): LeaseView {
  const byNode = new Map<string, LeaseState>();
  const nodeOf = new Map<string, string>();
  return {
    apply(s) {
      byNode.set(s.node, s);
      nodeOf.set(s.name, s.node);
    },
    remove(name) {
      const node = nodeOf.get(name);
      nodeOf.delete(name);
      if (node) byNode.delete(node);
    },
    owner(node) {
      const s = byNode.get(node);
      if (!s || !s.holder || !s.address) return undefined;
      if (s.renewMs + s.durationSeconds * 1000 < now()) return undefined;
      return { replica: s.holder, address: s.address, ...(s.credential ? { credential: s.credential } : {}) };
    },
    known: (node) => byNode.has(node),
    get size() {
      return byNode.size;
    },
  };
}
