/**
 * One client's WATCH that lives through cuts and heals: the client's HTTP response stays open while
 * its events come from the apiserver, then from the store's log, then from the apiserver again.
 *
 * Protocol flow (one response, legs one after the other):
 *
 *   upstream leg: forward() to the picked upstream from `rv`; each line the client gets moves `rv`
 *        │ the upstream broke mid-stream (a cut: the pool aborts tracked watches), or ended while
 *        │ no upstream is healthy, or could not be reached
 *        ▼
 *   log leg: the store's log after `rv` (serveLog: what the agent serves an offline watch)
 *        │ the upstream is back (the bus ends offline watches), or an upstream is healthy again
 *        │ after a retry delay (a break the pool did not count as a cut)
 *        ▼
 *   upstream leg again, re-watching from `rv` itself: no duplicate, no gap.
 *
 * `rv` is the newest resourceVersion delivered to the client (events and BOOKMARKs). The stream
 * ends, as the apiserver ends it, when: an ERROR event was passed on (a 410 Expired from either
 * source: the client relists); a re-watch is answered 410 (passed on as that ERROR event) or another
 * refusal; the upstream ends the watch itself while healthy (its timeout); the client's
 * timeoutSeconds expires; the log cannot serve the scope (an uncached client's scope, a WatchList
 * cut before its initial events ended): then cleanly, as before. The client going away stops the
 * current leg (the upstream request is destroyed, the log subscription closed).
 *
 * The relay knows nothing of the cache: the proxy hands it the upstreams, the recorder's tap per
 * leg, the filter's line transform and a function serving a watch from the log.
 */
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { messageOf } from '../../shared/errors.ts';
import type { ResourceRequestInfo } from '../../shared/kube/index.ts';
import type { Logger } from '../../shared/log.ts';
import { statusBody } from '../../shared/kube/status.ts';
import type { Tap, WatchSink } from '../cache/contract.ts';
import { type ForwardTarget, forward } from './forward.ts';

export interface RelayUpstreams<T extends ForwardTarget> {
  pick(): T | undefined;
  reportFailure(t: T, err: unknown): void;
  track(t: T, abort: AbortController): () => void;
}

/** Where the log leg writes: the watch server's sink (edge/cache/contract.ts). */
export type RelaySink = WatchSink;

export interface WatchRelayOptions<T extends ForwardTarget> {
  info: ResourceRequestInfo;
  /** The request target as normalized (path and query). */
  url: string;
  headers: IncomingHttpHeaders;
  upstreams: RelayUpstreams<T>;
  /** Accept header sent upstream (JSON, so that lines can be read). */
  accept?: string;
  /** The recorder's tap for one upstream leg (`leg` is that leg's request). */
  tapFor(leg: ResourceRequestInfo): Tap | undefined;
  /** The response filter's rewrite of one line (without its newline). */
  line?: (line: string) => string;
  onResponse?(status: number): void;
  /** Serves `leg` from the store's log into `sink`; throws when the log cannot (or may not) serve it. */
  /** `state.tableSeen`: a Table event (with its columns) already reached the client on this response. */
  serveLog(leg: ResourceRequestInfo, sink: RelaySink, state?: { tableSeen: boolean }): void;
  log: Logger;
  /** First delay before re-watching upstream from the log leg without a heal signal; doubles to 30 s. */
  retryMs?: number;
  now?: () => number;
}

/** How the relay starts: forwarding on an upstream the proxy already picked (and tracks), or from the log. */
export type RelayStart<T> = { upstream: T; signal: AbortSignal } | 'log';

const EMPTY = Buffer.alloc(0);
const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';
const MAX_RETRY_MS = 30_000;

type LegEnd = 'ended' | 'broken' | 'unavailable' | 'gone';

function expiredLine(status: Record<string, unknown>): string {
  return `${JSON.stringify({ type: 'ERROR', object: status })}\n`;
}

