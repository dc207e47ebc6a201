/**
 * Store health: what /readyz's `store` check reports. Two facts, either one is a problem:
 *
 *   - a write failed with an error that says the disk cannot take it (SQLITE_FULL, SQLITE_IOERR,
 *     SQLITE_READONLY, SQLITE_CORRUPT). It stays reported until a later write has changed rows and
 *     committed: a read that works, or a write that had nothing to change, proves nothing about
 *     the disk, so neither clears it;
 *   - the filesystem holding the store has less free space than the floor (`minFreeBytes`), checked
 *     when asked (statfs), so a disk filling up is reported before SQLite fails.
 *
 * The store reports into this from `guarded` (db.ts); nothing here writes.
 */
import { statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { messageOf } from '../../shared/errors.ts';

export interface StoreHealth {
  /** A store operation failed; remembered when it is a write failure. */
  failed(e: unknown, message?: string): void;
  /** A store operation returned; clears a remembered write failure once rows have changed since. */
  succeeded(): void;
  /** Whether a write failure is remembered (no statfs: cheap enough to ask after every write). */
  failing(): boolean;
  /** The problem to report, or null when the store is fine. */
  problem(): string | null;
}

export interface StoreHealthOptions {
  path: string;
  raw: { get(sql: string): Record<string, unknown> | undefined };
  minFreeBytes?: number;
  freeBytes?: (path: string) => number | undefined;
}

const WRITE_FAILURES = ['SQLITE_FULL', 'SQLITE_IOERR', 'SQLITE_READONLY', 'SQLITE_CORRUPT'];
export const DEFAULT_MIN_FREE_BYTES = 32 * 1024 * 1024;

function isWriteFailure(e: unknown): boolean {
  let c: unknown = e;
  for (let i = 0; i < 4 && c; i++) {
    const code = String((c as { code?: unknown }).code ?? '');
    if (WRITE_FAILURES.some((w) => code.startsWith(w))) return true;
    if (/disk is full|disk I\/O error|readonly database/i.test(messageOf(c))) return true;
    c = (c as { cause?: unknown }).cause;
  }
  return false;
}

export function statfsFreeBytes(path: string): number | undefined {
  try {
    const s = statfsSync(dirname(path));
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return undefined;
  }
}

export function createStoreHealth(opts: StoreHealthOptions): StoreHealth {
  const memory = opts.path === ':memory:';
  const minFree = opts.minFreeBytes ?? DEFAULT_MIN_FREE_BYTES;
  const freeBytes = opts.freeBytes ?? statfsFreeBytes;
  let failure: { message: string; at: number; changes: number } | undefined;
  const totalChanges = () => Number(opts.raw.get('SELECT total_changes() AS n')?.n ?? 0);
  return {
    failed(e, message) {
      if (!isWriteFailure(e)) return;
      let changes = 0;
      try {
        changes = totalChanges();
      } catch {
        // the connection is unusable; the failure stays until a write proves otherwise
      }
      failure = { message: message ?? messageOf(e), at: Date.now(), changes };
    },
    succeeded() {
      if (!failure) return;
      try {
        if (totalChanges() > failure.changes) failure = undefined;
      } catch {
        // keep the failure
      }
    },
    failing: () => failure !== undefined,
    problem() {
      if (failure) return `writes to the store are failing since ${new Date(failure.at).toISOString()}: ${failure.message}`;
      if (memory || minFree <= 0) return null;
      const free = freeBytes(opts.path);
      if (free !== undefined && free < minFree) {
        return `only ${Math.floor(free / 1024 / 1024)} MiB free on the filesystem of ${opts.path} (the store needs ${Math.floor(minFree / 1024 / 1024)} MiB); free space there`;
      }
      return null;
    },
  };
}
