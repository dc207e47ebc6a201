/**
 * Documents: discovery (/version, /api, /apis, /api/v1, /apis/<g>/<v>) and OpenAPI responses, kept by
 * path and Accept variant, so that kubectl keeps working offline.
 */
import { eq, sql } from 'drizzle-orm';
import type { StoreDb } from './db.ts';
import { guarded } from './db.ts';
import { documents } from './schema.ts';

export interface StoredDocument {
  contentType: string;
  body: string;
}

export interface Documents {
  put(key: string, path: string, doc: StoredDocument): void;
  get(key: string): StoredDocument | undefined;
  count(): number;
}

export function createDocuments(store: StoreDb, opts: { now?: () => number } = {}): Documents {
  const { db } = store;
  const now = opts.now ?? Date.now;
  const wrap = <T>(step: string, f: () => T): T => guarded(store, step, f);
  return {
    put: (key, path, doc) =>
      wrap('store document', () => {
        const row = { key, path, contentType: doc.contentType, body: doc.body, updatedAt: new Date(now()) };
        db.insert(documents).values(row).onConflictDoUpdate({ target: documents.key, set: row }).run();
      }),
    get: (key) =>
      wrap('read document', () =>
        db.select({ contentType: documents.contentType, body: documents.body }).from(documents).where(eq(documents.key, key)).get(),
      ),
    count: () => wrap('count documents', () => Number(db.select({ n: sql<number>`count(*)` }).from(documents).get()?.n ?? 0)),
  };
}
