/**
 * What the agent does when the link comes back: once per return (the pool going from no healthy
 * upstream to one), after a random delay below `jitterMs` (many nodes healing at once do not all
 * reach the apiserver at the same instant), on the upstream picked then:
 *
 * 1. replay the outbox, the writes answered locally while offline (edge/cache/replay.ts). When it
 *    did not finish (the apiserver refused for now: 5xx, 429, a failure), it is tried again
 *    5–10 s later (random), on the same upstream, while some upstream is healthy; one replay at a time;
 * 2. end the watches served from the store, so that their clients re-watch upstream (after the
 *    replay, so that what they see there includes the node's own offline writes);
 * 3. follow the NodePools again for the topology filter (edge/topology-feed.ts: one LIST, then a watch;
 *    the previous follow is stopped first);
 * 4. refresh the discovery documents (edge/discovery-prefetch.ts), conditional on the ETags kept here across
 *    reconnects.
 * With no store (it could not be opened) only step 2 runs; with no healthy upstream by the time the
 * delay is over, too. Going offline before the delay is over does not cancel it: the work then finds
 * no upstream (or its requests fail) and the next return schedules it again.
 *
 * It also logs each health transition and the agent going offline. Timers come from `clock` and the
 * delays from `random` (tests pass a fake clock: nothing here sleeps).
 */
import type { Logger } from '../shared/log.ts';
import { replayOutbox } from './cache/replay.ts';
import { prefetchDiscovery } from './discovery-prefetch.ts';
import type { UpstreamCall } from './upstream/calls.ts';
import type { Store } from './store/index.ts';
import type { Topology } from './topology-feed.ts';
import type { NodeRequests } from './upstream/node-requests.ts';
import type { UpstreamChange } from './upstream/pool.ts';

/** Timers, as the global setTimeout and clearTimeout (the default). */
export interface ReconnectClock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface ReconnectOptions {
  /** The upstream pool: whether some upstream is healthy, and its transitions. */
  link: { readonly online: boolean; onChange(listener: (ev: UpstreamChange) => void): () => void };
  requests: Pick<NodeRequests, 'pinned' | 'watch' | 'online'>;
  store?: Store;
  /** The offline watches (edge/cache's event bus). */
  bus: { endAll(): void };
  topology?: Pick<Topology, 'followPools'>;
  log: Logger;
  /** Upper bound of the random delay before the work starts. Default 2000 ms. */
  jitterMs?: number;
  /** In [0, 1). Default Math.random. */
  random?: () => number;
  clock?: ReconnectClock;
}

export interface Reconnect {
  /** Resolves when the work started so far has ended (tests; close does not wait for it). */
  settled(): Promise<void>;
  /** Cancels the timers, stops following NodePools and listening to the link. */
  stop(): void;
}

/** A replay that did not finish is tried again after REPLAY_RETRY_MS plus up to as much again (random). */
export const REPLAY_RETRY_MS = 5000;

const globalClock: ReconnectClock = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export function createReconnect(opts: ReconnectOptions): Reconnect {
  const { link, requests, store, bus, topology, log } = opts;
  const random = opts.random ?? Math.random;
  const clock = opts.clock ?? globalClock;
  const jitterMs = opts.jitterMs ?? 2000;
  const discoveryTags = new Map<string, string>();
  const running = new Set<Promise<void>>();
  let reconnectTimer: unknown;
  let retryTimer: unknown;
  let replaying = false;
  let pools: { stop(): void } | undefined;
  let wasOnline = false;
  let stopped = false;

  const track = (p: Promise<void>) => {
    running.add(p);
    void p.finally(() => running.delete(p));
  };

  const replay = async (call: UpstreamCall): Promise<void> => {
    if (replaying || !store) return;
    replaying = true;
    let done = true;
    try {
      const r = await replayOutbox(store, call, log.child({ part: 'replay' }));
      done = r.done;
      log.info('outbox replayed', { ...r });
    } catch (e) {
      done = false;
      log.warn('outbox replay failed', { error: e });
    } finally {
      replaying = false;
    }
    if (!done && !stopped) {
      clock.clearTimeout(retryTimer);
      retryTimer = clock.setTimeout(() => {
        if (link.online) track(replay(call));
      }, REPLAY_RETRY_MS + Math.floor(random() * REPLAY_RETRY_MS));
    }
  };

  const followPools = (call: UpstreamCall) => {
    pools?.stop();
    if (!topology) return;
    pools = topology.followPools({ call, online: requests.online, watch: requests.watch });
  };

  const onOnline = async () => {
    const on = requests.pinned();
    if (!on || !store) {
      bus.endAll();
      return;
    }
    await replay(on('replay'));
    bus.endAll();
    if (stopped) return;
    followPools(on('request'));
    const d = await prefetchDiscovery(store, on('discovery'), log, discoveryTags).catch((e) => log.warn('discovery refresh failed', { error: e }));
    if (d) log.debug('discovery refreshed', { ...d });
  };

  const unlisten = link.onChange((ev) => {
    log.info(ev.healthy ? 'upstream healthy' : 'upstream unhealthy', { server: ev.upstream.url.host, reason: ev.reason });
    if (link.online && !wasOnline) {
      wasOnline = true;
      clock.clearTimeout(reconnectTimer);
      reconnectTimer = clock.setTimeout(() => track(onOnline()), Math.floor(random() * jitterMs));
    } else if (!link.online && wasOnline) {
      wasOnline = false;
      log.warn('offline: answering from the snapshot store');
    }
  });

  return {
    settled: async () => {
      while (running.size) await Promise.allSettled([...running]);
    },
    stop() {
      stopped = true;
      unlisten();
      clock.clearTimeout(reconnectTimer);
      clock.clearTimeout(retryTimer);
      pools?.stop();
    },
  };
}
