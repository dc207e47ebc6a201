/**
 * The upstream pool: which kube-apiserver the edge proxy sends its next request to, and noticing
 * that one is lost from the traffic that flows anyway, probing only when that traffic says nothing.
 *
 * API
 *   createUpstreamPool(opts: UpstreamPoolOptions): UpstreamPool
 *   pool.ready: Promise<void>            every upstream has had its first probe (also resolves on close)
 *   pool.pick(): Upstream | undefined    by lbMode among healthy upstreams; undefined when none is
 *   pool.exchange(u, kind): Exchange     a request to u begins; tell the pool when its answer starts
 *                                        (`answered`), when bytes arrive (`heard`) and when it ends
 *   pool.heard(u): void                  something arrived from u (any byte is evidence of life)
 *   pool.reportFailure(u, err): void     a request to u failed before its answer
 *   pool.track(u, abort): () => void     abort `abort` when u turns unhealthy (watches); returns unregister
 *   pool.online: boolean                 some upstream is healthy
 *   pool.onChange(listener): () => void  health transitions, and each upstream's first verdict
 *   pool.all(): readonly Upstream[]      in --server order
 *   pool.setTls(tls): void               certificate rotation (throws E_BAD_CONFIG and changes nothing
 *                                        on bad material); new requests use new agents, requests in
 *                                        flight finish on the old ones
 *   pool.recheck(u): void                probe u now if it is unhealthy and no probe is in flight (a new
 *                                        path to it opened: the tunnel reconnected); backoff starts over
 *   pool.close(): void                   stop probing, abort tracked requests, destroy every socket
 *
 * The upstreams' connections come from `createAgent` (default tls.ts: TCP and TLS to each server);
 * the via-hub mode passes one that opens api streams on the tunnel (via-hub.ts) instead.
 *
 * When the pool probes (`GET /readyz`, health.ts) — never on a fixed timer while traffic flows:
 * - once at start: the first probe decides (200 → healthy at once; anything else → unhealthy);
 * - quiet: nothing heard from a healthy upstream for `quietMs` (30 s): one probe, so an idle agent
 *   (or one whose watches all went silent) still notices a dead link;
 * - stall: a request without an answer after the RTT-adapted stall time (rtt.ts; 200 ms floor), and
 *   nothing else heard from that upstream since it was sent; while it stays unanswered the wait
 *   doubles after each successful probe (a slow LIST on a live link costs a few probes, not a storm);
 * - an ambiguous failure (`reportFailure` with anything but a refused or unreachable connection, e.g.
 *   a reset keep-alive socket): one probe confirms before anything changes;
 * - down: an unhealthy upstream is probed with backoff, `retryMinMs` (250) doubling to `retryMaxMs`
 *   (5 s), and again `retryMinMs` after each success until `healthyAfter` (2) in a row.
 * Each probe's timeout is RTT-adapted (rtt.ts: 4·srtt + 4·rttvar, `probeTimeoutMs` 500 floor) and, as
 * TCP backs off its RTO, doubled after each failed probe until one succeeds (so an agent that starts
 * on a 600 ms link, or whose link suddenly became that slow, still gets its first answer); a
 * healthy upstream is declared dead after `strikes()` failed probes in a row (1 on a LAN, 2 on a
 * link whose timeouts exceed the floors), at once on a refused or unreachable connection.
 * Detection on a LAN: a request into a dead link is answered otherwise within stall + probe timeout
 * (200 + 500 ms); an idle agent notices within quietMs + probe timeout.
 *
 * Health rules
 * - An unhealthy upstream becomes healthy after `healthyAfter` consecutive successful probes that
 *   started after its last failure (a probe already in flight when a failure is reported does not count).
 * - On turning unhealthy: every tracked AbortController of it is aborted with an E_UPSTREAM_UNAVAILABLE
 *   TetherError as reason, the idle sockets of its agents are destroyed (no reuse of dead keep-alive
 *   connections), and listeners hear { upstream, healthy: false, reason }. `track` on an upstream that
 *   is not healthy aborts at once.
 *
 * Read `u.agent` for every request: it changes on setTls. The pool never sends requests of its own
 * other than probes, and knows nothing of metrics, the cache or the store; wire those from onChange.
 */
