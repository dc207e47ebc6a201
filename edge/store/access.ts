/**
 * Access records: what kube-apiserver answered each local identity online (allowed or refused, per
 * GET of an object and per LIST/WATCH of a scope), persisted so that offline answers keep to it
 * after the agent restarts (edge/cache/access.ts decides with them). Written in batches, one row
 * per distinct request, only when its answer changed.
 */
import { sql } from 'drizzle-orm';
import type { StoreDb } from './db.ts';
import { guarded } from './db.ts';
import { access } from './schema.ts';

export type AccessVerb = 'get' | 'list' | 'watch';

export interface AccessRecord {
  component: string;
  verb: AccessVerb;
  gvr: string;
  namespace: string;
  /** A GET's object name; '' for a LIST/WATCH. */
  name: string;
  labelSelector: string;
  fieldSelector: string;
  /** 200 or 404: allowed; 403: refused. */
  status: number;
  /** The apiserver's Status of a refusal. */
  refusal?: Record<string, unknown>;
}

export interface AccessRecords {
  all(): AccessRecord[];
  /** Inserts or replaces these records in one transaction. */
  put(records: readonly AccessRecord[]): void;
  count(): number;
}

export function createAccessRecords(store: StoreDb, opts: { now?: () => number } = {}): AccessRecords {
  const { db } = store;
  const now = opts.now ?? Date.now;
  const wrap = <T>(step: string, f: () => T): T => guarded(store, step, f);
  return {
    all: () =>
      wrap('read access records', () =>
        db
          .select()
          .from(access)
          .all()
          .map((r) => ({
            component: r.component,
            verb: r.verb,
            gvr: r.gvr,
            namespace: r.namespace,
            name: r.name,
            labelSelector: r.labelSelector,
            fieldSelector: r.fieldSelector,
            status: r.status,
            ...(r.refusal ? { refusal: r.refusal } : {}),
          })),
      ),
    put: (records) =>
      wrap('store access records', () => {
        if (!records.length) return;
        db.transaction(() => {
          const at = new Date(now());
          for (const r of records) {
            const row = { ...r, refusal: r.refusal ?? null, updatedAt: at };
            db.insert(access)
              .values(row)
              .onConflictDoUpdate({
                target: [access.component, access.verb, access.gvr, access.namespace, access.name, access.labelSelector, access.fieldSelector],
                set: { status: row.status, refusal: row.refusal, updatedAt: at },
              })
              .run();
          }
        });
      }),
    count: () => wrap('count access records', () => Number(db.select({ n: sql<number>`count(*)` }).from(access).get()?.n ?? 0)),
  };
}
