/**
 * Test support: Leases in memory with resourceVersion preconditions (a write with a stale version
 * throws E_STORE_CONFLICT, as the apiserver answers 409), and views fed on every write, as the
 * Lease informer feeds them. Several hubs in one test share one store.
 */
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import type { Watching } from '../../cloud/tunnel/kube-backend.ts';
import type { LeaseApi, LeaseState, LeaseView } from '../../cloud/tunnel/leases.ts';

export interface MemoryLeases {
  api: LeaseApi;
  watch(view: LeaseView): Watching;
  get(name: string): LeaseState | undefined;
  /** Writes as another party would (bumping the version). */
  put(s: LeaseState): void;
}

export function createMemoryLeases(): MemoryLeases {
  const store = new Map<string, LeaseState>();
  const views = new Set<LeaseView>();
  let version = 0;
  const save = (s: LeaseState) => {
    const saved = { ...s, resourceVersion: String(++version) };
    store.set(s.name, saved);
    for (const v of views) v.apply(saved);
    return { ...saved };
  };
  return {
    api: {
      get: async (name) => {
        const s = store.get(name);
        return s && { ...s };
      },
      create: async (s) => {
        if (store.has(s.name)) throw new TetherError(ErrorCode.StoreConflict, `create lease ${s.name}: exists`);
        return save(s);
      },
      update: async (s) => {
        const cur = store.get(s.name);
        if (!cur || cur.resourceVersion !== s.resourceVersion) throw new TetherError(ErrorCode.StoreConflict, `update lease ${s.name}: conflict`);
        return save(s);
      },
    },
    watch(view) {
      views.add(view);
      for (const s of store.values()) view.apply(s);
      return { synced: Promise.resolve(), healthy: true, stop: async () => void views.delete(view) };
    },
    get: (name) => store.get(name),
    put: (s) => void save(s),
  };
}
