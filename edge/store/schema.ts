/**
 * The snapshot store's tables (see README.md in this folder for the on-disk layout).
 * Changing a table means `npm run db:generate`, which writes a new migration into ./migrations;
 * the migrations are embedded into the binaries at build time.
 */
import { index, integer, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';

export interface Selectable {
  labels: Record<string, string>;
  fields: Record<string, string>;
}

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
    /**
     * What selectors read, kept beside the object so offline LISTs filter without decoding whole
     * objects: labels and the resource's selectable fields. Null for resources whose fields are
     * not known in advance (custom resources): those are decoded.
     */
    selectable: text('selectable', { mode: 'json' }).$type<Selectable>(),
    updatedAt: integer('updated_at', { mode: 'timestamp_ms' }).notNull(),
  },
  (t) => [
    uniqueIndex('objects_key').on(t.gvr, t.namespace, t.name),
    index('objects_gvr_rv').on(t.gvr, t.rvNum),
  ],
);

/**
 * A stream: one scope of list/watch traffic (resource, namespace, selectors), shared by every client
 * that lists or watches exactly that scope. Its event log is continuous (no event missing) for
 * resourceVersions from `continuousFrom` (exclusive) up to `watermark`.
 */
export const streams = sqliteTable(
  'streams',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    gvr: text('gvr').notNull(),
    /** Empty for all namespaces. */
    namespace: text('namespace').notNull().default(''),
    /** Canonical label and field selectors; empty for none. */
    labelSelector: text('label_selector').notNull().default(''),
    fieldSelector: text('field_selector').notNull().default(''),
    /** A complete LIST of this scope has been recorded. */
    listed: integer('listed', { mode: 'boolean' }).notNull().default(false),
    /** resourceVersion of the last complete LIST. */
    listRv: text('list_rv').notNull().default(''),
    continuousFrom: integer('continuous_from').notNull().default(0),
    watermark: integer('watermark').notNull().default(0),
    updatedAt: integer('updated_at', { mode: 'timestamp_ms' }).notNull(),
  },
  (t) => [uniqueIndex('streams_scope').on(t.gvr, t.namespace, t.labelSelector, t.fieldSelector)],
);

/** Which client (component = User-Agent up to the first "/") has listed or watched which stream. */
export const views = sqliteTable(
  'views',
  {
    component: text('component').notNull(),
    streamId: integer('stream_id')
      .notNull()
      .references(() => streams.id, { onDelete: 'cascade' }),
    listRv: text('list_rv').notNull().default(''),
    updatedAt: integer('updated_at', { mode: 'timestamp_ms' }).notNull(),
  },
  (t) => [uniqueIndex('views_key').on(t.component, t.streamId)],
);

/**
 * The watch log: the events of each stream in resourceVersion order. `local` events were made by the
 * agent itself while offline (status writes answered locally); they carry the stream's watermark as
 * resourceVersion, so that every resourceVersion a client sees is one the apiserver issued.
 */
