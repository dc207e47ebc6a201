/**
 * StreamLog: the list/watch history the agent serves offline.
 *
 * A stream is one scope of list/watch traffic (resource, namespace, label and field selector).
 * For each stream the log keeps the events in resourceVersion order and two numbers:
 *   - watermark: the newest resourceVersion the stream has seen (list, event or bookmark);
 *   - continuousFrom: every event with a resourceVersion above it, up to the watermark, is in the log.
 * A client resuming a watch from rv X can be served exactly when X >= continuousFrom; older is
 * 410 Gone, as the apiserver answers for a compacted revision.
 *
 * Continuity is per scope, and only a real gap moves continuousFrom. A LIST (or a watch starting) at a
 * resourceVersion above the watermark leaves a gap only when the events in between are unknown:
 *   - a LIST that shows no change since the watermark (every item at or below it, none missing)
 *     proves the scope did not change in between: the watermark moves up, continuousFrom stays
 *     (an object created and deleted in between is the one change no LIST can show);
 *   - while an upstream watch of the scope runs without a gap (watchStarted .. watchEnded), the
 *     events in between are on their way through it: nothing moves; should the last such watch end
 *     before the log has caught up with that LIST, the gap is real and continuousFrom moves then.
 * Which watches are live is kept in memory: after a restart none is.
 *
 * Contracts:
 *   - replaceList is atomic: the scope's objects become exactly the list, except that an object the
 *     log already holds at a newer resourceVersion than the list (a watch event that arrived first)
 *     is kept, so an event is never lost while a list replacement is in progress.
 *   - applyEvents ignores events at or below the watermark (a re-established watch repeats some) and
 *     never lets a stale object overwrite a newer one.
 *   - local events (offline writes) carry the gvr's highest watermark as resourceVersion, so every
 *     resourceVersion a client is handed is one the apiserver issued and can resume from.
 * Which resourceVersion moves which mark is decided in resource-version.ts (its rules 2–6); this
 * file keeps the marks and the events. The log never sees an HTTP request: scopes, decoded objects
 * and predicates come in.
 */
import { and, asc, eq, lte, sql } from 'drizzle-orm';
import type { StoreDb } from './db.ts';
import { guarded } from './db.ts';
import { events, streams, views, type StreamRow } from './schema.ts';
import { type KubeObject, type SnapshotStore } from './snapshot-store.ts';
import { advances, afterLastWatchEnd, afterList, afterPrune, afterWatchStart, caughtUpWith, localResourceVersion, newerThanList, rvNumber, showsChange } from './resource-version.ts';

export interface Scope {
  gvr: string;
  namespace: string;
  labelSelector: string;
  fieldSelector: string;
}

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchEvent {
  type: EventType;
  object: KubeObject;
}

export interface LoggedEvent extends WatchEvent {
  seq: number;
  rvNum: number;
  local: boolean;
}

export interface StreamLogOptions {
  now?: () => number;
  /** Events kept per stream; older ones are pruned and continuousFrom moves up. */
  retainEvents?: number;
}

export interface StreamLog {
  find(scope: Scope): StreamRow | undefined;
  ensure(scope: Scope): StreamRow;
  all(): StreamRow[];
  /** Replaces the scope's objects with a complete LIST at `listRv`; `inScope` says which stored objects the scope covers. */
  replaceList(scope: Scope, component: string, items: KubeObject[], listRv: string, inScope: (o: KubeObject) => boolean): void;
  /**
   * An upstream watch of this scope starts at `fromRv` and its events will be applied: a start above
   * the watermark leaves a gap in the log, unless another live watch of the scope fills it.
   */
  watchStarted(scope: Scope, fromRv: string): void;
  /** That upstream watch ended (each watchStarted is followed by one watchEnded). */
  watchEnded(scope: Scope): void;
  /** Applies upstream events in order; returns the ones that were new. */
  applyEvents(scope: Scope, evs: WatchEvent[]): LoggedEvent[];
  /** A BOOKMARK: nothing changed in the scope up to `rv`. */
  bookmark(scope: Scope, rv: string): void;
  /**
   * An offline write changed (or deleted) an object: stores it at the gvr's watermark and appends a local
   * event to every stream whose scope `covers` it. Returns the stored object and the events per stream.
   */
  applyLocal(gvr: string, type: EventType, obj: KubeObject, covers: (s: StreamRow) => boolean): { object: KubeObject; events: { streamId: number; event: LoggedEvent }[] };
  /** Events of a stream after resourceVersion `afterRv` (local events at exactly `afterRv` included: they may not have been seen). */
  eventsAfter(streamId: number, afterRv: number): LoggedEvent[];
  recordView(component: string, streamId: number, listRv: string): void;
  views(): { component: string; streamId: number; listRv: string }[];
  /** The highest watermark of any stream of this resource. */
  watermark(gvr: string): number;
}

const NO_SCOPE = { namespace: '', labelSelector: '', fieldSelector: '' };

