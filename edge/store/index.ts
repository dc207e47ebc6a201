/** The snapshot store as the rest of the agent sees it: objects, the stream log, the outbox, documents. */
import { type AccessRecords, createAccessRecords } from './access.ts';
import { type StoreDb, transact } from './db.ts';
import { type Documents, createDocuments } from './documents.ts';
import { type Outbox, createOutbox } from './outbox.ts';
import { type SnapshotStore, createSnapshotStore } from './snapshot-store.ts';
import { type StreamLog, createStreamLog } from './stream-log.ts';
import { type TokenProofs, createTokenProofs } from './tokens.ts';

export interface Store {
  db: StoreDb;
  objects: SnapshotStore;
  streams: StreamLog;
  outbox: Outbox;
  documents: Documents;
  /** What kube-apiserver accepted of bearer tokens online (by hash), for offline checks. */
  tokens: TokenProofs;
  /** What kube-apiserver allowed or refused each local identity online, for offline authorization. */
  access: AccessRecords;
  /**
   * Runs `f` as one transaction over all the parts above (both or neither of, say, a local change
   * and its outbox entry persist). `durable`: committed with synchronous=FULL, for writes the
   * agent acknowledges to a client.
   */
  transact<T>(step: string, f: () => T, opts?: { durable?: boolean }): T;
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
    tokens: createTokenProofs(db),
    access: createAccessRecords(db, opts),
    transact: (step, f, o) => transact(db, step, f, o),
  };
}

export type { KubeObject } from './snapshot-store.ts';
export type { TokenProof } from './tokens.ts';
export type { AccessRecord, AccessVerb } from './access.ts';
export type { EventType, LoggedEvent, Scope, WatchEvent } from './stream-log.ts';
