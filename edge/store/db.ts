/**
 * The SQLite seam. One `OpenDb` type, two openers: db.bun.ts (bun:sqlite, used by the compiled
 * binaries) and db.node.ts (better-sqlite3, used by the Node bundle). Both hand a raw connection
 * and a drizzle database to `prepare`, which does everything else the same way:
 *
 *   1. the store directory is created 0700 and the database files are made 0600 (it holds Secrets);
 *   2. WAL mode, synchronous=NORMAL, a busy timeout (writes the agent acknowledged to a client commit
 *      with synchronous=FULL through `transact(..., { durable: true })`);
 *   3. a write probe, so a database that another process holds locked is reported, not waited on forever;
 *   4. a database written by a newer Tether (a migration this binary does not know) is refused;
 *   5. the embedded migrations are applied; applying them again changes nothing.
 *
 * Every failure becomes a TetherError whose message says which file and what to do. Write failures
 * are also remembered by `health` (see store-health.ts), so /readyz reports a full disk.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import { embeddedMigrations } from './migrations.macro.ts' with { type: 'macro' };
import type * as schema from './schema.ts';
import { type StoreHealth, createStoreHealth } from './store-health.ts';

export type Db = BaseSQLiteDatabase<'sync', unknown, typeof schema>;

/** The few raw operations the seam needs beyond drizzle. */
export interface RawSqlite {
  exec(sql: string): void;
  get(sql: string): Record<string, unknown> | undefined;
  close(): void;
}

export interface StoreDb {
  readonly db: Db;
  readonly raw: RawSqlite;
  readonly path: string;
  /** Whether writes are failing (a full disk) or free space is below the floor. */
  readonly health: StoreHealth;
  close(): void;
}

export interface OpenDbOptions {
  /** Path of the database file; its directory is created 0700 when missing. ":memory:" for tests. */
  path: string;
  /** How long a statement waits for another connection's lock before failing (ms). */
  busyTimeoutMs?: number;
  /** Below this much free space on the store's filesystem the store reports a problem (bytes, default 32 MiB; 0 turns the check off). */
  minFreeBytes?: number;
  /** Free bytes on the filesystem holding `path` (default: statfs); for tests. */
  freeBytes?: (path: string) => number | undefined;
}

export type OpenDb = (opts: OpenDbOptions) => StoreDb;

interface Migration {
  sql: string[];
  folderMillis: number;
  hash: string;
  bps: boolean;
}

const MIGRATIONS: Migration[] = embeddedMigrations();

export const MIGRATION_COUNT = MIGRATIONS.length;

/** The newest migration this build knows, by its creation time. */
export const SCHEMA_VERSION = Math.max(0, ...MIGRATIONS.map((m) => m.folderMillis));

export function ensureStoreDir(path: string): void {
  if (path === ':memory:') return;
  const dir = dirname(path);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  } catch (e) {
    throw new TetherError(ErrorCode.StoreOpen, `open store: create directory ${dir}: ${messageOf(e)}`, { cause: e });
  }
}

/** Maps a driver error (bun:sqlite and better-sqlite3 both carry SQLite's code) to a TetherError. */
export function storeError(step: string, path: string, e: unknown): TetherError {
  if (e instanceof TetherError) return e;
  const code = String((e as { code?: unknown })?.code ?? '');
  const msg = messageOf(e);
  if (code.startsWith('SQLITE_NOTADB') || code.startsWith('SQLITE_CORRUPT') || /not a database|malformed/i.test(msg)) {
    return new TetherError(
      ErrorCode.StoreCorrupt,
      `${step}: ${path} is not a readable Tether store (${msg}); move it aside and the agent starts with an empty store`,
      { cause: e },
    );
  }
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED') || /database is locked/i.test(msg)) {
    return new TetherError(
      ErrorCode.StoreLocked,
      `${step}: ${path} is locked by another process (is another tether-edge running on this store?)`,
      { cause: e },
    );
  }
  if (code.startsWith('SQLITE_FULL') || /disk is full/i.test(msg)) {
    return new TetherError(ErrorCode.StoreOpen, `${step}: ${path}: the disk is full (${msg}); free space on its filesystem`, { cause: e });
  }
  if (code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_PERM')) {
    return new TetherError(ErrorCode.StoreOpen, `${step}: cannot open ${path} for writing (${msg}); check its owner and mode`, {
      cause: e,
    });
  }
  return new TetherError(ErrorCode.StoreOpen, `${step}: ${path}: ${msg}`, { cause: e });
}

