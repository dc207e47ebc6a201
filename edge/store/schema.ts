/**
 * The snapshot store's tables (see README.md in this folder for the on-disk layout).
 * Changing a table means `npm run db:generate`, which writes a new migration into ./migrations;
 * the migrations are embedded into the binaries at build time.
 */
import { index, integer, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';

/** One row per Kubernetes object, shared by every client that has seen it. */
export const objects = sqliteTable(
  'objects',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    /** "v1/pods", "apps/v1/deployments": group/version/resource, group empty for the core API. */
    gvr: text('gvr').notNull(),
    /** Empty for cluster-scoped objects. */
    namespace: text('namespace').notNull().default(''),
    name: text('name').notNull(),
    uid: text('uid').notNull().default(''),
    /** The apiserver's resourceVersion, as it sent it. */
    resourceVersion: text('resource_version').notNull(),
    /** The resourceVersion as a number where it is one (etcd revisions), for ordering. */
    rvNum: integer('rv_num'),
    object: text('object', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    updatedAt: integer('updated_at', { mode: 'timestamp_ms' }).notNull(),
  },
  (t) => [
    uniqueIndex('objects_key').on(t.gvr, t.namespace, t.name),
    index('objects_gvr_rv').on(t.gvr, t.rvNum),
  ],
);

/** Small facts about the store itself (creation time, the agent that wrote it last). */
export const meta = sqliteTable('meta', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
});

export type ObjectRow = typeof objects.$inferSelect;
export type NewObjectRow = typeof objects.$inferInsert;
