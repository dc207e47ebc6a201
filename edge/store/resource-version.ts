/**
 * Every resourceVersion decision the agent makes, in one place (as client-go's reflector keeps its
 * own in relistResourceVersion): how a watch starts, when a stream's log stays continuous, what an
 * offline LIST or WATCH may be answered at. The store's stream log (stream-log.ts), the recorder,
 * the reader and the watch server (edge/cache) call these and decide nothing of their own.
 *
 * Numbers: a resourceVersion is opaque to clients, but the apiserver's are etcd revisions, so the
 * agent reads them as integers (rvNumber: decimal, at most 15 digits; anything else is "not a
 * number" and orders nothing). The store never moves an object backwards (snapshot-store.ts).
 *
 * Per stream (one scope of list/watch traffic) the log keeps two marks:
 *   watermark       the newest resourceVersion the stream has seen (a LIST, an event, a BOOKMARK);
 *   continuousFrom  every event above it, up to the watermark, is in the log.
 * A watch resumed from X can be served exactly when continuousFrom <= X; older is 410 Expired, as
 * the apiserver's watch cache answers for a compacted revision.
 *
 * The rules, as the functions below apply them:
 *   1. A watch with sendInitialEvents=true is a WatchList: the current objects, the
 *      initial-events-end BOOKMARK (recorded as a LIST at the BOOKMARK's resourceVersion), then
 *      events. Without it, resourceVersion unset or "0" starts "from now" (synthetic ADDEDs of what
 *      is there; online, nothing of it is history the log can keep); any other value resumes after it.
 *   2. An event at or below the watermark is a repeat (a re-established watch sends some again).
 *   3. A LIST above the watermark leaves a gap only when the events in between are unknown: a
 *      first LIST starts the log; a LIST showing no change since the watermark keeps it
 *      continuous; while a live, gap-free upstream watch of the scope runs, it brings the events in
 *      between (the log is "behind" that LIST until it catches up); otherwise the log restarts at
 *      the LIST. Should the last live watch end while still behind, the log restarts then.
 *   4. A watch starting above the watermark with no live watch of the scope restarts the log at
 *      its start.
 *   5. Pruning old events moves continuousFrom up to the newest pruned one.
 *   6. An offline write is stored at the resource's highest watermark (or its own resourceVersion
 *      when higher), so every resourceVersion a client is handed is one the apiserver issued and
 *      can be resumed from; a resumed watch replays local events at exactly its resourceVersion
 *      too (they may not have been seen).
 *   7. An offline LIST is answered at its covering stream's watermark (the resource's highest when
 *      no stream covers it); one asking for a newer resourceVersion (not "0", not Exact) is the
 *      apiserver's 504 ResourceVersionTooLarge; a resourceVersion beside a continue token is refused.
 */
import { rvNumber } from './snapshot-store.ts';

export { rvNumber };

/** The two marks of a stream's log. */
export interface Marks {
  watermark: number;
  continuousFrom: number;
}

/** How a watch request starts (rule 1). */
export type WatchStart = { kind: 'watch-list' } | { kind: 'from-now' } | { kind: 'resume'; rv: string };

export function watchStart(req: { resourceVersion?: string; sendInitialEvents?: boolean }): WatchStart {
  if (req.sendInitialEvents === true) return { kind: 'watch-list' };
  if (req.resourceVersion === undefined || req.resourceVersion === '0') return { kind: 'from-now' };
  return { kind: 'resume', rv: req.resourceVersion };
}

/** Rule 2: an upstream event the log does not hold yet; and a BOOKMARK moves the watermark up, never down. */
export function advances(rv: number | null, watermark: number): rv is number {
  return rv !== null && rv > watermark;
}

/** Rule 3: a LIST item the log does not hold (above the watermark, or without a number): the list shows a change. */
export function showsChange(itemRv: number | null, watermark: number): boolean {
  return itemRv === null || itemRv > watermark;
}

/** An object stored at a newer resourceVersion than a LIST that leaves it out stays (a watch event came first). */
export function newerThanList(storedRv: number | null, listRv: number): boolean {
  return storedRv !== null && storedRv > listRv;
}