import type { Logger } from '../../shared/log.ts';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import { probeOnce, probeReadyz, type ProbeMeter, type ProbeOutcome } from './health.ts';
import { MAX_PROBE_TIMEOUT_MS, createRttEstimate, type RttEstimate } from './rtt.ts';

/** A failed probe doubles the next one's timeout, up to this factor (and MAX_PROBE_TIMEOUT_MS). */
const MAX_TIMEOUT_BACKOFF = 32;
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
  /** Smoothed round-trip time (ms) of probes and request answers; undefined before the first. */
  readonly rttMs?: number;
  /** Probes sent since the pool started. */
  readonly probes: number;
}

/** One request to an upstream, as the pool sees it. */
export interface Exchange {
  /** The answer started (status and headers arrived). */
  answered(): void;
  /** Bytes arrived (a watch event, a body chunk). */
  heard(): void;
  /** The request ended, however. */
  end(): void;
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
  exchange(u: Upstream, kind: 'request' | 'watch'): Exchange;
  heard(u: Upstream): void;
  reportFailure(u: Upstream, err: unknown): void;
  track(u: Upstream, abort: AbortController): () => void;
  readonly online: boolean;
  onChange(listener: (ev: UpstreamChange) => void): () => void;
  all(): readonly Upstream[];
  setTls(tls: UpstreamTls): void;
  recheck(u: Upstream): void;
  close(): void;
}

export interface UpstreamPoolOptions {
  servers: readonly string[];
  lbMode: LbMode;
  tls: UpstreamTls;
  /** Floor of the adaptive probe timeout. Default 500. */
  probeTimeoutMs?: number;
  /** Floor of the adaptive stall time of an unanswered request. Default 200. */
  stallMs?: number;
  /** A healthy upstream not heard from for this long is probed. Default 30000. */
  quietMs?: number;
  /** First retry of an unhealthy upstream, and the pace of recovery probes. Default 250. */
  retryMinMs?: number;
  /** The retry backoff of an unhealthy upstream stops growing here. Default 5000. */
  retryMaxMs?: number;
  /** Consecutive successful probes for an unhealthy upstream to be healthy again. Default 2. */
  healthyAfter?: number;
  log: Logger;
  now?: () => number;
  /** Where the default probe's bytes are counted (kind `probe`). */
  meter?: ProbeMeter;
  /**
   * Makes an upstream's agent (at start and on setTls). Default tls.ts createAgent; the via-hub
   * mode gives the hub agent (via-hub.ts), whose connections are api streams of the tunnel.
   */
  createAgent?: (url: URL, tls: UpstreamTls) => UpstreamAgent;
  /** Replaces the default `GET /readyz` probe (tests). Must settle; it is aborted on timeout. */
  probe?: (u: Upstream, signal: AbortSignal) => Promise<void>;
}

/** Errors that say the server is not there, whatever the link's latency. */
const DEFINITIVE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN']);

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && DEFINITIVE.has(code)) return code;
  }
  return undefined;
}

interface Pending {
  startedAt: number;
  waitMs: number;
  timer?: ReturnType<typeof setTimeout>;
}

class Member implements Upstream {
  healthy = false;
  lastError: string | undefined;
  probed = false;
  decided = false;
  streak = 0;
  strikes = 0;
  failedAt = -Infinity;
  lastHeard = performance.now();
  probing: AbortController | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  retryMs = 0;
  /** Multiplies the probe timeout after each failed probe (as TCP backs off its RTO); 1 after a success. */
  timeoutBackoff = 1;
  probes = 0;
  retired: UpstreamAgent[] = [];
  readonly tracked = new Set<AbortController>();
  readonly pending = new Set<Pending>();
  constructor(
    readonly url: URL,
    public agent: UpstreamAgent,
    public lastChange: number,
    readonly rtt: RttEstimate,
  ) {}
  get rttMs() {
    return this.rtt.srttMs;
  }
}

