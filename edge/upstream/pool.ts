/**
 * The upstream pool: which kube-apiserver the edge proxy sends its next request to, and noticing
 * within a second that one is lost.
 *
 * API
 *   createUpstreamPool(opts: UpstreamPoolOptions): UpstreamPool
 *   pool.ready: Promise<void>            every upstream has had its first probe (also resolves on close)
 *   pool.pick(): Upstream | undefined    by lbMode among healthy upstreams; undefined when none is
 *   pool.reportFailure(u, err): void     a request to u failed (refused, reset, timeout, TLS, 5xx from a
 *                                        proxy in front…): u is unhealthy at once
 *   pool.track(u, abort): () => void     abort `abort` when u turns unhealthy (watches); returns unregister
 *   pool.online: boolean                 some upstream is healthy
 *   pool.onChange(listener): () => void  health transitions, and each upstream's first verdict
 *   pool.all(): readonly Upstream[]      in --server order
 *   pool.setTls(tls): void               certificate rotation (throws E_BAD_CONFIG and changes nothing
 *                                        on bad material); new requests use new agents, requests in
 *                                        flight finish on the old ones
 *   pool.close(): void                   stop probing, abort tracked requests, destroy every socket
 *
 * Health rules
 * - Before its first probe an upstream is not healthy; the first probe decides (200 → healthy at once).
 * - Any failure (probe error or timeout, reportFailure) makes it unhealthy at once.
 * - An unhealthy upstream becomes healthy after `healthyAfter` consecutive successful probes that
 *   started after its last failure (a probe already in flight when a failure is reported does not count).
 * - On turning unhealthy: every tracked AbortController of it is aborted with an E_UPSTREAM_UNAVAILABLE
 *   TetherError as reason, the idle sockets of its agents are destroyed (no reuse of dead keep-alive
 *   connections), and listeners hear { upstream, healthy: false, reason }. `track` on an upstream that
 *   is not healthy aborts at once.
 * - Detection: at most probeIntervalMs + probeTimeoutMs (250 + 600 ms by default) for a server that
 *   stops answering, sooner for a refused or reset connection, immediate on reportFailure.
 *
 * Read `u.agent` for every request: it changes on setTls. The pool never sends requests of its own
 * other than probes, and knows nothing of metrics, the cache or the store; wire those from onChange.
 */
import type { Logger } from '../../shared/log.ts';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import { probeReadyz, startProber, type ProbeResult } from './health.ts';
import {
  agentBusy,
  checkTls,
  createAgent,
  dropIdleSockets,
  retireAgent,
  type UpstreamAgent,
  type UpstreamTls,
} from './tls.ts';

export type { UpstreamAgent, UpstreamTls } from './tls.ts';

export interface Upstream {
  readonly url: URL;
  readonly healthy: boolean;
  /** The latest failure, kept after recovery. */
  readonly lastError?: string;
  /** When `healthy` last changed or was first decided (ms, from opts.now). */
  readonly lastChange: number;
  /** Keep-alive agent with the pool's TLS material; changes on setTls. */
  readonly agent: UpstreamAgent;
}

export type LbMode = 'round-robin' | 'priority';

export interface UpstreamChange {
  upstream: Upstream;
  healthy: boolean;
  reason?: string;
}

export interface UpstreamPool {
  readonly ready: Promise<void>;
  pick(): Upstream | undefined;
  reportFailure(u: Upstream, err: unknown): void;
  track(u: Upstream, abort: AbortController): () => void;
  readonly online: boolean;
  onChange(listener: (ev: UpstreamChange) => void): () => void;
  all(): readonly Upstream[];
  setTls(tls: UpstreamTls): void;
  close(): void;
}

export interface UpstreamPoolOptions {
  servers: readonly string[];
  lbMode: LbMode;
  tls: UpstreamTls;
  /** Time between probe starts of one upstream. Default 250. */
  probeIntervalMs?: number;
  /** A probe with no answer by then fails. Default 600. */
  probeTimeoutMs?: number;
  /** Consecutive successful probes for an unhealthy upstream to be healthy again. Default 2. */
  healthyAfter?: number;
  log: Logger;
  now?: () => number;
  /** Replaces the default `GET /readyz` probe (tests). Must settle; it is aborted on timeout. */
  probe?: (u: Upstream, signal: AbortSignal) => Promise<void>;
}

class Member implements Upstream {
  healthy = false;
  lastError: string | undefined;
  probed = false;
  decided = false;
  streak = 0;
  failedAt = -Infinity;
  retired: UpstreamAgent[] = [];
  readonly tracked = new Set<AbortController>();
  constructor(
    readonly url: URL,
    public agent: UpstreamAgent,
    public lastChange: number,
  ) {}
}

