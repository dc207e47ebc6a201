/**
 * Replay: on reconnect, the outbox goes upstream in order, as the node.
 *
 * Status writes never overwrite a newer upstream object with stale data:
 *   - the object is re-read first; if it is gone or is another object now (a different uid), the
 *     write is obsolete and dropped;
 *   - the writer keeps one entry per object (the newest status, as one patch); while the replay
 *     runs, live writes of the node already go upstream, and before each is forwarded the recorder
 *     removes what it sets from the entry waiting for its object (or the whole entry). Right
 *     before sending, after the re-read, the replay reads its entry again and sends it as it is
 *     now, or nothing when it is gone;
 *   - every status write carries the re-read resourceVersion as a precondition (a PUT's own, a
 *     patch's `metadata.resourceVersion`), so if a live write lands between the re-read and the
 *     replay's write, the replay gets 409, re-checks, finds its entry gone and drops it. A queued
 *     write therefore never lands after a live one. A conflict with anyone else is retried after
 *     a re-read, a few times.
 * A 5xx or a network failure stops the replay (the rest waits for the next attempt, in order);
 * other 4xx answers drop the entry with a log line. Events that already exist (409) are done.
 */
import type { Logger } from '../../shared/log.ts';
import type { Store } from '../store/index.ts';
import type { OutboxRow } from '../store/schema.ts';
import type { ReplayCall } from './contract.ts';

export interface ReplayResult {
  replayed: number;
  dropped: number;
  /** True when the outbox was emptied; false when a failure stopped the replay. */
  done: boolean;
}

type Outcome = 'done' | 'drop' | 'retry';

const objectPath = (path: string) => path.split('?')[0]!.replace(/\/status$/, '');

/** The entry's body with `rv` as its resourceVersion precondition, in the form its content type takes. */
function withPrecondition(e: OutboxRow, rv: string): string {
  const type = e.contentType.split(';')[0]!.trim();
  let body: unknown;
  try {
    body = JSON.parse(e.body);
  } catch {
    return e.body; // the apiserver will refuse it with a 400, and the entry is dropped
  }
  if (type === 'application/json-patch+json') {
    if (!Array.isArray(body)) return e.body;
    return JSON.stringify([...body, { op: 'replace', path: '/metadata/resourceVersion', value: rv }]);
  }
  const o = (body && typeof body === 'object' && !Array.isArray(body) ? body : {}) as { metadata?: Record<string, unknown> };
  const metadata = o.metadata && typeof o.metadata === 'object' ? o.metadata : {};
  return JSON.stringify({ ...o, metadata: { ...metadata, resourceVersion: rv } });
}

async function replayStatus(store: Store, call: ReplayCall, e: OutboxRow, log: Logger): Promise<Outcome> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const cur = await call('GET', objectPath(e.path));
    if (cur.status === 404) return 'drop';
    if (cur.status >= 500 || cur.status === 429) return 'retry';
    if (cur.status !== 200) return 'drop';
    const obj = JSON.parse(cur.body) as { metadata?: { uid?: string; resourceVersion?: string } };
    if (e.uid && obj.metadata?.uid !== e.uid) {
      log.info('replay: the object was replaced while offline; dropping the status write', { path: e.path });
      return 'drop';
    }
    // As the entry is now: a live write may have removed it, or the fields it set from it.
    const now = store.outbox.get(e.seq);
    if (!now) {
      log.info('replay: a live status write for the object went upstream; dropping the queued one', { path: e.path });
      return 'drop';
    }
    const r = await call(now.method, now.path, { contentType: now.contentType, body: withPrecondition(now, obj.metadata?.resourceVersion ?? '') });
    if (r.status >= 200 && r.status < 300) return 'done';
    if (r.status === 409) continue; // re-read; a live write that landed meanwhile has narrowed the entry
    if (r.status >= 500 || r.status === 429) return 'retry';
    log.warn('replay: the apiserver refused an offline status write; dropping it', { path: e.path, status: r.status, body: r.body.slice(0, 300) });
    return 'drop';
  }
  log.warn('replay: still conflicting after re-reading; dropping the status write', { path: e.path });
  return 'drop';
}

async function replayOther(call: ReplayCall, e: OutboxRow, log: Logger): Promise<Outcome> {
  const r = await call(e.method, e.path, { contentType: e.contentType, body: e.body });
  if ((r.status >= 200 && r.status < 300) || r.status === 409) return 'done';
  if (r.status >= 500 || r.status === 429) return 'retry';
  log.info('replay: the apiserver refused an offline write; dropping it', { path: e.path, status: r.status });
  return 'drop';
}

export async function replayOutbox(store: Store, call: ReplayCall, log: Logger): Promise<ReplayResult> {
  const result: ReplayResult = { replayed: 0, dropped: 0, done: false };
  for (;;) {
    const batch = store.outbox.peek(100);
    if (batch.length === 0) {
      result.done = true;
      return result;
    }
    for (const e of batch) {
      let outcome: Outcome;
      try {
        outcome = e.kind === 'status' ? await replayStatus(store, call, e, log) : await replayOther(call, e, log);
      } catch (err) {
        store.outbox.failed(e.seq, String(err));
        return result;
      }
      if (outcome === 'retry') {
        store.outbox.failed(e.seq, 'upstream unavailable or overloaded');
        return result;
      }
      store.outbox.remove(e.seq); // a no-op when a live write removed it already
      if (outcome === 'done') result.replayed++;
      else result.dropped++;
    }
  }
}
