/**
 * Outbox: writes answered locally while offline, kept durably until they are replayed upstream in
 * order. Status writes are kept until replayed; Events are bounded: when more than `maxEvents` wait,
 * the oldest Events are dropped (and counted), never a status write.
 *
 * Status writes are addressed by their object's status path (`/api/v1/nodes/n/status`, any query
 * after it ignored): the cache keeps one waiting entry per object (`statusFor` + `supersede` in
 * the same transaction as the new `enqueue`), and narrows or drops the waiting ones when a live
 * write for the object goes upstream (`rewrite`, `remove`, `supersede`), so a queued write never
 * lands on top of a newer live one.
 */
import { and, asc, count, eq, inArray, or, sql } from 'drizzle-orm';
import type { StoreDb } from './db.ts';
import { guarded } from './db.ts';
import { type OutboxRow, outbox } from './schema.ts';

export type OutboxKind = 'status' | 'event' | 'other';

export interface OutboxEntry {
  kind: OutboxKind;
  method: string;
  path: string;
  contentType: string;
  body: string;
  uid?: string;
  component?: string;
}

export interface Outbox {
  /** Queues a write; returns how many queued Events were dropped to stay within the bound. */
  enqueue(e: OutboxEntry): { seq: number; dropped: number };
  /** The oldest waiting entries, in order. */
  peek(limit: number): OutboxRow[];
  /** Removes a replayed (or obsolete) entry. */
  remove(seq: number): void;
  /** Records a failed replay attempt. */
  failed(seq: number, error: string): void;
  depth(): Record<OutboxKind, number>;
  /** Whether an entry is still waiting (not replayed, superseded or dropped). */
  has(seq: number): boolean;
  /** The entry as it is now (a live write may have narrowed its body), or undefined when it is gone. */
  get(seq: number): OutboxRow | undefined;
  /** Replaces a waiting entry's body (a live write made part of it obsolete). */
  rewrite(seq: number, body: string): void;
  /** The status writes waiting for the object whose status path this is, oldest first. */
  statusFor(statusPath: string): OutboxRow[];
  /** Removes the status writes waiting for that object; returns how many. */
  supersede(statusPath: string): number;
}

export function createOutbox(store: StoreDb, opts: { maxEvents?: number; now?: () => number } = {}): Outbox {
  const { db } = store;
  const maxEvents = opts.maxEvents ?? 1000;
  const now = opts.now ?? Date.now;
  const wrap = <T>(step: string, f: () => T): T => guarded(store, step, f);
  /** The entry's path is the status path, or the status path followed by a query. */
  const forObject = (p: string) =>
    and(eq(outbox.kind, 'status'), or(eq(outbox.path, p), sql`substr(${outbox.path}, 1, ${p.length + 1}) = ${`${p}?`}`));
  return {
    enqueue: (e) =>
      wrap('queue offline write', () =>
        db.transaction(() => {
          const row = db
            .insert(outbox)
            .values({ ...e, uid: e.uid ?? '', component: e.component ?? '', createdAt: new Date(now()) })
            .returning({ seq: outbox.seq })
            .get();
          let dropped = 0;
          if (e.kind === 'event') {
            const n = db.select({ n: count() }).from(outbox).where(eq(outbox.kind, 'event')).get()?.n ?? 0;
            if (n > maxEvents) {
              const old = db
                .select({ seq: outbox.seq })
                .from(outbox)
                .where(eq(outbox.kind, 'event'))
                .orderBy(asc(outbox.seq))
                .limit(n - maxEvents)
                .all()
                .map((r) => r.seq);
              db.delete(outbox).where(inArray(outbox.seq, old)).run();
              dropped = old.length;
            }
          }
          return { seq: row.seq, dropped };
        }),
      ),
    peek: (limit) => wrap('read outbox', () => db.select().from(outbox).orderBy(asc(outbox.seq)).limit(limit).all()),
    remove: (seq) => wrap('outbox remove', () => void db.delete(outbox).where(eq(outbox.seq, seq)).run()),
    failed: (seq, error) =>
      wrap('outbox failure', () =>
        void db
          .update(outbox)
          .set({ attempts: sql`${outbox.attempts} + 1`, lastError: error.slice(0, 500) })
          .where(and(eq(outbox.seq, seq)))
          .run(),
      ),
    depth: () =>
      wrap('outbox depth', () => {
        const out: Record<OutboxKind, number> = { status: 0, event: 0, other: 0 };
        for (const r of db.select({ kind: outbox.kind, n: count() }).from(outbox).groupBy(outbox.kind).all()) out[r.kind] = r.n;
        return out;
      }),
    has: (seq) => wrap('read outbox', () => db.select({ seq: outbox.seq }).from(outbox).where(eq(outbox.seq, seq)).get() !== undefined),
    get: (seq) => wrap('read outbox', () => db.select().from(outbox).where(eq(outbox.seq, seq)).get()),
    rewrite: (seq, body) => wrap('outbox rewrite', () => void db.update(outbox).set({ body }).where(eq(outbox.seq, seq)).run()),
    statusFor: (p) => wrap('read outbox', () => db.select().from(outbox).where(forObject(p)).orderBy(asc(outbox.seq)).all()),
    supersede: (p) => wrap('outbox supersede', () => (db.delete(outbox).where(forObject(p)).run() as unknown as { changes: number }).changes),
  };
}
