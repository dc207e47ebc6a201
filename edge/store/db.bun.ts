/** The bun:sqlite opener, used by the compiled binaries. The only importer of bun:sqlite. */
import { Database } from 'bun:sqlite';
import { drizzle } from 'drizzle-orm/bun-sqlite';
import { type Db, type OpenDb, ensureStoreDir, prepare, storeError } from './db.ts';
import * as schema from './schema.ts';

export const openDb: OpenDb = (opts) => {
  ensureStoreDir(opts.path);
  let sqlite: Database;
  try {
    sqlite = new Database(opts.path, { create: true, readwrite: true, strict: true });
  } catch (e) {
    throw storeError('open store', opts.path, e);
  }
  const raw = {
    exec: (sql: string) => void sqlite.run(sql),
    get: (sql: string) => (sqlite.query(sql).get() as Record<string, unknown> | null) ?? undefined,
    close: () => sqlite.close(),
  };
  return prepare(raw, drizzle(sqlite, { schema }) as unknown as Db, opts);
};
