/**
 * The in-process fan-out of local events (offline writes) to the watches served from the store,
 * and the signal that ends those watches when the upstream is back.
 */
import type { LoggedEvent } from '../store/index.ts';

export interface EventBus {
  publish(streamId: number, ev: LoggedEvent): void;
  subscribe(streamId: number, fn: (ev: LoggedEvent) => void): () => void;
  /** Registers a watch to end when endAll() is called; returns an unregister fn. */
  onEnd(fn: () => void): () => void;
  /** Ends every offline watch (the upstream is back: clients re-watch there). */
  endAll(): void;
  readonly watches: number;
}

export function createEventBus(): EventBus {
  const subs = new Map<number, Set<(ev: LoggedEvent) => void>>();
  const enders = new Set<() => void>();
  return {
    publish(streamId, ev) {
      for (const fn of subs.get(streamId) ?? []) fn(ev);
    },
    subscribe(streamId, fn) {
      let set = subs.get(streamId);
      if (!set) subs.set(streamId, (set = new Set()));
      set.add(fn);
      return () => {
        set.delete(fn);
        if (set.size === 0) subs.delete(streamId);
      };
    },
    onEnd(fn) {
      enders.add(fn);
      return () => enders.delete(fn);
    },
    endAll() {
      for (const fn of [...enders]) fn();
      enders.clear();
    },
    get watches() {
      return enders.size;
    },
  };
}
