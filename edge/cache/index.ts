/**
 * The cache as the proxy sees it (`Cache`, declared in contract.ts): the recorder's taps online,
 * and the reader, watch server, writer and discovery documents offline.
 */
import type { Logger } from '../../shared/log.ts';
import type { RequestInfo } from '../../shared/kube/index.ts';
import type { Store } from '../store/index.ts';
import type { Cache } from './contract.ts';
import { type EventBus } from './bus.ts';
import { documentKeys } from './documents.ts';
import { readGet, readList } from './reader.ts';
import { createRecorder } from './recorder.ts';
import { serveWatch } from './watch-server.ts';
import { replayToken } from './tokens.ts';
import { writeOffline } from './writer.ts';

export interface CacheOptions {
  store: Store;
  bus: EventBus;
  log: Logger;
  bookmarkIntervalMs?: number;
  onStoreError(e: unknown): void;
  onStoreOk(): void;
  onDecodeError(what: string): void;
  onEventsDropped(n: number): void;
  onRecorded?(gvr: string): void;
}

export function createCache(opts: CacheOptions): Cache {
  const { store, bus } = opts;
  const recorder = createRecorder(opts);
  return {
    // `body` (the request body of a write) lets a live status write narrow, not drop, what is queued.
    tapFor: (info: RequestInfo, accept: string | undefined, cached: boolean, body?: Buffer) => recorder.tapFor(info, accept, cached, body),
    read: (info, cached, accept) => (info.verb === 'list' ? readList(store, info, cached, accept) : readGet(store, info, cached)),
    watch: (info, sink, output) => serveWatch({ store, bus, bookmarkIntervalMs: opts.bookmarkIntervalMs }, info, sink, output),
    write: (info, url, contentType, body, hasCredentials) =>
      writeOffline({ store, bus, onEventsDropped: opts.onEventsDropped }, { info, url, contentType, body, hasCredentials }),
    token: (info, body) => replayToken(store, info, body),
    document(info: RequestInfo, accept) {
      for (const key of documentKeys(info.path, accept)) {
        const d = store.documents.get(key);
        if (d) return d;
      }
      return undefined;
    },
  };
}

export { createEventBus, type EventBus } from './bus.ts';
export type { Cache, CachedAnswer, CachedDocument, Headers, ReplayCall, Tap, WatchOutput, WatchSink } from './contract.ts';