/**
 * Rule 3: the marks after a complete LIST at `listRv`. `changed`: the list shows a change the log
 * does not hold (an item above the watermark or without a number, or one gone); `live`: a gap-free
 * upstream watch of the scope is running. `behind` is the LIST the log now waits to catch up with;
 * `caughtUp` that any such wait is over.
 */
export function afterList(m: Marks, listRv: number, changed: boolean, live: boolean): Marks & { behind?: number; caughtUp?: boolean } {
  const watermark = Math.max(m.watermark, listRv);
  if (listRv <= m.watermark) return { continuousFrom: m.continuousFrom, watermark };
  if (m.watermark === 0) return { continuousFrom: listRv, watermark }; // nothing known of the scope yet: the log starts here
  if (!changed) return { continuousFrom: m.continuousFrom, watermark, caughtUp: true }; // nothing changed in between: still continuous
  if (live) return { continuousFrom: m.continuousFrom, watermark: m.watermark, behind: listRv }; // the live watch brings the events in between
  return { continuousFrom: listRv, watermark }; // unknown events in between: the log restarts here
}

/** Whether the log has caught up with the LIST it was behind. */
export function caughtUpWith(behind: number | undefined, watermark: number): boolean {
  return behind !== undefined && watermark >= behind;
}

/**
 * Rule 4: an upstream watch of the scope starts at `fromRv`. `counts`: whether it is a live,
 * gap-free source from now on (not when `fromRv` is no number, e.g. ""; the recorder never starts
 * a watch from "now", whose first events are synthetic ADDEDs); `restart`: the marks when its
 * start leaves a gap.
 */
export function afterWatchStart(m: Marks, fromRv: string, live: boolean): { counts: boolean; restart?: Marks } {
  const from = rvNumber(fromRv);
  if (from === null) return { counts: false };
  return { counts: true, ...(from > m.watermark && !live ? { restart: { continuousFrom: from, watermark: from } } : {}) };
}

/** Rule 3, its end: the last live watch ended; the marks when the log never caught up with the LIST it was behind. */
export function afterLastWatchEnd(m: Marks, behind: number | undefined): Marks | undefined {
  return behind !== undefined && behind > m.watermark ? { continuousFrom: behind, watermark: behind } : undefined;
}

/** Rule 5: continuousFrom after pruning the events up to one at `prunedRv`. */
export function afterPrune(m: Marks, prunedRv: number): Marks | undefined {
  return prunedRv > m.continuousFrom ? { continuousFrom: prunedRv, watermark: m.watermark } : undefined;
}

/** Rule 6: the resourceVersion an offline write is stored and announced at. */
export function localResourceVersion(objectRv: string | undefined, watermarks: number[]): number {
  return Math.max(rvNumber(objectRv) ?? 0, ...watermarks);
}

/** Where a watch resumed from `rv` replays from, or undefined when the log no longer holds it (410 Expired). */
export function resumeFrom(rv: string, m: Pick<Marks, 'continuousFrom'>): number | undefined {
  const from = Number(rv);
  return Number.isSafeInteger(from) && from >= m.continuousFrom ? from : undefined;
}

/** Rule 7: the resourceVersion an offline LIST is answered at. */
export function listAnswerVersion(streamWatermark: number | undefined, resourceWatermark: () => number): string {
  return String(streamWatermark ?? resourceWatermark());
}

/** A resourceVersion that names a version ("0" and unset mean "any"). */
export function namesVersion(rv: string | undefined): rv is string {
  return rv !== undefined && rv !== '' && rv !== '0';
}

/** Rule 7: a LIST for a resourceVersion newer than the store holds (`held`), which only the apiserver could answer. */
export function listTooNew(req: { resourceVersion?: string; resourceVersionMatch?: string }, held: string): boolean {
  return namesVersion(req.resourceVersion) && req.resourceVersionMatch !== 'Exact' && BigInt(req.resourceVersion) > BigInt(held || '0');
}