export function createUpstreamPool(opts: UpstreamPoolOptions): UpstreamPool {
  const { log, lbMode } = opts;
  const now = opts.now ?? Date.now;
  const floors = { probeTimeoutMs: positive('probeTimeoutMs', opts.probeTimeoutMs ?? 500), stallMs: positive('stallMs', opts.stallMs ?? 200) };
  const quietMs = positive('quietMs', opts.quietMs ?? 30_000);
  const retryMinMs = positive('retryMinMs', opts.retryMinMs ?? 250);
  const retryMaxMs = Math.max(retryMinMs, positive('retryMaxMs', opts.retryMaxMs ?? 5000));
  const healthyAfter = Math.floor(positive('healthyAfter', opts.healthyAfter ?? 2));
  const probe = opts.probe ?? ((u: Upstream, signal: AbortSignal) => probeReadyz(u.url, u.agent, signal, opts.meter));
  if (opts.servers.length === 0) throw new TetherError(ErrorCode.BadConfig, 'upstream pool: no servers');
  checkTls(opts.tls);
  const agentFor = opts.createAgent ?? createAgent;
  const members = opts.servers
    .map(parseServer)
    .map((url) => new Member(url, agentFor(url, opts.tls), now(), createRttEstimate(floors)));
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

  const later = (fn: () => void, ms: number) => {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref?.();
    return t;
  };

  /** The next probe of m when nothing else asks for one: quiet while healthy, backoff while not. */
  const schedule = (m: Member) => {
    clearTimeout(m.timer);
    m.timer = undefined;
    if (closed || m.probing) return;
    if (!m.healthy) {
      m.timer = later(() => startProbe(m, 'retry'), m.retryMs);
      return;
    }
    m.timer = later(() => {
      if (performance.now() - m.lastHeard >= quietMs - 1) startProbe(m, 'quiet');
      else schedule(m);
    }, m.lastHeard + quietMs - performance.now());
  };

  const markFailed = (m: Member, reason: string) => {
    m.streak = 0;
    m.strikes = 0;
    m.failedAt = performance.now();
    m.lastError = reason;
    if (m.decided && !m.healthy) return;
    m.decided = true;
    m.healthy = false;
    m.retryMs = retryMinMs;
    m.lastChange = now();
    log.warn('upstream unhealthy', { server: m.url.href, reason });
    const err = unavailable(m, reason);
    for (const abort of [...m.tracked]) abort.abort(err);
    m.tracked.clear();
    for (const p of m.pending) clearTimeout(p.timer);
    m.pending.clear();
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

  const onOutcome = (m: Member, { result, startedAt, durationMs }: ProbeOutcome) => {
    if (result.ok) {
      // Karn's rule, as TCP drops the round trips of retransmitted segments: the first success after
      // a failure may have waited out the cut itself (sent into the dead link, answered after it
      // healed), so its duration says nothing about the link; samples resume with the next probe.
      // Until a sample is taken the timeout keeps its backoff (the link may really be that slow).
      if (startedAt >= m.failedAt && (m.healthy || !m.decided || m.streak > 0)) {
        m.rtt.sample(durationMs);
        m.timeoutBackoff = 1;
      }
      m.lastHeard = performance.now();
      m.strikes = 0;
      markSucceeded(m, startedAt);
      if (!m.healthy) m.retryMs = retryMinMs;
    } else {
      m.timeoutBackoff = Math.min(MAX_TIMEOUT_BACKOFF, m.timeoutBackoff * 2);
      if (m.healthy && ++m.strikes < m.rtt.strikes()) {
        log.info('upstream probe failed; probing again on a fresh connection before deciding', { server: m.url.href, error: messageOf(result.error) });
        dropIdleSockets(m.agent);
        return 'again';
      }
      const wasDown = m.decided && !m.healthy;
      markFailed(m, prefixed('probe', result.error));
      if (wasDown) m.retryMs = Math.min(retryMaxMs, m.retryMs * 2);
    }
    if (!m.probed) {
      m.probed = true;
      if (members.every((x) => x.probed)) resolveReady();
    }
    return 'done';
  };

  function startProbe(m: Member, why: string): void {
    if (closed || m.probing) return;
    clearTimeout(m.timer);
    m.timer = undefined;
    const abort = new AbortController();
    m.probing = abort;
    m.probes++;
    if (why !== 'start' && why !== 'retry') log.debug('upstream probe', { server: m.url.href, why });
    const timeoutMs = Math.min(MAX_PROBE_TIMEOUT_MS, m.rtt.probeTimeoutMs() * m.timeoutBackoff);
    void probeOnce(probe, m as Upstream, timeoutMs, abort.signal).then((outcome) => {
      if (m.probing === abort) m.probing = undefined;
      if (closed) return;
      const next = onOutcome(m, outcome);
      if (next === 'again') startProbe(m, why);
      else schedule(m);
    });
  }

  /** A pending request's stall check: probe when nothing was heard from m for waitMs since it was sent. */
  const armStall = (m: Member, p: Pending, delay: number) => {
    p.timer = later(() => {
      p.timer = undefined;
      if (!m.pending.has(p) || closed) return;
      const silent = performance.now() - Math.max(p.startedAt, m.lastHeard);
      if (silent < p.waitMs - 1) return armStall(m, p, p.waitMs - silent);
      startProbe(m, 'stall');
      p.startedAt = performance.now();
      p.waitMs *= 2;
      armStall(m, p, p.waitMs);
    }, delay);
  };

  for (const m of members) startProbe(m, 'start');

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
    exchange(u, kind) {
      const m = member(u, 'exchange');
      const startedAt = performance.now();
      const p: Pending = { startedAt, waitMs: m.rtt.stallMs() };
      const healthyAtStart = m.healthy;
      let answered = false;
      let ended = false;
      if (!closed && m.healthy) {
        m.pending.add(p);
        armStall(m, p, p.waitMs);
      }
      const settle = () => {
        clearTimeout(p.timer);
        m.pending.delete(p);
      };
      return {
        answered() {
          if (answered || ended) return;
          answered = true;
          m.lastHeard = performance.now();
          // Only a request sent on a healthy link and answered without a failure in between is a
          // round trip (one in flight across a cut and its heal measures the cut).
          if (kind === 'request' && healthyAtStart && startedAt >= m.failedAt) m.rtt.sample(m.lastHeard - startedAt);
          settle();
        },
        heard() {
          m.lastHeard = performance.now();
        },
        end() {
          ended = true;
          settle();
        },
      };
    },
    heard(u) {
      member(u, 'heard').lastHeard = performance.now();
    },
    reportFailure(u, err) {
      const m = member(u, 'report failure');
      if (closed) return;
      const definitive = errorCode(err);
      if (definitive || !m.decided) {
        markFailed(m, prefixed('request', err));
        // Retry on the down backoff now, not when the quiet timer of a healthy upstream would fire.
        return schedule(m);
      }
      if (!m.healthy) return;
      log.info('upstream request failed; probing before deciding', { server: m.url.href, error: messageOf(err) });
      m.lastError = prefixed('request', err);
      startProbe(m, 'failure');
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
        m.agent = agentFor(m.url, material);
        retireAgent(old);
        m.retired = [...m.retired.filter(agentBusy), old];
      }
      log.info('upstream tls replaced', { servers: members.length });
    },
    recheck(u) {
      const m = member(u, 'recheck');
      if (closed || m.healthy || m.probing) return;
      m.retryMs = retryMinMs;
      startProbe(m, 'recheck');
    },
    close() {
      if (closed) return;
      closed = true;
      for (const m of members) {
        clearTimeout(m.timer);
        m.probing?.abort(new TetherError(ErrorCode.UpstreamUnavailable, 'probe: pool closed'));
        for (const p of m.pending) clearTimeout(p.timer);
        m.pending.clear();
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