/** The request of a re-watch from `rv`: the same selectors, no initial events, what is left of the client's timeout. */
export function resumeTarget(url: string, rv: string | undefined, timeoutSeconds: number | undefined): string {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
  params.delete('sendInitialEvents');
  params.delete('resourceVersionMatch');
  if (rv !== undefined) params.set('resourceVersion', rv);
  if (timeoutSeconds !== undefined) params.set('timeoutSeconds', String(timeoutSeconds));
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/**
 * Relays the watch until the client's stream is over; resolves then. Rejects only when nothing was
 * written yet: it started on an upstream that failed before answering, or from a log that cannot
 * serve it (the caller answers with the error, as it would have).
 */
export async function relayWatch<T extends ForwardTarget>(opts: WatchRelayOptions<T>, res: ServerResponse, start: RelayStart<T>): Promise<void> {
  const { info, upstreams, log } = opts;
  const now = opts.now ?? Date.now;
  const transform = opts.line ?? ((l: string) => l);
  const deadline = info.timeoutSeconds !== undefined ? now() + info.timeoutSeconds * 1000 : undefined;
  const wantsInitial = info.sendInitialEvents === true;

  let rv: string | undefined = wantsInitial || info.resourceVersion === '0' ? undefined : info.resourceVersion;
  let rvNum = rv !== undefined && /^\d+$/.test(rv) ? Number(rv) : -1;
  /** A Table event (kubectl's server-side printing, with its columns) reached the client. */
  let tableSeen = false;
  let initialPhase = wantsInitial; // a WatchList before its initial-events-end BOOKMARK
  let terminal = false; // an ERROR event went to the client: the stream ends after it
  let gone = false;
  let stopLeg: (() => void) | undefined;
  let retryMs = opts.retryMs ?? 1000;

  const onClientClose = () => {
    if (res.writableFinished) return;
    gone = true;
    stopLeg?.();
  };
  res.on('close', onClientClose);
  // Timers fire at once past 2^31-1 ms (about 24.8 days): cap, as a longer timeoutSeconds means "as long as that".
  const expiry = deadline !== undefined ? setTimeout(() => stopLeg?.(), Math.min(2 ** 31 - 1, Math.max(0, deadline - now()))) : undefined;
  const expired = () => deadline !== undefined && now() >= deadline;
  const remaining = () => (deadline !== undefined ? Math.max(1, Math.ceil((deadline - now()) / 1000)) : undefined);

  const writeCacheHead = () => {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'x-tether-source': 'cache' });
    res.flushHeaders?.();
  };

  /** Notes what a line delivered to the client; returns it as written. */
  const deliver = (line: string): boolean => {
    const text = line.endsWith('\n') ? line.slice(0, -1) : line;
    try {
      const ev = JSON.parse(text) as { type?: string; object?: { metadata?: { resourceVersion?: string; annotations?: Record<string, string> } } };
      if (ev.type === 'ERROR') terminal = true;
      if ((ev.object as { kind?: string } | undefined)?.kind === 'Table') tableSeen = true;
      // A Table (kubectl's server-side printing) carries the object's version in its row.
      const v = ev.object?.metadata?.resourceVersion || (ev.object as { rows?: { object?: { metadata?: { resourceVersion?: string } } }[] } | undefined)?.rows?.[0]?.object?.metadata?.resourceVersion;
      if (ev.type !== 'ERROR' && v) {
        const n = /^\d+$/.test(v) ? Number(v) : -1;
        // Initial ADDEDs come in no order of version: the newest one is where the stream stands.
        if (n < 0 || n >= rvNum) {
          rv = v;
          rvNum = n;
        }
      }
      if (ev.type === 'BOOKMARK' && ev.object?.metadata?.annotations?.[INITIAL_EVENTS_END] === 'true') initialPhase = false;
    } catch {
      // not JSON: passed on as it is; the stream cannot be resumed past it
    }
    return res.write(line.endsWith('\n') ? line : `${line}\n`);
  };

  const legInfo = (first: boolean): ResourceRequestInfo =>
    first
      ? info
      : { ...info, resourceVersion: rv, resourceVersionMatch: undefined, sendInitialEvents: undefined, timeoutSeconds: remaining() };

  /** One upstream leg: forward() writes into a stand-in response that the relay reads and passes on. */
  const upstreamLeg = async (target: T, first: boolean, signal: AbortSignal | undefined): Promise<LegEnd> => {
    const abort = new AbortController();
    const untrack = signal ? undefined : upstreams.track(target, abort);
    type Mode = 'pending' | 'stream' | 'pass' | 'refused';
    let mode = 'pending' as Mode; // set by forward() through the stand-in's writeHead
    let refusedStatus = 0;
    const refusedBody: Buffer[] = [];
    let complete = false;
    const leg = legInfo(first);
    const stand = Object.assign(new EventEmitter(), {
      writableFinished: false,
      headersSent: false,
      writeHead(status: number, headers: Record<string, string | string[]>) {
        stand.headersSent = true;
        const json = String(headers['content-type'] ?? '').startsWith('application/json');
        if (status === 200 && json && !res.headersSent) {
          res.writeHead(200, headers);
          res.flushHeaders?.();
          mode = 'stream';
        } else if (status === 200 && json) mode = 'stream';
        else if (!res.headersSent) {
          res.writeHead(status, headers);
          mode = 'pass';
        } else {
          mode = 'refused';
          refusedStatus = status;
        }
        return stand;
      },
      flushHeaders() {},
      write(data: Buffer | string): boolean {
        if (mode === 'refused') return void refusedBody.push(Buffer.from(data)), true;
        if (mode === 'pass') return res.write(data);
        return deliver(String(data));
      },
      end(data?: Buffer | string) {
        if (data !== undefined) stand.write(data);
        if (mode === 'pass') res.end();
      },
      destroy() {
        if (mode === 'pass') res.destroy();
      },
    });
    // forward() waits for 'drain' on the response it writes to: the client's.
    stand.once = ((ev: string, fn: (...a: unknown[]) => void) => (ev === 'drain' ? (res.once('drain', fn), stand) : EventEmitter.prototype.once.call(stand, ev, fn))) as typeof stand.once;
    const inner = opts.tapFor(leg);
    let innerTapping = false;
    const tap: Tap = {
      head: (status, headers) => {
        innerTapping = inner?.head(status, headers) ?? false;
        return true;
      },
      chunk: (d) => {
        if (innerTapping) inner!.chunk(d);
      },
      end: (c) => {
        complete = c;
        if (innerTapping) inner!.end(c);
      },
    };
    stopLeg = () => {
      abort.abort();
      stand.emit('close');
    };
    const fakeReq = { method: 'GET', url: resumeTarget(opts.url, leg.resourceVersion, leg.timeoutSeconds), headers: opts.headers } as unknown as IncomingMessage;
    if (first) fakeReq.url = opts.url;
    try {
      await forward(target, fakeReq, stand as unknown as ServerResponse, {
        signal: signal ? AbortSignal.any([signal, abort.signal]) : abort.signal,
        accept: opts.accept,
        tap,
        body: EMPTY,
        watch: true,
        transform: { line: transform },
        onResponse: opts.onResponse,
      });
    } catch (e) {
      if (first && !res.headersSent) throw e;
      upstreams.reportFailure(target, e);
      log.debug('watch relay: re-watch failed', { path: info.path, error: messageOf(e) });
      return gone ? 'gone' : 'unavailable';
    } finally {
      stopLeg = undefined;
      untrack?.();
    }
    if (gone) return 'gone';
    if (mode === 'pass') {
      terminal = true;
      return 'ended';
    }
    if (mode === 'refused') {
      if (refusedStatus === 429 || refusedStatus >= 500) return 'unavailable';
      if (refusedStatus === 200) {
        terminal = true; // an answer that is not JSON (the client asked for protobuf only): ends as before
        return 'ended';
      }
      // Mid-stream, the apiserver reports a refusal as an ERROR event with its Status.
      let status: Record<string, unknown>;
      try {
        status = JSON.parse(Buffer.concat(refusedBody).toString('utf8')) as Record<string, unknown>;
        if (status?.kind !== 'Status') throw new Error('not a Status');
      } catch {
        const built = statusBody(refusedStatus, refusedStatus === 410 ? 'Expired' : '', `re-watch from ${rv} answered ${refusedStatus}`);
        status = { ...built, reason: built.reason || undefined }; // no reason but Expired: left out, as the apiserver does
      }
      res.write(expiredLine(status));
      terminal = true;
      return 'ended';
    }
    retryMs = opts.retryMs ?? 1000;
    if (complete && upstreams.pick()) return 'ended';
    return 'broken';
  };

  /** One log leg: resolves 'ended' when the log's watch ended, 'unavailable' when it could not start, 'broken' for a retry upstream. */
  const logLeg = (first: boolean): Promise<LegEnd> =>
    new Promise<LegEnd>((resolve, reject) => {
      const closers: (() => void)[] = [];
      let done = false;
      let retry: ReturnType<typeof setTimeout> | undefined;
      const finish = (why: LegEnd) => {
        if (done) return;
        done = true;
        clearTimeout(retry);
        stopLeg = undefined;
        for (const c of closers.splice(0)) c();
        resolve(why);
      };
      stopLeg = () => finish(gone ? 'gone' : 'ended');
      const sink: RelaySink = {
        write: (l) => {
          if (done) return true;
          if (!res.headersSent) writeCacheHead();
          return deliver(transform(l.replace(/\n$/, '')));
        },
        end: () => finish(gone ? 'gone' : 'ended'),
        onClose: (fn) => void closers.push(fn),
      };
      try {
        opts.serveLog(legInfo(first), sink, { tableSeen });
        if (!res.headersSent) writeCacheHead();
      } catch (e) {
        if (!res.headersSent) {
          done = true;
          stopLeg = undefined;
          return reject(e);
        }
        log.info('watch relay: the log cannot serve this watch; ending it', { path: info.path, error: messageOf(e) });
        return finish('unavailable');
      }
      if (terminal) return finish('ended');
      const again = () => {
        if (done) return;
        if (upstreams.pick()) return finish('broken');
        retry = setTimeout(again, retryMs);
      };
      retry = setTimeout(again, retryMs);
      retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
    });

  try {
    let next: 'upstream' | 'log' = start === 'log' ? 'log' : 'upstream';
    let first = start === 'log' ? undefined : start;
    // A watch opened offline: its first leg is the log's answer to the request as the client sent
    // it (a WatchList's initial events and initial-events-end BOOKMARK included).
    let logFirst = start === 'log';
    while (!gone && !terminal && !expired()) {
      if (next === 'upstream') {
        const target = first?.upstream ?? upstreams.pick();
        if (!target) {
          next = 'log';
          continue;
        }
        const r = await upstreamLeg(target, first !== undefined, first?.signal);
        first = undefined;
        if (r === 'ended' || r === 'gone') break;
        // A WatchList cut before its initial events ended cannot be resumed: it ends, and the client re-lists.
        if (r === 'broken' && initialPhase) break;
        if (r === 'broken') log.info('watch relay: upstream watch broke; continuing from the log', { path: info.path, rv });
        next = 'log';
      } else {
        if (initialPhase && !logFirst) break;
        const r = await logLeg(logFirst);
        logFirst = false;
        if (r === 'unavailable' || r === 'gone') break;
        if (r === 'ended' && !upstreams.pick()) break; // the log's watch ended itself (its timeout)
        log.info('watch relay: re-watching upstream', { path: info.path, rv });
        next = 'upstream';
      }
    }
  } finally {
    clearTimeout(expiry);
    res.off('close', onClientClose);
    // Nothing written (the caller answers with the error), or the stream ends here.
    if (!gone && res.headersSent && !res.writableEnded) res.end();
  }
}