export function createStreamLog(store: StoreDb, objects_: SnapshotStore, opts: StreamLogOptions = {}): StreamLog {
  const { db } = store;
  const now = opts.now ?? Date.now;
  const retain = opts.retainEvents ?? 5000;
  const wrap = <T>(step: string, f: () => T): T => guarded(store, step, f);
  // Per stream id: upstream watches applying events without a gap; and the rv of a LIST the log has
  // not caught up with yet (a live watch is bringing the events in between).
  const live = new Map<number, number>();
  const behind = new Map<number, number>();
  const isLive = (id: number) => (live.get(id) ?? 0) > 0;
  /** The log caught up to `watermark`: a LIST it was behind is covered now. */
  const caughtUp = (id: number, watermark: number) => {
    if (caughtUpWith(behind.get(id), watermark)) behind.delete(id);
  };
  // Objects go through the snapshot store (one copy each, never moved backwards); the log keeps the history.
  const scopeWhere = (s: Scope) =>
    and(
      eq(streams.gvr, s.gvr),
      eq(streams.namespace, s.namespace),
      eq(streams.labelSelector, s.labelSelector),
      eq(streams.fieldSelector, s.fieldSelector),
    );
  const find = (s: Scope) => db.select().from(streams).where(scopeWhere(s)).get();
  const ensure = (s: Scope): StreamRow => {
    const found = find(s);
    if (found) return found;
    return db
      .insert(streams)
      .values({ ...NO_SCOPE, ...s, updatedAt: new Date(now()) })
      .returning()
      .get();
  };
  const setMarks = (id: number, continuousFrom: number, watermark: number, extra: Partial<StreamRow> = {}) =>
    db
      .update(streams)
      .set({ continuousFrom, watermark, updatedAt: new Date(now()), ...extra })
      .where(eq(streams.id, id))
      .run();

  // Appending is on the watch path: a prepared statement, values bound already encoded.
  const p = (name: string) => sql.placeholder(name);
  const insertEvent = db
    .insert(events)
    .values({
      streamId: p('streamId'),
      type: sql`${p('type')}`,
      namespace: p('namespace'),
      name: p('name'),
      rvNum: p('rvNum'),
      local: sql`${p('local')}`,
      object: sql`${p('object')}`,
      at: sql`${p('at')}`,
    })
    .returning({ seq: events.seq })
    .prepare();
  const append = (streamId: number, type: EventType, obj: KubeObject, rvNum: number, local: boolean): LoggedEvent => {
    const r = insertEvent.get({
      streamId,
      type,
      namespace: obj.metadata.namespace ?? '',
      name: obj.metadata.name,
      rvNum,
      local: local ? 1 : 0,
      object: JSON.stringify(obj),
      at: now(),
    }) as { seq: number };
    return { seq: r.seq, type, object: obj, rvNum, local };
  };
  const prune = (s: StreamRow) => {
    const cut = db
      .select({ seq: events.seq, rvNum: events.rvNum })
      .from(events)
      .where(eq(events.streamId, s.id))
      .orderBy(sql`${events.seq} DESC`)
      .limit(1)
      .offset(retain)
      .get();
    if (!cut) return;
    db.delete(events).where(and(eq(events.streamId, s.id), lte(events.seq, cut.seq))).run();
    const cur = db.select().from(streams).where(eq(streams.id, s.id)).get();
    const pruned = cur && afterPrune(cur, cut.rvNum);
    if (pruned) setMarks(s.id, pruned.continuousFrom, pruned.watermark);
  };

  return {
    find: (s) => wrap('stream find', () => find(s)),
    ensure: (s) => wrap('stream ensure', () => ensure(s)),
    all: () => wrap('stream list', () => db.select().from(streams).orderBy(asc(streams.id)).all()),

    replaceList(scope, component, items, listRv, inScope) {
      wrap('record list', () =>
        db.transaction(() => {
          const s = ensure(scope);
          const listNum = rvNumber(listRv) ?? 0;
          // Write only what changed: an object already stored at the same version is the same object.
          const stored = objects_.versions(scope.gvr, scope.namespace || undefined);
          // Whether the list shows a change the log does not hold: an item above the watermark, or gone.
          let changed = false;
          for (const item of items) {
            const key = `${item.metadata.namespace ?? ''}/${item.metadata.name}`;
            const rv = rvNumber(item.metadata.resourceVersion);
            if (showsChange(rv, s.watermark)) changed = true;
            if (rv === null || stored.get(key) !== rv) objects_.put(scope.gvr, item, { replace: 'newer' });
            stored.delete(key);
          }
          // What is left was not in the list: gone, unless stored at a newer version than the list, or outside the scope.
          for (const [key, rv] of stored) {
            if (newerThanList(rv, listNum)) continue;
            const [ns, name] = [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)];
            const o = objects_.get(scope.gvr, ns, name);
            if (o && inScope(o)) {
              objects_.delete(scope.gvr, ns, name, listNum);
              changed = true;
            }
          }
          // A list newer than the log's watermark: are the events in between known?
          const marks = afterList(s, listNum, changed, isLive(s.id));
          if (marks.caughtUp) caughtUp(s.id, marks.watermark);
          if (marks.behind !== undefined) behind.set(s.id, Math.max(behind.get(s.id) ?? 0, marks.behind));
          setMarks(s.id, marks.continuousFrom, marks.watermark, { listed: true, listRv });
          db.insert(views)
            .values({ component, streamId: s.id, listRv, updatedAt: new Date(now()) })
            .onConflictDoUpdate({ target: [views.component, views.streamId], set: { listRv, updatedAt: new Date(now()) } })
            .run();
        }),
      );
    },

    watchStarted(scope, fromRv) {
      wrap('record watch start', () => {
        const s = ensure(scope);
        const start = afterWatchStart(s, fromRv, isLive(s.id));
        if (!start.counts) return; // no number (""): nothing to count from
        // Above the watermark with no live watch of the scope: the events in between are unknown.
        if (start.restart) setMarks(s.id, start.restart.continuousFrom, start.restart.watermark);
        live.set(s.id, (live.get(s.id) ?? 0) + 1);
      });
    },

    watchEnded(scope) {
      wrap('record watch end', () => {
        const s = find(scope);
        if (!s || !isLive(s.id)) return;
        const n = live.get(s.id)! - 1;
        if (n > 0) return void live.set(s.id, n);
        live.delete(s.id);
        // The last live watch ended before the log caught up with a LIST: the events in between are lost.
        const restart = afterLastWatchEnd(s, behind.get(s.id));
        behind.delete(s.id);
        if (restart) setMarks(s.id, restart.continuousFrom, restart.watermark);
      });
    },

    applyEvents(scope, evs) {
      return wrap('record watch events', () =>
        db.transaction(() => {
          const s = ensure(scope);
          let watermark = s.watermark;
          const out: LoggedEvent[] = [];
          for (const ev of evs) {
            const rv = rvNumber(ev.object.metadata.resourceVersion);
            if (!advances(rv, watermark)) continue;
            const ns = ev.object.metadata.namespace ?? '';
            if (ev.type === 'DELETED') objects_.delete(scope.gvr, ns, ev.object.metadata.name, rv);
            else objects_.put(scope.gvr, ev.object, { replace: 'newer' });
            out.push(append(s.id, ev.type, ev.object, rv, false));
            watermark = rv;
          }
          if (watermark !== s.watermark) setMarks(s.id, s.continuousFrom, watermark);
          caughtUp(s.id, watermark);
          if (out.length) prune(s);
          return out;
        }),
      );
    },

    bookmark(scope, rv) {
      wrap('record bookmark', () => {
        const s = find(scope);
        const n = rvNumber(rv);
        if (s && advances(n, s.watermark)) {
          setMarks(s.id, s.continuousFrom, n);
          caughtUp(s.id, n);
        }
      });
    },

    applyLocal(gvr, type, obj, covers) {
      return wrap('record offline write', () =>
        db.transaction(() => {
          const all = db.select().from(streams).where(eq(streams.gvr, gvr)).all();
          const rvNum = localResourceVersion(obj.metadata.resourceVersion, all.map((s) => s.watermark));
          const object: KubeObject = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(rvNum) } };
          if (type === 'DELETED') objects_.delete(gvr, object.metadata.namespace ?? '', object.metadata.name);
          else objects_.put(gvr, object);
          const out: { streamId: number; event: LoggedEvent }[] = [];
          for (const s of all) {
            if (!covers(s)) continue;
            out.push({ streamId: s.id, event: append(s.id, type, object, rvNum, true) });
            if (rvNum > s.watermark) setMarks(s.id, s.continuousFrom, rvNum);
          }
          return { object, events: out };
        }),
      );
    },

    eventsAfter(streamId, afterRv) {
      return wrap('read watch log', () =>
        db
          .select()
          .from(events)
          .where(and(eq(events.streamId, streamId), sql`(${events.rvNum} > ${afterRv} OR (${events.local} = 1 AND ${events.rvNum} = ${afterRv}))`))
          .orderBy(asc(events.seq))
          .all()
          .map((r) => ({ seq: r.seq, type: r.type, object: r.object as KubeObject, rvNum: r.rvNum, local: r.local })),
      );
    },

    recordView(component, streamId, listRv) {
      wrap('record view', () =>
        db
          .insert(views)
          .values({ component, streamId, listRv, updatedAt: new Date(now()) })
          .onConflictDoUpdate({ target: [views.component, views.streamId], set: { updatedAt: new Date(now()) } })
          .run(),
      );
    },

    views: () => wrap('list views', () => db.select({ component: views.component, streamId: views.streamId, listRv: views.listRv }).from(views).all()),

    watermark: (gvr) =>
      wrap('read watermark', () => {
        const r = db.select({ w: sql<number>`max(${streams.watermark})` }).from(streams).where(eq(streams.gvr, gvr)).get();
        return Number(r?.w ?? 0);
      }),
  };
}

