/**
 * A list-watch loop shaped like client-go's reflector, which is what the kubelet's informers use:
 *
 *   LIST  <path>?fieldSelector=…&limit=500&resourceVersion=<relistResourceVersion()>
 *   WATCH <path>?allowWatchBookmarks=true&fieldSelector=…&resourceVersion=<last>&timeoutSeconds=<300..600>&watch=true
 *
 * (query keys sorted, as Go's url.Values encodes them). After a LIST the consumer gets the whole
 * set (`replace`); after that, one call per event (`event`). BOOKMARKs only move the resourceVersion.
 *
 * Error handling, by kind:
 *   - the watch ends cleanly (timeoutSeconds, server closed it): watch again from the last version;
 *   - 410 Gone / "Expired" (as a watch ERROR event or a status): wait (backoff), relist;
 *   - a LIST answered 410 for the version asked: list again at once, asking for "" (a quorum read);
 *   - connection refused on WATCH: wait (backoff) and watch again without a relist;
 *   - anything else: wait (backoff) and relist from the last version.
 * Backoff is client-go's: 800 ms doubling up to 30 s, plus up to 100 % jitter; reset after a
 * successful LIST.
 */
import type { Logger } from '../../../shared/log.ts';
import { messageOf } from '../../../shared/errors.ts';
import type { ApiClient, ApiResponse, WatchEvent } from './api-client.ts';

export interface ReflectorOptions {
  client: ApiClient;
  /** Collection path: /api/v1/pods, /api/v1/namespaces/<ns>/configmaps … */
  path: string;
  fieldSelector?: string;
  log: Logger;
  replace(items: any[], resourceVersion: string): void;
  event(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: any): void;
  random?: () => number;
  backoff?: { initialMs: number; maxMs: number };
}

export interface Reflector {
  start(): void;
  stop(): Promise<void>;
  /** Resolves after the first successful LIST has been handed to `replace`. */
  synced: Promise<void>;
  lastSyncResourceVersion(): string;
}

class Relist extends Error {}

export function createReflector(o: ReflectorOptions): Reflector {
  const random = o.random ?? Math.random;
  const backoff = o.backoff ?? { initialMs: 800, maxMs: 30_000 };
  const abort = new AbortController();
  let lastRv = '';
  let lastRvUnavailable = false;
  let failures = 0;
  let loop: Promise<void> | undefined;
  let markSynced: () => void = () => {};
  const synced = new Promise<void>((r) => (markSynced = r));

  /**
   * The version to LIST at, as client-go's relistResourceVersion: "0" (any cached state, served
   * by the watch cache) on the very first LIST; the last synced version afterwards; "" (a quorum
   * read) when the server said that version is too old.
   */
  function relistResourceVersion(): string {
    if (lastRvUnavailable) return '';
    if (lastRv === '') return '0';
    return lastRv;
  }

  const query = (params: Record<string, string | undefined>) =>
    Object.keys(params)
      .filter((k) => params[k] !== undefined && params[k] !== '') // Go's omitempty
      .sort()
      .map((k) => `${k}=${encodeURIComponent(params[k]!)}`)
      .join('&');

  const isGone = (r: ApiResponse) => r.status === 410 || r.body?.reason === 'Expired' || r.body?.code === 410;

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      abort.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
    });
  }

  const backoffMs = () => Math.min(backoff.maxMs, backoff.initialMs * 2 ** failures++) * (1 + random());

  async function list(): Promise<void> {
    const rv = relistResourceVersion();
    const q = query({ fieldSelector: o.fieldSelector, limit: '500', resourceVersion: rv });
    const res = await o.client.request('GET', `${o.path}?${q}`, { timeoutMs: 60_000, signal: abort.signal });
    if (isGone(res) && rv !== '') {
      lastRvUnavailable = true;
      throw new Relist(`list at ${rv}: expired`);
    }
    if (res.status !== 200) throw new Error(`list: status ${res.status}: ${res.body?.message ?? ''}`);
    lastRvUnavailable = false;
    lastRv = res.body.metadata.resourceVersion as string;
    o.replace(res.body.items ?? [], lastRv);
    failures = 0;
    markSynced();
  }

  /** Returns normally when the stream ended cleanly; throws Relist or another error otherwise. */
  async function watchOnce(): Promise<void> {
    const timeoutSeconds = String(Math.floor(300 * (1 + random())));
    const q = query({
      allowWatchBookmarks: 'true',
      fieldSelector: o.fieldSelector,
      resourceVersion: lastRv,
      timeoutSeconds,
      watch: 'true',
    });
    const stream = await o.client.watch(`${o.path}?${q}`, abort.signal);
    if ('status' in stream) {
      if (isGone(stream)) throw new Relist('watch: 410 Gone');
      throw new Error(`watch: status ${stream.status}: ${stream.body?.message ?? ''}`);
    }
    for await (const ev of stream as AsyncIterable<WatchEvent>) {
      if (ev.type === 'ERROR') {
        if (ev.object?.code === 410 || ev.object?.reason === 'Expired' || ev.object?.reason === 'Gone') {
          throw new Relist(`watch: ${ev.object?.message ?? 'expired'}`);
        }
        throw new Error(`watch error event: ${ev.object?.message ?? JSON.stringify(ev.object)}`);
      }
      const rv = ev.object?.metadata?.resourceVersion as string | undefined;
      if (rv) lastRv = rv;
      if (ev.type !== 'BOOKMARK') o.event(ev.type, ev.object);
    }
  }

  async function run(): Promise<void> {
    while (!abort.signal.aborted) {
      try {
        await list();
      } catch (e) {
        if (abort.signal.aborted) return;
        if (e instanceof Relist) {
          o.log.info('relist', { path: o.path, reason: e.message });
          continue;
        }
        o.log.warn('list failed', { path: o.path, error: messageOf(e) });
        await sleep(backoffMs());
        continue;
      }
      for (;;) {
        if (abort.signal.aborted) return;
        try {
          await watchOnce();
          o.log.debug('watch ended, watching again', { path: o.path, rv: lastRv });
        } catch (e) {
          if (abort.signal.aborted) return;
          if (e instanceof Relist) {
            // client-go passes every restart of ListAndWatch through its backoff manager.
            o.log.info('relist', { path: o.path, reason: e.message });
            await sleep(backoffMs());
            break;
          }
          const refused = /refused|ECONNREFUSED/i.test(messageOf(e));
          o.log.warn('watch failed', { path: o.path, error: messageOf(e), relist: !refused });
          await sleep(backoffMs());
          if (!refused) break;
        }
      }
    }
  }

  return {
    start() {
      loop ??= run();
    },
    async stop() {
      abort.abort();
      await loop;
    },
    synced,
    lastSyncResourceVersion: () => lastRv,
  };
}

/** An in-memory copy of a collection, keyed namespace/name, fed by a reflector. */
export interface ObjectStore {
  replace(items: any[]): void;
  apply(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: any): void;
  get(namespace: string, name: string): any;
  list(): any[];
}

export function createObjectStore(): ObjectStore {
  const items = new Map<string, any>();
  const key = (o: any) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
  return {
    replace(list) {
      items.clear();
      for (const o of list) items.set(key(o), o);
    },
    apply(type, obj) {
      if (type === 'DELETED') items.delete(key(obj));
      else items.set(key(obj), obj);
    },
    get: (namespace, name) => items.get(`${namespace}/${name}`),
    list: () => [...items.values()],
  };
}
