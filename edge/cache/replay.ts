/**
 * Replay: on reconnect, the outbox goes upstream in order, as the node.
 *
 * Status writes never overwrite a newer upstream object with stale data:
 *   - the object is re-read first; if it is gone or is another object now (a different uid), the
 *     write is obsolete and dropped;
 *   - a PUT carries the resourceVersion the agent handed out; it is re-based onto the re-read
 *     object (our status on their newest version) and retried on conflict;
 *   - a PATCH is sent as it was made (patches apply to the newest version); on a conflict (a patch
 *     with a resourceVersion precondition) it is retried after a re-read, a few times.
 * A 5xx or a network failure stops the replay (the rest waits for the next attempt, in order);
 * other 4xx answers drop the entry with a log line. Events that already exist (409) are done.
 */
import type { Logger } from '../../shared/log.ts';
import type { Store } from '../store/index.ts';
import type { OutboxRow } from '../store/schema.ts';
import type { UpstreamCall } from '../proxy/client.ts';

export interface ReplayResult {
  replayed: number;
  dropped: number;
  /** True when the outbox was emptied; false when a failure stopped the replay. */
  done: boolean;
}

type Outcome = 'done' | 'drop' | 'retry';

const objectPath = (path: string) => path.split('?')[0]!.replace(/\/status$/, '');

async function replayStatus(call: UpstreamCall, e: OutboxRow, log: Logger): Promise<Outcome> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const cur = await call('GET', objectPath(e.path));
    if (cur.status === 404) return 'drop';
    if (cur.status >= 500) return 'retry';
    if (cur.status !== 200) return 'drop';
    const obj = JSON.parse(cur.body) as { metadata?: { uid?: string; resourceVersion?: string } };
    if (e.uid && obj.metadata?.uid !== e.uid) {
      log.info('replay: the object was replaced while offline; dropping the status write', { path: e.path });
      return 'drop';
    }
    let body = e.body;
    if (e.method === 'PUT') {
      const sent = JSON.parse(e.body) as { metadata?: Record<string, unknown> };
      body = JSON.stringify({ ...sent, metadata: { ...sent.metadata, resourceVersion: obj.metadata?.resourceVersion } });
    }
    const r = await call(e.method, e.path, { contentType: e.contentType, body });
    if (r.status >= 200 && r.status < 300) return 'done';
    if (r.status === 409) continue;
    if (r.status >= 500 || r.status === 429) return 'retry';
    log.warn('replay: the apiserver refused an offline status write; dropping it', { path: e.path, status: r.status, body: r.body.slice(0, 300) });
    return 'drop';
  }
  log.warn('replay: still conflicting after re-reading; dropping the status write', { path: e.path });
  return 'drop';
}

async function replayOther(call: UpstreamCall, e: OutboxRow, log: Logger): Promise<Outcome> {
  const r = await call(e.method, e.path, { contentType: e.contentType, body: e.body });
  if ((r.status >= 200 && r.status < 300) || r.status === 409) return 'done';
  if (r.status >= 500 || r.status === 429) return 'retry';
  log.info('replay: the apiserver refused an offline write; dropping it', { path: e.path, status: r.status });
  return 'drop';
}

export async function replayOutbox(store: Store, call: UpstreamCall, log: Logger): Promise<ReplayResult> {
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
        outcome = e.kind === 'status' ? await replayStatus(call, e, log) : await replayOther(call, e, log);
      } catch (err) {
        store.outbox.failed(e.seq, String(err));
        return result;
      }
      if (outcome === 'retry') {
        store.outbox.failed(e.seq, 'upstream unavailable or overloaded');
        return result;
      }
      store.outbox.remove(e.seq);
      if (outcome === 'done') result.replayed++;
      else result.dropped++;
    }
  }
}
