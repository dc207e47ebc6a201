/**
 * The ConfigMaps and Secrets the node's pods reference, kept in memory by one list-watch per
 * object, as the kubelet's watch-based configmap/secret managers do:
 *
 *   /api/v1/namespaces/<ns>/configmaps?fieldSelector=metadata.name%3D<name>&…
 *
 * (the Node authorizer allows exactly these, for objects referenced by pods bound to the node).
 * Reference counted by pod: the watch starts with the first pod that uses the object and stops
 * with the last.
 */
import type { Logger } from '../../../shared/log.ts';
import type { ApiClient } from './api-client.ts';
import { createReflector, type Reflector } from './watch.ts';

export type RefKind = 'configmaps' | 'secrets';

export interface ReferencedObjects {
  /** Sets what one pod (by key) references; replaces its previous set. */
  set(podKey: string, namespace: string, refs: { configMaps: string[]; secrets: string[] }): void;
  remove(podKey: string): void;
  get(kind: RefKind, namespace: string, name: string): any;
  /** Objects currently watched: "configmaps/<ns>/<name>" … */
  watched(): string[];
  stop(): Promise<void>;
}

export function createReferencedObjects(client: ApiClient, log: Logger): ReferencedObjects {
  const users = new Map<string, Set<string>>(); // object key -> pod keys
  const byPod = new Map<string, string[]>();
  const watches = new Map<string, { reflector: Reflector; object: any }>();

  function watch(key: string): void {
    const [kind, namespace, name] = key.split('/') as [RefKind, string, string];
    const entry: { reflector: Reflector; object: any } = { reflector: undefined as unknown as Reflector, object: undefined };
    entry.reflector = createReflector({
      client,
      path: `/api/v1/namespaces/${namespace}/${kind}`,
      fieldSelector: `metadata.name=${name}`,
      log: log.child({ watch: key }),
      replace: (items) => (entry.object = items[0]),
      event: (type, obj) => (entry.object = type === 'DELETED' ? undefined : obj),
    });
    watches.set(key, entry);
    entry.reflector.start();
  }

  function release(key: string, podKey: string): void {
    const u = users.get(key);
    u?.delete(podKey);
    if (u?.size !== 0) return;
    users.delete(key);
    void watches.get(key)?.reflector.stop();
    watches.delete(key);
  }

  return {
    set(podKey, namespace, refs) {
      const keys = [
        ...refs.configMaps.map((n) => `configmaps/${namespace}/${n}`),
        ...refs.secrets.map((n) => `secrets/${namespace}/${n}`),
      ];
      for (const key of keys) {
        users.set(key, (users.get(key) ?? new Set<string>()).add(podKey));
        if (!watches.has(key)) watch(key);
      }
      const previous = byPod.get(podKey) ?? [];
      byPod.set(podKey, keys);
      for (const key of previous) if (!keys.includes(key)) release(key, podKey);
    },
    remove(podKey) {
      for (const key of byPod.get(podKey) ?? []) release(key, podKey);
      byPod.delete(podKey);
    },
    get: (kind, namespace, name) => watches.get(`${kind}/${namespace}/${name}`)?.object,
    watched: () => [...watches.keys()].sort(),
    async stop() {
      await Promise.all([...watches.values()].map((w) => w.reflector.stop()));
      watches.clear();
      users.clear();
      byPod.clear();
    },
  };
}
