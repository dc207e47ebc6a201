/**
 * Health probes of upstream apiservers. Knows nothing of pools, picking or the cache; *when* to
 * probe is the pool's decision (pool.ts: after a quiet spell, a stalled request, an ambiguous
 * failure, or while an upstream is down).
 *
 * `probeReadyz(url, agent, signal, meter?)` — the default probe: `GET <server>/readyz` over the
 * upstream's own keep-alive agent (so with the node's client certificate, on the connections the
 * proxy uses); success is HTTP 200, anything else rejects with a message naming what went wrong.
 * `/readyz` is open to every user (default RBAC role `system:public-info-viewer`). The bytes it moves
 * go to `meter` as kind `probe`.
 *
 * `probeOnce(probe, target, timeoutMs, signal?)` — runs one probe bounded by `timeoutMs`: its signal
 * is aborted and the result is a timeout even if the probe ignores the signal. Resolves (never
 * rejects) with the outcome and how long it took (ms, monotonic): the duration of a success is a
 * round-trip sample for the pool's RTT estimate.
 */
import http from 'node:http';
import https from 'node:https';
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import type { UpstreamAgent } from './tls.ts';
import { httpHeadBytes } from '../../shared/metrics.ts';
import type { TrafficMeter } from './traffic.ts';

export type ProbeResult = { ok: true } | { ok: false; error: unknown };

export type ProbeMeter = Pick<TrafficMeter, 'add'>;

export function probeReadyz(server: URL, agent: UpstreamAgent, signal: AbortSignal, meter?: ProbeMeter): Promise<void> {
  const target = new URL(server);
  target.pathname = server.pathname.replace(/\/+$/, '') + '/readyz';
  target.search = '';
  const request = target.protocol === 'https:' ? https.request : http.request;
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const headers = { accept: 'text/plain', 'user-agent': 'tether-edge/health' };
    meter?.add('sent', 'probe', httpHeadBytes(`GET ${target.pathname} HTTP/1.1`, { host: target.host, ...headers }));
    const req = request(target, { agent, headers }, (res) => {
      meter?.add('received', 'probe', httpHeadBytes(`HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ''}`, res.headers));
      res.on('data', (c: Buffer) => meter?.add('received', 'probe', c.length)); // drained, so the socket goes back to the pool
      res.on('error', reject);
      res.on('end', () => {
        if (res.statusCode === 200) return resolve();
        const msg = `probe: GET ${target.pathname} answered ${res.statusCode}`;
        reject(new TetherError(ErrorCode.UpstreamUnavailable, msg));
      });
    });
    const onAbort = () => req.destroy(signal.reason instanceof Error ? signal.reason : new Error('probe: aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    req.on('close', () => signal.removeEventListener('abort', onAbort));
    req.on('error', (cause) => reject(cause));
    req.end();
  });
}

export interface ProbeOutcome {
  result: ProbeResult;
  /** performance.now() when the probe started. */
  startedAt: number;
  durationMs: number;
}

export async function probeOnce<T>(
  probe: (target: T, signal: AbortSignal) => Promise<void>,
  target: T,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<ProbeOutcome> {
  const startedAt = performance.now();
  const abort = new AbortController();
  const onOuter = () => abort.abort(signal!.reason);
  if (signal?.aborted) onOuter();
  else signal?.addEventListener('abort', onOuter, { once: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const e = new TetherError(ErrorCode.UpstreamUnavailable, `probe: no answer within ${Math.round(timeoutMs)} ms`);
      abort.abort(e);
      reject(e);
    }, timeoutMs);
    timer.unref?.();
  });
  const aborted = new Promise<never>((_, reject) => {
    if (abort.signal.aborted) reject(abort.signal.reason);
    abort.signal.addEventListener('abort', () => reject(abort.signal.reason), { once: true });
  });
  let result: ProbeResult;
  try {
    await Promise.race([Promise.resolve().then(() => probe(target, abort.signal)), timeout, aborted]);
    result = { ok: true };
  } catch (error) {
    result = { ok: false, error };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onOuter);
  }
  return { result, startedAt, durationMs: performance.now() - startedAt };
}
