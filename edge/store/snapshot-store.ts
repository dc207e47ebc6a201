/**
 * SnapshotStore: one copy of each Kubernetes object, keyed by group/version/resource, namespace
 * and name. Writes never move an object backwards: an object whose resourceVersion is older than
 * the stored one is ignored (resourceVersions are compared as numbers only when both are numbers,
 * as etcd revisions are; otherwise the newer write wins).
 *
 * The store sees decoded objects only, never an HTTP request.
 */
import { type SQL, and, asc, eq, sql } from 'drizzle-orm';
import type { StoreDb } from './db.ts';
import { guarded } from './db.ts';
import { objectFields, supportedFieldLabels } from '../../shared/kube/fields.ts';
import { type Selectable, objects } from './schema.ts';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export interface SnapshotStoreOptions {
  now?: () => number;
}

/** A stored object as text, with what selectors read; for answers that need not decode it. */
export interface RawObject {
  namespace: string;
  name: string;
  selectable: Selectable | null;
  /** The object's JSON, as stored. */
  json: string;
}

export interface PutOptions {
  /**
   * 'not-older' (default): replace unless the stored version is newer — an offline write stores a new
   * content at the same resourceVersion. 'newer': replace only a strictly older version (recording
   * what the apiserver sent: the same version is the same content, so it is not written again).
   */
  replace?: 'not-older' | 'newer';
}

export interface SnapshotStore {
  /** Stores the object unless a newer version is stored; returns whether it was written. */
  put(gvr: string, obj: KubeObject, opts?: PutOptions): boolean;
  /** resourceVersion numbers of the stored objects of a resource (one namespace or all), by "namespace/name". */
  versions(gvr: string, namespace?: string): Map<string, number | null>;
  /** Objects of one resource as stored text, by namespace and name. */
  listRaw(gvr: string, namespace?: string): RawObject[];
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

/** Labels and selectable fields of an object, or null when the resource's fields are not known in advance. */
export function selectableOf(gvr: string, obj: KubeObject): Selectable | null {
  const labels = supportedFieldLabels(gvr);
  if (!labels) return null;
  const get = objectFields(gvr, obj);
  const fields: Record<string, string> = {};
  for (const f of labels) fields[f] = get(f);
  return { labels: (obj.metadata.labels as Record<string, string> | undefined) ?? {}, fields };
}

export function createSnapshotStore(store: StoreDb, opts: SnapshotStoreOptions = {}): SnapshotStore {
  const { db } = store;
  const now = opts.now ?? Date.now;
  const wrap = <T>(step: string, f: () => T): T => guarded(store, step, f);

  // The write path is hot (every recorded object): one prepared statement per replace rule, built once.
  // Values are bound already encoded (JSON text, epoch ms), as the columns store them.
  const prepare = (older: SQL) => {
    const p = (name: string) => sql.placeholder(name);
    return db
      .insert(objects)
      .values({
        gvr: p('gvr'),
        namespace: p('namespace'),
        name: p('name'),
        uid: p('uid'),
        resourceVersion: p('resourceVersion'),
        rvNum: p('rvNum'),
        object: sql`${p('object')}`,
        selectable: sql`${p('selectable')}`,
        updatedAt: sql`${p('updatedAt')}`,
      })
      .onConflictDoUpdate({
        target: [objects.gvr, objects.namespace, objects.name],
        set: {
          uid: sql`excluded.uid`,
          resourceVersion: sql`excluded.resource_version`,
          rvNum: sql`excluded.rv_num`,
          object: sql`excluded.object`,
          selectable: sql`excluded.selectable`,
          updatedAt: sql`excluded.updated_at`,
        },
        // Never move backwards: replace only when either side is not an etcd revision, or by the rule.
        setWhere: sql`${objects.rvNum} IS NULL OR excluded.rv_num IS NULL OR ${older}`,
      })
      .prepare();
  };
  const putNotOlder = prepare(sql`${objects.rvNum} <= excluded.rv_num`);
  const putNewer = prepare(sql`${objects.rvNum} < excluded.rv_num`);

  return {
    put(gvr, obj, opts = {}) {
      return wrap('store put', () => {
        const rv = obj.metadata.resourceVersion ?? '';
        const res = (opts.replace === 'newer' ? putNewer : putNotOlder).run({
          gvr,
          namespace: obj.metadata.namespace ?? '',
          name: obj.metadata.name,
          uid: obj.metadata.uid ?? '',
          resourceVersion: rv,
          rvNum: rvNumber(rv),
          object: JSON.stringify(obj),
          selectable: JSON.stringify(selectableOf(gvr, obj)),
          updatedAt: now(),
        }) as { changes: number };
        return res.changes > 0;
      });
    },
    versions(gvr, namespace) {
      return wrap('store versions', () => {
        const where = namespace === undefined ? eq(objects.gvr, gvr) : and(eq(objects.gvr, gvr), eq(objects.namespace, namespace));
        const out = new Map<string, number | null>();
        for (const r of db.select({ ns: objects.namespace, name: objects.name, rv: objects.rvNum }).from(objects).where(where).all()) {
          out.set(`${r.ns}/${r.name}`, r.rv);
        }
        return out;
      });
    },
    listRaw(gvr, namespace) {
      return wrap('store list', () => {
        const where = namespace === undefined ? eq(objects.gvr, gvr) : and(eq(objects.gvr, gvr), eq(objects.namespace, namespace));
        return db
          .select({ namespace: objects.namespace, name: objects.name, selectable: objects.selectable, json: sql<string>`${objects.object}` })
          .from(objects)
          .where(where)
          .orderBy(asc(objects.namespace), asc(objects.name))
          .all();
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
