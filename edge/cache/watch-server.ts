/**
 * Offline WATCH with the apiserver's semantics, served from the stream log:
 *   - resourceVersion "" or "0", or sendInitialEvents=true: ADDED for every object the request selects,
 *     then (WatchList) a BOOKMARK annotated k8s.io/initial-events-end, then live events;
 *   - resourceVersion X: the logged events after X, then live events; X older than what the log
 *     retains gets an ERROR event with a 410 Expired Status, as the apiserver's watch cache answers;
 *   - BOOKMARKs (when allowWatchBookmarks) every `bookmarkIntervalMs` at the stream's watermark;
 *   - timeoutSeconds ends the stream; so does the upstream coming back (bus.endAll): the proxy's
 *     watch relay (edge/proxy/watch-relay.ts) then re-watches upstream from the last resourceVersion
 *     this stream delivered, in the same client response.
 * Events are filtered by the request's own selectors when the stream is broader than the request.
 * The watch writes lines to a sink; it never sees the HTTP request.
 */
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import type { ResourceRequestInfo } from '../../shared/kube/index.ts';
import { statusBody } from '../../shared/kube/status.ts';
import type { KubeObject, LoggedEvent, Store } from '../store/index.ts';
import { resumeFrom, watchStart } from '../store/resource-version.ts';
import type { EventBus } from './bus.ts';
import type { WatchOutput, WatchSink } from './contract.ts';
import { listKindKey } from './documents.ts';
import { apiVersionOf } from './reader.ts';
import { coveringStream, requestMatcher, scopeOf } from './scope.ts';
import { canPrint, toTable } from './table.ts';

export interface WatchServerOptions {
  store: Store;
  bus: EventBus;
  bookmarkIntervalMs?: number;
  /** Default stream length when the client gives no timeoutSeconds (the apiserver uses 30–60 min). */
  defaultTimeoutMs?: number;
}

const plainLine = (type: string, object: unknown) => `${JSON.stringify({ type, object })}\n`;

function expired(rv: string, oldest: number): string {
  return plainLine('ERROR', statusBody(410, 'Expired', `too old resource version: ${rv} (${oldest})`));
}

/** Checks that a watch can be served; throws a 503 TetherError when the store cannot answer it. */
export function canServeWatch(store: Store, info: ResourceRequestInfo): boolean {
  return coveringStream(store.streams.all(), scopeOf(info)) !== undefined;
}

export function serveWatch(opts: WatchServerOptions, info: ResourceRequestInfo, sink: WatchSink, output: WatchOutput = {}): void {
  const { store, bus } = opts;
  let headers = output.table?.headers ?? true;
  const asTable = output.table !== undefined && canPrint(info.gvr);
  /** One event line: the object, or its one-row Table (BOOKMARK and ERROR objects as they are). */
  const line = (type: string, object: unknown): string => {
    if (!asTable || type === 'BOOKMARK' || type === 'ERROR') return plainLine(type, object);
    const o = object as KubeObject;
    const table = toTable(info.gvr, [o], { resourceVersion: o.metadata.resourceVersion }) as { columnDefinitions?: unknown };
    if (!headers) delete table.columnDefinitions;
    headers = false;
    return plainLine(type, table);
  };
  const stream = coveringStream(store.streams.all(), scopeOf(info));
  if (!stream) {
    throw new TetherError(
      ErrorCode.UpstreamUnavailable,
      `tether-edge: offline, and a watch of ${info.resource}${info.namespace ? ` in ${info.namespace}` : ''} with these selectors is not in the node's cache`,
    );
  }
  const match = requestMatcher(info);
  const bookmarkObject = (rv: number, extra: Record<string, string> = {}) => ({
    kind: (store.documents.get(listKindKey(info.gvr))?.body ?? 'List').replace(/List$/, '') || 'Object',
    apiVersion: apiVersionOf(info.gvr),
    metadata: { resourceVersion: String(rv), ...(Object.keys(extra).length ? { annotations: extra } : {}) },
  });
  let lastRv = stream.watermark;
  let closed = false;
  const timers: ReturnType<typeof setTimeout>[] = [];
  const MAX_TIMER_MS = 2 ** 31 - 1;
  const cleanups: (() => void)[] = [];
  const close = () => {
    if (closed) return;
    closed = true;
    for (const t of timers) clearTimeout(t);
    for (const c of cleanups) c();
    sink.end();
  };
  sink.onClose(close);
  // What this client sees, so that an object entering or leaving its selectors arrives as ADDED or
  // DELETED, as the apiserver's watch cache sends it.
  const keyOf = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
  const visible = new Set<string>();
  const send = (ev: LoggedEvent) => {
    if (closed) return;
    const key = keyOf(ev.object);
    const was = visible.has(key);
    const is = ev.type !== 'DELETED' && match(ev.object);
    let type: string | undefined;
    if (is) type = was ? (ev.type === 'ADDED' ? 'MODIFIED' : ev.type) : 'ADDED';
    else if (was) type = 'DELETED';
    if (is) visible.add(key);
    else visible.delete(key);
    lastRv = Math.max(lastRv, ev.rvNum); // BOOKMARKs carry the newest resourceVersion delivered
    if (type) sink.write(line(type, ev.object));
  };

  // How the watch starts (edge/store/resource-version.ts rule 1). The replay and the subscription
  // below happen in one synchronous turn: no event falls between them.
  const how = watchStart(info);
  if (how.kind !== 'resume') {
    const objs: KubeObject[] = store.objects.list(info.gvr, info.namespace || undefined).filter(match);
    for (const o of objs) {
      visible.add(keyOf(o));
      sink.write(line('ADDED', o));
    }
    if (how.kind === 'watch-list' && info.allowWatchBookmarks) {
      sink.write(line('BOOKMARK', bookmarkObject(stream.watermark, { 'k8s.io/initial-events-end': 'true' })));
    }
  } else {
    const from = resumeFrom(how.rv, stream);
    if (from === undefined) {
      sink.write(expired(how.rv, stream.continuousFrom));
      close();
      return;
    }
    // The client's view at `from` is not kept; the nearest is what it selects in the store before replaying.
    const replayed = store.streams.eventsAfter(stream.id, from);
    const touched = new Set(replayed.map((e) => keyOf(e.object)));
    for (const o of store.objects.list(info.gvr, info.namespace || undefined)) if (match(o) && !touched.has(keyOf(o))) visible.add(keyOf(o));
    for (const ev of replayed) {
      // An object the replay touches was visible before it when its first replayed event is not an ADDED.
      if (touched.delete(keyOf(ev.object)) && ev.type !== 'ADDED') visible.add(keyOf(ev.object));
      send(ev);
    }
  }
  cleanups.push(bus.subscribe(stream.id, send));
  cleanups.push(bus.onEnd(close));

  if (info.allowWatchBookmarks) {
    const interval = opts.bookmarkIntervalMs ?? 60_000;
    const tick = () => {
      if (closed) return;
      sink.write(line('BOOKMARK', bookmarkObject(lastRv)));
      timers.push(setTimeout(tick, interval));
    };
    timers.push(setTimeout(tick, interval));
  }
  const timeoutMs = info.timeoutSeconds !== undefined ? info.timeoutSeconds * 1000 : (opts.defaultTimeoutMs ?? 30 * 60_000);
  // Timers fire at once past 2^31-1 ms (about 24.8 days); a longer timeoutSeconds means "as long as that".
  timers.push(setTimeout(close, Math.min(timeoutMs, MAX_TIMER_MS)));
}