export function createUpstreamPool(opts: UpstreamPoolOptions): UpstreamPool {
  const { log, lbMode } = opts;
  const now = opts.now ?? Date.now;
  const intervalMs = positive('probeIntervalMs', opts.probeIntervalMs ?? 250);
  const timeoutMs = positive('probeTimeoutMs', opts.probeTimeoutMs ?? 600);
  const healthyAfter = Math.floor(positive('healthyAfter', opts.healthyAfter ?? 2));
  const probe = opts.probe ?? ((u: Upstream, signal: AbortSignal) => probeReadyz(u.url, u.agent, signal));
  if (opts.servers.length === 0) throw new TetherError(ErrorCode.BadConfig, 'upstream pool: no servers');
  checkTls(opts.tls);
  const members = opts.servers.map(parseServer).map((url) => new Member(url, createAgent(url, opts.tls), now()));
  const listeners = new Set<(ev: UpstreamChange) => void>();
  let cursor = 0;
  let closed = false;
  let resolveReady!: () => void;
  const ready = new Promise<void>((resolve) => (resolveReady = resolve));

  const emit = (ev: UpstreamChange) => {
    for (const listener of [...listeners]) {
      try {
        listener(ev);
      } catch (e) {
        log.error('upstream listener failed', { server: ev.upstream.url.href, error: messageOf(e) });
      }
    }
  };

  const unavailable = (m: Member, reason: string) =>
    new TetherError(ErrorCode.UpstreamUnavailable, `upstream ${m.url.href}: ${reason}`);

  const markFailed = (m: Member, reason: string) => {
    m.streak = 0;
    m.failedAt = performance.now();
    m.lastError = reason;
    if (m.decided && !m.healthy) return;
    m.decided = true;
    m.healthy = false;
    m.lastChange = now();
    log.warn('upstream unhealthy', { server: m.url.href, reason });
    const err = unavailable(m, reason);
    for (const abort of [...m.tracked]) abort.abort(err);
    m.tracked.clear();
    for (const agent of [m.agent, ...m.retired]) dropIdleSockets(agent);
    emit({ upstream: m, healthy: false, reason });
  };

  const markSucceeded = (m: Member, startedAt: number) => {
    if (startedAt < m.failedAt || m.healthy) return;
    if (m.decided && ++m.streak < healthyAfter) return;
    m.decided = true;
    m.streak = 0;
    m.healthy = true;
    m.lastChange = now();
    log.info('upstream healthy', { server: m.url.href });
    emit({ upstream: m, healthy: true });
  };

  const onResult = (m: Member, result: ProbeResult, startedAt: number) => {
    if (closed) return;
    if (result.ok) markSucceeded(m, startedAt);
    else markFailed(m, prefixed('probe', result.error));
    if (!m.probed) {
      m.probed = true;
      if (members.every((x) => x.probed)) resolveReady();
    }
  };

  const prober = startProber({ targets: members, probe, intervalMs, timeoutMs, onResult });

  const member = (u: Upstream, step: string): Member => {
    if (u instanceof Member && members.includes(u)) return u;
    throw new TetherError(ErrorCode.Internal, `${step}: not an upstream of this pool: ${u.url?.href}`);
  };

  return {
    ready,
    pick() {
      if (closed) return undefined;
      if (lbMode === 'priority') return members.find((m) => m.healthy);
      for (let i = 0; i < members.length; i++) {
        const m = members[(cursor + i) % members.length]!;
        if (!m.healthy) continue;
        cursor = (cursor + i + 1) % members.length;
        return m;
      }
      return undefined;
    },
    reportFailure(u, err) {
      const m = member(u, 'report failure');
      if (!closed) markFailed(m, prefixed('request', err));
    },
    track(u, abort) {
      const m = member(u, 'track');
      if (closed || !m.healthy) {
        abort.abort(unavailable(m, closed ? 'pool closed' : (m.lastError ?? 'not healthy yet')));
        return () => {};
      }
      m.tracked.add(abort);
      return () => void m.tracked.delete(abort);
    },
    get online() {
      return !closed && members.some((m) => m.healthy);
    },
    onChange(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    all: () => members,
    setTls(material) {
      checkTls(material);
      if (closed) return;
      for (const m of members) {
        const old = m.agent;
        m.agent = createAgent(m.url, material);
        retireAgent(old);
        m.retired = [...m.retired.filter(agentBusy), old];
      }
      log.info('upstream tls replaced', { servers: members.length });
    },
    close() {
      if (closed) return;
      closed = true;
      prober.stop();
      for (const m of members) {
        const err = unavailable(m, 'pool closed');
        for (const abort of m.tracked) abort.abort(err);
        m.tracked.clear();
        for (const agent of [m.agent, ...m.retired]) agent.destroy();
        m.retired = [];
      }
      listeners.clear();
      resolveReady();
    },
  };
}

function parseServer(s: string): URL {
  let url: URL;
  try {
    url = new URL(s);
  } catch (cause) {
    throw new TetherError(ErrorCode.BadConfig, `upstream pool: not a URL: ${s}`, { cause });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new TetherError(ErrorCode.BadConfig, `upstream pool: not an http(s) URL: ${s}`);
  }
  return url;
}

function positive(name: string, v: number): number {
  if (!(v > 0) || !Number.isFinite(v)) throw new TetherError(ErrorCode.BadConfig, `upstream pool: ${name} must be > 0`);
  return v;
}

/** "probe: connect ECONNREFUSED 127.0.0.1:6443"; some runtime errors carry only a code. */
function prefixed(step: string, err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  const text = messageOf(err) || (typeof code === 'string' ? code : '') || 'unknown error';
  return text.startsWith(`${step}: `) ? text : `${step}: ${text}`;
}