export const events = sqliteTable(
  'events',
  {
    seq: integer('seq').primaryKey({ autoIncrement: true }),
    streamId: integer('stream_id')
      .notNull()
      .references(() => streams.id, { onDelete: 'cascade' }),
    type: text('type', { enum: ['ADDED', 'MODIFIED', 'DELETED'] }).notNull(),
    namespace: text('namespace').notNull().default(''),
    name: text('name').notNull(),
    rvNum: integer('rv_num').notNull(),
    local: integer('local', { mode: 'boolean' }).notNull().default(false),
    object: text('object', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    at: integer('at', { mode: 'timestamp_ms' }).notNull(),
  },
  (t) => [index('events_stream_rv').on(t.streamId, t.rvNum)],
);

/**
 * Writes answered locally while offline, replayed upstream in `seq` order on reconnect.
 * `kind` sorts them: status writes are kept until replayed; Events are bounded (oldest dropped).
 */
export const outbox = sqliteTable(
  'outbox',
  {
    seq: integer('seq').primaryKey({ autoIncrement: true }),
    kind: text('kind', { enum: ['status', 'event', 'other'] }).notNull(),
    method: text('method').notNull(),
    path: text('path').notNull(),
    contentType: text('content_type').notNull(),
    body: text('body').notNull(),
    /** uid of the object the write applies to when it was made; a different uid upstream means the write is obsolete. */
    uid: text('uid').notNull().default(''),
    component: text('component').notNull().default(''),
    attempts: integer('attempts').notNull().default(0),
    lastError: text('last_error').notNull().default(''),
    createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
  },
  (t) => [index('outbox_kind').on(t.kind, t.seq)],
);

/** Discovery and OpenAPI documents, so kubectl keeps working offline. Keyed by path and the Accept variant. */
export const documents = sqliteTable('documents', {
  key: text('key').primaryKey(),
  path: text('path').notNull(),
  contentType: text('content_type').notNull(),
  body: text('body').notNull(),
  updatedAt: integer('updated_at', { mode: 'timestamp_ms' }).notNull(),
});

/**
 * Proof that kube-apiserver accepted a bearer token online (edge/auth/offline-tokens.ts), so the
 * token can be checked offline and after a reboot: the token's SHA-256 (never the token), when it
 * stops being good, and what it was shown. Rows past their expiry are pruned.
 */
export const tokens = sqliteTable(
  'tokens',
  {
    hash: text('hash').primaryKey(),
    expiresAt: integer('expires_at', { mode: 'timestamp_ms' }).notNull(),
    acceptedAt: integer('accepted_at', { mode: 'timestamp_ms' }).notNull(),
    /** The claims read from the token (sub, exp, the bound pod). */
    claims: text('claims', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    /** The views it was shown, oldest first. */
    views: text('views', { mode: 'json' }).$type<string[]>().notNull(),
  },
  (t) => [index('tokens_expires').on(t.expiresAt)],
);

/**
 * What kube-apiserver answered each local identity online, for authorization parity offline
 * (edge/cache/access.ts): per component (the local certificate's name, or the User-Agent's), per
 * request — a GET of one object, or a LIST/WATCH of one scope — whether it was allowed (200/404)
 * or refused (403, with the apiserver's Status kept to answer the same offline). One row per
 * distinct request, written only when the answer changes.
 */
export const access = sqliteTable(
  'access',
  {
    component: text('component').notNull(),
    verb: text('verb', { enum: ['get', 'list', 'watch'] }).notNull(),
    gvr: text('gvr').notNull(),
    namespace: text('namespace').notNull().default(''),
    /** The object's name for a GET; empty for a LIST/WATCH. */
    name: text('name').notNull().default(''),
    /** Canonical selectors of a LIST/WATCH; empty for none (and for a GET). */
    labelSelector: text('label_selector').notNull().default(''),
    fieldSelector: text('field_selector').notNull().default(''),
    /** The apiserver's status code: 200 or 404 (allowed), 403 (refused). */
    status: integer('status').notNull(),
    /** The apiserver's Status body of a refusal; null when allowed. */
    refusal: text('refusal', { mode: 'json' }).$type<Record<string, unknown>>(),
    updatedAt: integer('updated_at', { mode: 'timestamp_ms' }).notNull(),
  },
  (t) => [uniqueIndex('access_key').on(t.component, t.verb, t.gvr, t.namespace, t.name, t.labelSelector, t.fieldSelector)],
);

/** Small facts about the store itself (creation time, the agent that wrote it last). */
export const meta = sqliteTable('meta', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
});

export type ObjectRow = typeof objects.$inferSelect;
export type StreamRow = typeof streams.$inferSelect;
export type EventRow = typeof events.$inferSelect;
export type OutboxRow = typeof outbox.$inferSelect;
export type TokenRow = typeof tokens.$inferSelect;
export type AccessRow = typeof access.$inferSelect;
export type NewObjectRow = typeof objects.$inferInsert;
