/**
 * A Bun macro: runs at bundle time and inlines the drizzle migrations as data, so the compiled
 * binaries and the Node bundle carry their schema with them and never read ./migrations at run
 * time. Import it with `with { type: 'macro' }`.
 */
import { fileURLToPath } from 'node:url';
import { readMigrationFiles } from 'drizzle-orm/migrator';

export function embeddedMigrations() {
  return readMigrationFiles({ migrationsFolder: fileURLToPath(new URL('./migrations', import.meta.url)) });
}
