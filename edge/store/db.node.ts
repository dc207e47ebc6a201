/** The better-sqlite3 opener, used by the Node bundle (32-bit ARM). The only importer of better-sqlite3. */
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { type Db, type OpenDb, ensureStoreDir, prepare, storeError } from './db.ts';
import * as schema from './schema.ts';

export const openDb: OpenDb = (opts) => {
  ensureStoreDir(opts.path);
  let sqlite: Database.Database;
  try {
    sqlite = new Database(opts.path);
  } catch (e) {
    throw storeError('open store', opts.path, e);
  }
  const raw = {
    exec: (sql: string) => void sqlite.exec(sql),
    get: (sql: string) => sqlite.prepare(sql).get() as Record<string, unknown> | undefined,
    close: () => sqlite.close(),
  };
  return prepare(raw, drizzle(sqlite, { schema }) as unknown as Db, opts);
};
