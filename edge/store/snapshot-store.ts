/**
 * SnapshotStore: one copy of each Kubernetes object, keyed by group/version/resource, namespace
 * and name. Writes never move an object backwards: an object whose resourceVersion is older than
 * the stored one is ignored (resourceVersions are compared as numbers only when both are numbers,
 * as etcd revisions are; otherwise the newer write wins).
 *
 * The store sees decoded objects only, never an HTTP request.
 */
import { and, asc, eq, sql } from 'drizzle-orm';
import type { StoreDb } from './db.ts';
import { guarded } from './db.ts';
import { objects } from './schema.ts';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export interface SnapshotStoreOptions {
  now?: () => number;
}

export interface SnapshotStore {
  /** Stores the object unless a newer version is stored; returns whether it was written. */
  put(gvr: string, obj: KubeObject): boolean;
  get(gvr: string, namespace: string, name: string): KubeObject | undefined;
  /** Objects of one resource, in one namespace or (namespace undefined) all of them, by name. */
  list(gvr: string, namespace?: string): KubeObject[];
  /** Deletes the object; with `atRv`, only when the stored version is not newer than that. */
  delete(gvr: string, namespace: string, name: string, atRv?: number | null): boolean;
  /** Object count per resource. */
  counts(): Record<string, number>;
}

export function rvNumber(rv: string | undefined): number | null {
  return rv !== undefined && /^[0-9]{1,15}$/.test(rv) ? Number(rv) : null;
}

export function createSnapshotStore(store: StoreDb, opts: SnapshotStoreOptions = {}): SnapshotStore {
  const { db } = store;
  const now = opts.now ?? Date.now;
  const wrap = <T>(step: string, f: () => T): T => guarded(store, step, f);

  return {
    put(gvr, obj) {
      return wrap('store put', () => {
        const ns = obj.metadata.namespace ?? '';
        const rv = obj.metadata.resourceVersion ?? '';
        const rvNum = rvNumber(rv);
        const row = {
          gvr,
          namespace: ns,
          name: obj.metadata.name,
          uid: obj.metadata.uid ?? '',
          resourceVersion: rv,
          rvNum,
          object: obj,
          updatedAt: new Date(now()),
        };
        const res = db
          .insert(objects)
          .values(row)
          .onConflictDoUpdate({
            target: [objects.gvr, objects.namespace, objects.name],
            set: row,
            // Never move backwards: only replace when either side is not an etcd revision or the new one is not older.
            setWhere: sql`${objects.rvNum} IS NULL OR ${rvNum} IS NULL OR ${objects.rvNum} <= ${rvNum}`,
          })
          .run() as { changes: number };
        return res.changes > 0;
      });
    },
    get(gvr, namespace, name) {
      return wrap('store get', () => {
        const r = db
          .select({ object: objects.object })
          .from(objects)
          .where(and(eq(objects.gvr, gvr), eq(objects.namespace, namespace), eq(objects.name, name)))
          .get();
        return r?.object as KubeObject | undefined;
      });
    },
    list(gvr, namespace) {
      return wrap('store list', () => {
        const where = namespace === undefined ? eq(objects.gvr, gvr) : and(eq(objects.gvr, gvr), eq(objects.namespace, namespace));
        return db
          .select({ object: objects.object })
          .from(objects)
          .where(where)
          .orderBy(asc(objects.namespace), asc(objects.name))
          .all()
          .map((r) => r.object as KubeObject);
      });
    },
    delete(gvr, namespace, name, atRv) {
      return wrap('store delete', () => {
        const notNewer = atRv == null ? undefined : sql`(${objects.rvNum} IS NULL OR ${objects.rvNum} <= ${atRv})`;
        const res = db
          .delete(objects)
          .where(and(eq(objects.gvr, gvr), eq(objects.namespace, namespace), eq(objects.name, name), notNewer))
          .run() as { changes: number };
        return res.changes > 0;
      });
    },
    counts() {
      return wrap('store counts', () => {
        const rows = db.select({ gvr: objects.gvr, n: sql<number>`count(*)` }).from(objects).groupBy(objects.gvr).all();
        return Object.fromEntries(rows.map((r) => [r.gvr, Number(r.n)]));
      });
    },
  };
}
