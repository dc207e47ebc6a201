/**
 * Recorder: while online, copies what cached clients receive into the store, off the response's
 * path (the client is answered first; decoding happens on the next turn of the event loop).
 *
 *   LIST  → the scope's stream is replaced (pages are collected until the last one);
 *   GET   → the object is stored;
 *   WATCH → events are appended to the stream's log in order; BOOKMARKs advance it. A WatchList
 *           (sendInitialEvents=true) is recorded as a LIST up to its initial-events-end BOOKMARK.
 *   discovery and OpenAPI documents → kept for kubectl, for every client.
 *   the answer's status to a cached client's GET, LIST and WATCH (allowed, or 403 with its Status) →
 *           the identity's access record (access.ts), so offline answers keep to what it was allowed.
 *
 *   a live Node or Pod status write of a cached client (the kubelet, once the link is back) →
 *           before it is forwarded, what it sets is removed from the outbox entry waiting for that
 *           object: the live write carries the node's newest values of those fields, and the queued
 *           ones must not land after it.
 *
 * Undecodable bodies (an upstream answering garbage) are counted and skipped; store failures (a
 * full disk) are reported through `onStoreError` and never affect the client's response; `onStoreOk`
 * follows only while the store remembers no failed write (store-health.ts).
 */
import type { Logger } from '../../shared/log.ts';
import type { RequestInfo, ResourceRequestInfo } from '../../shared/kube/index.ts';
import type { KubeObject, Store, WatchEvent } from '../store/index.ts';
import { watchStart } from '../store/resource-version.ts';
import type { Headers, Tap } from './contract.ts';
import { accessOf } from './access.ts';
import { documentKey, listKindKey } from './documents.ts';
import { isTokenRequest, tokenTap } from './tokens.ts';
import { scopeOf, streamMatcher } from './scope.ts';
import { isEmptyDelta, liveCover, trimDelta } from './status-delta.ts';
import { coalesced, isStatusWrite, statusPath } from './writer.ts';

export interface RecorderOptions {
  store: Store;
  log: Logger;
  onStoreError(e: unknown): void;
  onStoreOk(): void;
  onDecodeError(what: string): void;
  /** Objects of this resource were stored (after the write). */
  onRecorded?(gvr: string): void;
  /** How long newly learnt access records wait to be written together (ms, default 1000). */
  accessFlushMs?: number;
}

interface ListBody {
  kind?: string;
  apiVersion?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items?: KubeObject[];
}

const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';

function isJson(headers: Headers): boolean {
  return String(headers['content-type'] ?? '').split(';')[0]!.trim() === 'application/json';
}

export interface Recorder {
  /**
   * A tap for this request, or undefined when nothing of it is recorded. Called before the request
   * is forwarded; `body` is the request body of a write, when the proxy passes it.
   */
  tapFor(info: RequestInfo, accept: string | undefined, cached: boolean, body?: Buffer): Tap | undefined;
}

