/** The snapshot store as the rest of the agent sees it: objects, the stream log, the outbox, documents. */
import type { StoreDb } from './db.ts';
import { type Documents, createDocuments } from './documents.ts';
import { type Outbox, createOutbox } from './outbox.ts';
import { type SnapshotStore, createSnapshotStore } from './snapshot-store.ts';
import { type StreamLog, createStreamLog } from './stream-log.ts';

export interface Store {
  db: StoreDb;
  objects: SnapshotStore;
  streams: StreamLog;
  outbox: Outbox;
  documents: Documents;
}

export interface StoreOptions {
  now?: () => number;
  retainEvents?: number;
  maxOutboxEvents?: number;
}

export function createStore(db: StoreDb, opts: StoreOptions = {}): Store {
  const objects = createSnapshotStore(db, opts);
  return {
    db,
    objects,
    streams: createStreamLog(db, objects, opts),
    outbox: createOutbox(db, { now: opts.now, maxEvents: opts.maxOutboxEvents }),
    documents: createDocuments(db, opts),
  };
}

export type { KubeObject } from './snapshot-store.ts';
export type { EventType, LoggedEvent, Scope, WatchEvent } from './stream-log.ts';
