/**
 * Health probing of upstream apiservers. Knows nothing of pools, picking or the cache.
 *
 * `probeReadyz(url, agent, signal)` — the default probe: `GET <server>/readyz` over the upstream's own
 * keep-alive agent (so with the node's client certificate, on the connections the proxy uses);
 * success is HTTP 200, anything else rejects with a message naming what went wrong. `/readyz` is open
 * to every user, authenticated or anonymous (default RBAC role `system:public-info-viewer`).
 *
 * `startProber(opts)` — one loop per target. A probe starts `intervalMs` after the previous one
 * started (later if that one took longer); a target never has two probes at once. Each probe is bounded
 * by `timeoutMs`: its signal is aborted and the loop reports a timeout even if the probe ignores the
 * signal. Every outcome goes to `onResult` with the monotonic time (`performance.now()`) the probe
 * started, so the caller can discard a success that predates a failure it learned of meanwhile.
 * `stop()` aborts probes in flight and reports nothing more. Timers are unref'd: probing alone does
 * not keep a process alive.
 */
import http from 'node:http';
import https from 'node:https';
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import type { UpstreamAgent } from './tls.ts';

export type ProbeResult = { ok: true } | { ok: false; error: unknown };

export interface ProberOptions<T> {
  targets: readonly T[];
  probe: (target: T, signal: AbortSignal) => Promise<void>;
  intervalMs: number;
  timeoutMs: number;
  onResult: (target: T, result: ProbeResult, startedAt: number) => void;
}

export interface Prober {
  stop(): void;
}

export function probeReadyz(server: URL, agent: UpstreamAgent, signal: AbortSignal): Promise<void> {
  const target = new URL(server);
  target.pathname = server.pathname.replace(/\/+$/, '') + '/readyz';
  target.search = '';
  const request = target.protocol === 'https:' ? https.request : http.request;
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const headers = { accept: 'text/plain', 'user-agent': 'tether-edge/health' };
    const req = request(target, { agent, headers }, (res) => {
      res.resume(); // drain, so the socket goes back to the pool
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

export function startProber<T>(opts: ProberOptions<T>): Prober {
  let stopped = false;
  const inFlight = new Set<AbortController>();
  const timers = new Set<ReturnType<typeof setTimeout>>();

  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    t.unref?.();
    timers.add(t);
  };

  const once = async (target: T) => {
    const startedAt = performance.now();
    const abort = new AbortController();
    inFlight.add(abort);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const e = new TetherError(ErrorCode.UpstreamUnavailable, `probe: no answer within ${opts.timeoutMs} ms`);
        abort.abort(e);
        reject(e);
      }, opts.timeoutMs);
      timer.unref?.();
    });
    let result: ProbeResult;
    try {
      await Promise.race([Promise.resolve().then(() => opts.probe(target, abort.signal)), timeout]);
      result = { ok: true };
    } catch (error) {
      result = { ok: false, error };
    } finally {
      clearTimeout(timer);
      inFlight.delete(abort);
    }
    if (stopped) return;
    try {
      opts.onResult(target, result, startedAt);
    } finally {
      later(Math.max(0, startedAt + opts.intervalMs - performance.now()), () => void once(target));
    }
  };

  for (const target of opts.targets) void once(target);
  return {
    stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const a of inFlight) a.abort(new TetherError(ErrorCode.UpstreamUnavailable, 'probe: prober stopped'));
    },
  };
}