export function createRecorder(opts: RecorderOptions): Recorder {
  const { store, log } = opts;
  const pages = new Map<string, KubeObject[]>();

  const guard = (step: string, f: () => void, gvr?: string) => {
    try {
      f();
      // A write that had nothing to change proves nothing about the disk: a remembered failure stays.
      if (!store.db.health.failing()) opts.onStoreOk();
      if (gvr) opts.onRecorded?.(gvr);
    } catch (e) {
      log.warn(`record ${step} failed`, { error: e });
      opts.onStoreError(e);
    }
  };
  const decode = <T>(what: string, text: string): T | undefined => {
    try {
      return JSON.parse(text) as T;
    } catch {
      opts.onDecodeError(what);
      log.warn('upstream sent a body that is not JSON; not cached', { what, bytes: text.length });
      return undefined;
    }
  };
  const withKind = (o: KubeObject, list: ListBody): KubeObject =>
    o.kind ? o : { ...o, kind: (list.kind ?? '').replace(/List$/, ''), apiVersion: list.apiVersion };

  /** Collects the whole body, then hands it over off the response path. */
  const bodyTap = (onBody: (text: string) => void): Tap => {
    const chunks: Buffer[] = [];
    return {
      head: (status, headers) => status === 200 && isJson(headers),
      // Copy: the proxy hands the same chunk to the client socket, which may take ownership of its memory.
      chunk: (d) => void chunks.push(Buffer.from(d)),
      end: (complete) => {
        if (complete) setImmediate(() => onBody(Buffer.concat(chunks).toString('utf8')));
      },
    };
  };

  const recordList = (info: ResourceRequestInfo, text: string) => {
    const list = decode<ListBody>(`list ${info.gvr}`, text);
    if (!list || !Array.isArray(list.items)) return;
    const scope = scopeOf(info);
    const key = `${info.component}|${JSON.stringify(scope)}`;
    const items = [...(info.continue ? (pages.get(key) ?? []) : []), ...list.items.map((o) => withKind(o, list))];
    if (list.metadata?.continue) {
      pages.set(key, items);
      return;
    }
    pages.delete(key);
    guard('list', () => {
      store.streams.replaceList(scope, info.component, items, list.metadata?.resourceVersion ?? '', streamMatcher(scope));
      if (list.kind) store.documents.put(listKindKey(info.gvr), info.gvr, { contentType: 'text/plain', body: list.kind });
    }, info.gvr);
  };

  const watchTap = (info: ResourceRequestInfo): Tap => {
    const scope = scopeOf(info);
    // How the watch starts (resource-version.ts rule 1): a WatchList is recorded as a LIST; a watch
    // from "now" updates objects without a log (its history is not the scope's); a resumed one is logged.
    const how = watchStart(info);
    const asList = how.kind === 'watch-list';
    const fromNow = how.kind === 'from-now';
    let initial: KubeObject[] | undefined = asList ? [] : undefined;
    let partial = '';
    let pending: WatchEvent[] = [];
    let scheduled = false;
    // Whether this watch counts as a live, gap-free source of the scope's events (stream-log.ts).
    let started = false;
    const start = (rv: string) =>
      guard('watch start', () => {
        store.streams.watchStarted(scope, rv);
        started = true;
      });
    const flush = () => {
      scheduled = false;
      const batch = pending;
      pending = [];
      if (!batch.length) return;
      guard('watch events', () => {
        if (fromNow) for (const ev of batch) ev.type === 'DELETED' ? store.objects.delete(scope.gvr, ev.object.metadata.namespace ?? '', ev.object.metadata.name) : store.objects.put(scope.gvr, ev.object);
        else store.streams.applyEvents(scope, batch);
      }, scope.gvr);
    };
    const onLine = (line: string) => {
      const ev = decode<{ type?: string; object?: KubeObject }>(`watch ${info.gvr}`, line);
      if (!ev?.object?.metadata) return;
      const rv = ev.object.metadata.resourceVersion ?? '';
      if (ev.type === 'BOOKMARK') {
        const annotations = (ev.object.metadata.annotations ?? {}) as Record<string, string>;
        if (initial && annotations[INITIAL_EVENTS_END] === 'true') {
          const items = initial;
          initial = undefined;
          flush();
          guard('watch-list', () => {
            store.streams.replaceList(scope, info.component, items, rv, streamMatcher(scope));
            // A WatchList never sees a List's kind; the BOOKMARK names the objects' kind, even for none
            // (the kubelet's CSIDrivers): offline lists are then answered as <Kind>List, not "List".
            const kind = (ev.object as { kind?: unknown }).kind;
            if (typeof kind === 'string' && kind && !store.documents.get(listKindKey(info.gvr))) {
              store.documents.put(listKindKey(info.gvr), info.gvr, { contentType: 'text/plain', body: `${kind}List` });
            }
          }, scope.gvr);
          start(rv);
        } else if (!initial) {
          flush();
          guard('bookmark', () => store.streams.bookmark(scope, rv));
        }
        return;
      }
      if (ev.type !== 'ADDED' && ev.type !== 'MODIFIED' && ev.type !== 'DELETED') return; // ERROR: nothing to store
      if (initial) {
        initial.push(ev.object);
        return;
      }
      pending.push({ type: ev.type, object: ev.object });
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    };
    return {
      head: (status, headers) => {
        if (status !== 200 || !isJson(headers)) return false;
        if (how.kind === 'resume') start(how.rv);
        guard('view', () => store.streams.recordView(info.component, store.streams.ensure(scope).id, ''));
        return true;
      },
      chunk: (d) => {
        const text = partial + d.toString('utf8');
        const lines = text.split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) if (l.trim()) onLine(l);
      },
      end: () => {
        if (partial.trim()) onLine(partial);
        partial = '';
        flush();
        if (started) guard('watch end', () => store.streams.watchEnded(scope));
        started = false;
      },
    };
  };

  /**
   * A live status write is about to go upstream: what it sets is removed from the entry waiting
   * for the object (the rest is still the newest the node wrote); without a readable body, the
   * whole entry goes. Entries the writer did not make (an older agent's) go whole.
   */
  const supersede = (info: ResourceRequestInfo, body: Buffer | undefined) => {
    const path = statusPath(info);
    const cover = liveCover(info.gvr, info.method, info.patchType, body?.toString('utf8'));
    let dropped = 0;
    let narrowed = 0;
    store.transact('live status write', () => {
      for (const row of store.outbox.statusFor(path)) {
        const delta = coalesced(row);
        const rest = delta ? trimDelta(info.gvr, delta, cover) : undefined;
        if (!rest || isEmptyDelta(rest)) {
          store.outbox.remove(row.seq);
          dropped++;
        } else if (JSON.stringify(rest) !== JSON.stringify(delta)) {
          store.outbox.rewrite(row.seq, JSON.stringify({ ...(JSON.parse(row.body) as object), status: rest }));
          narrowed++;
        }
      }
    });
    if (dropped || narrowed) log.info('a live status write supersedes what was queued for the object', { path, dropped, narrowed });
  };

  /** What of a cached client's GET, LIST or WATCH answer goes into the store. */
  const dataTap = (info: ResourceRequestInfo, accept: string | undefined, cached: boolean): Tap | undefined => {
    if (!cached || info.subresource !== '') return undefined;
    if ((accept ?? '').includes('as=Table')) return undefined;
    if (info.verb === 'list') return bodyTap((text) => recordList(info, text));
    if (info.verb === 'get') {
      return bodyTap((text) => {
        const o = decode<KubeObject>(`get ${info.gvr}`, text);
        if (o?.metadata?.name) guard('get', () => store.objects.put(info.gvr, o));
      });
    }
    if (info.verb === 'watch') return watchTap(info);
    return undefined;
  };

  // What the apiserver allowed or refused a cached identity (access.ts): decided from memory at
  // once, written in one batch per `accessFlushMs`, and only for requests whose answer changed. A
  // write that fails is reported, never retried here (the record in memory still holds it).
  const access = accessOf(store);
  let accessTimer: ReturnType<typeof setTimeout> | undefined;
  const flushAccess = () => {
    accessTimer = undefined;
    try {
      access.flush();
    } catch (e) {
      log.warn('record access failed', { error: e });
      opts.onStoreError(e);
    }
  };
  const noteAccess = (info: ResourceRequestInfo, status: number, refusal?: Record<string, unknown>) => {
    if (!access.answered(info, status, refusal) || accessTimer) return;
    accessTimer = setTimeout(flushAccess, opts.accessFlushMs ?? 1000);
    accessTimer.unref?.();
  };
  /** Notes the answer's status (and a 403's Status body) around the data tap, if any. */
  const accessTap = (info: ResourceRequestInfo, inner: Tap | undefined): Tap | undefined => {
    if ((info.verb !== 'get' && info.verb !== 'list' && info.verb !== 'watch') || info.subresource !== '') return inner;
    let tapping = false;
    let refusal: Buffer[] | undefined;
    return {
      head: (status, headers) => {
        if (status === 403) refusal = [];
        else noteAccess(info, status);
        tapping = inner?.head(status, headers) ?? false;
        return tapping || refusal !== undefined;
      },
      chunk: (d) => {
        if (refusal && refusal.length < 64) refusal.push(Buffer.from(d));
        if (tapping) inner!.chunk(d);
      },
      end: (complete) => {
        if (refusal) {
          const text = Buffer.concat(refusal).toString('utf8');
          let body: Record<string, unknown> | undefined;
          try {
            const parsed = JSON.parse(text) as Record<string, unknown>;
            if (parsed?.kind === 'Status') body = parsed;
          } catch {
            // not a Status: the 403 is still kept, and answered offline with a Status of the agent's
          }
          if (complete) noteAccess(info, 403, body);
        }
        if (tapping) inner!.end(complete);
      },
    };
  };

  return {
    tapFor(info, accept, cached, body) {
      if (!info.isResourceRequest) {
        if (!info.discovery || info.method !== 'GET') return undefined;
        const key = documentKey(info.path, accept);
        const chunks: Buffer[] = [];
        let contentType = '';
        return {
          head: (status, headers) => {
            contentType = String(headers['content-type'] ?? '');
            return status === 200;
          },
          // Copy: the proxy hands the same chunk to the client socket, which may take ownership of its memory.
      chunk: (d) => void chunks.push(Buffer.from(d)),
          end: (complete) => {
            if (complete) guard('document', () => store.documents.put(key, info.path, { contentType, body: Buffer.concat(chunks).toString('utf8') }));
          },
        };
      }
      // The kubelet's TokenRequests: kept to be answered the same after an offline reboot (tokens.ts).
      if (cached && body && isTokenRequest(info)) return tokenTap(store, info, body, opts.onStoreError);
      if (cached && isStatusWrite(info)) {
        guard('live status write', () => supersede(info, body));
        return undefined;
      }
      // Uncached clients are not tapped at all (their answers pass through as they come, gzip included).
      return cached ? accessTap(info, dataTap(info, accept, cached)) : undefined;
    },
  };
}