/** Steps 2–5 above, shared by both openers. Closes the connection when a step fails. */
export function prepare(raw: RawSqlite, db: Db, opts: OpenDbOptions): StoreDb {
  const { path } = opts;
  let step = 'open store';
  try {
    raw.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
    step = 'open store: read header';
    raw.get('SELECT count(*) AS n FROM sqlite_master');
    step = 'open store: enable WAL';
    raw.exec('PRAGMA journal_mode = WAL');
    raw.exec('PRAGMA synchronous = NORMAL');
    raw.exec('PRAGMA foreign_keys = ON');
    step = 'open store: take write lock';
    raw.exec('BEGIN IMMEDIATE');
    raw.exec('ROLLBACK');
    step = 'open store: check schema version';
    checkNotNewer(raw, path);
    step = 'open store: apply migrations';
    migrate(db);
    restrictFiles(path);
  } catch (e) {
    try {
      raw.close();
    } catch {
      // already failing; the first error is the one to report
    }
    throw storeError(step, path, e);
  }
  const health = createStoreHealth({ path, raw, minFreeBytes: opts.minFreeBytes, freeBytes: opts.freeBytes });
  return { db, raw, path, health, close: () => raw.close() };
}

function checkNotNewer(raw: RawSqlite, path: string): void {
  const has = raw.get("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '__drizzle_migrations'");
  if (!has) return;
  const row = raw.get('SELECT max(created_at) AS v FROM __drizzle_migrations');
  const newest = Number(row?.v ?? 0);
  if (newest > SCHEMA_VERSION) {
    throw new TetherError(
      ErrorCode.StoreNewerSchema,
      `open store: ${path} was written by a newer Tether (schema ${newest}, this build knows ${SCHEMA_VERSION}); ` +
        'upgrade tether-edge, or move the store aside to start empty',
    );
  }
}

function migrate(db: Db): void {
  // The same call drizzle's own migrators make, fed with the migrations embedded at build time.
  const d = db as unknown as { dialect: { migrate(m: Migration[], s: unknown, c: object): void }; session: unknown };
  d.dialect.migrate(MIGRATIONS, d.session, { migrationsFolder: '' });
}

function restrictFiles(path: string): void {
  if (path === ':memory:') return;
  for (const f of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
}

/**
 * Runs a store operation, turning a driver error into a TetherError that names the step. A failed
 * write (full disk, I/O error) is remembered by `store.health` until a later write changes rows.
 */
export function guarded<T>(store: StoreDb, step: string, f: () => T): T {
  try {
    const out = f();
    store.health.succeeded();
    return out;
  } catch (e) {
    const err = storeError(step, store.path, e);
    store.health.failed(e, err.message);
    throw err;
  }
}

const depth = new WeakMap<StoreDb, number>();

/**
 * Runs `f` in one transaction: everything it writes commits together or not at all (calls of
 * other store operations inside `f` join it). `durable` commits with synchronous=FULL, so a write
 * acknowledged to a client survives a power cut (WAL with NORMAL may lose the last commits); it
 * must be the outermost transaction. Other commits stay NORMAL: they hold data the agent can
 * fetch again.
 */
export function transact<T>(store: StoreDb, step: string, f: () => T, opts: { durable?: boolean } = {}): T {
  const d = depth.get(store) ?? 0;
  if (opts.durable && d > 0) throw new TetherError(ErrorCode.StoreConflict, `${step}: a durable transaction cannot be nested in another one`);
  return guarded(store, step, () => {
    if (opts.durable) store.raw.exec('PRAGMA synchronous = FULL');
    depth.set(store, d + 1);
    try {
      return store.db.transaction(() => f(), d === 0 ? { behavior: 'immediate' } : undefined);
    } finally {
      depth.set(store, d);
      if (opts.durable) store.raw.exec('PRAGMA synchronous = NORMAL');
    }
  });
}
