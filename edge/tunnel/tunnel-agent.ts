/**
 * The tunnel agent: keeps one session to a hub replica and serves the streams the hub opens.
 *
 * Loop: dial the hub URLs in turn (wss, the node's client certificate or a bearer token), send
 * HELLO (node name, addresses), serve streams until the session ends, then go to the next URL.
 * After a session that ended (the replica stopped or died), the next URL is tried at once, so a
 * failover takes one dial; failed dials back off with jitter (backoff.ts) until one works. A hub
 * that refuses the node (bad credentials, another node's name, no such Node) is logged as an
 * error with the hub's reason and retried with backoff, as the cause may be fixed meanwhile.
 *
 * Streams: `destinations.ts` decides what the hub may reach; refusals are logged and counted.
 *
 * Api streams (`upstreamViaHub`, edge/upstream/via-hub.ts): `openApiStream()` opens a compressed
 * stream `kube-apiserver:0` on the current session, which the hub forwards to kube-apiserver as the
 * node. Right after a session that worked ended or was drained, while the agent dials the next
 * replica at once, it waits for that dial (up to `moveWaitMs`, default 3 s) and opens on the new
 * session; otherwise, with no session (before the first, during backoff) it rejects at once with
 * E_TUNNEL_CLOSED: it never waits for a session that may not come. `onSession` tells the
 * upstream side when the current session is up, when the hub asked it to drain (its streams still
 * work; new ones go to the next session) and when it ended (its streams are dead).
 *
 * Metrics (when a registry is given): tether_tunnel_connected, tether_tunnel_reconnects_total,
 * tether_tunnel_streams_open, tether_tunnel_streams_total{result},
 * tether_tunnel_api_streams_total{result}, and the api streams' bytes before and after compression,
 * tether_tunnel_api_bytes_total{direction="in"|"out",stage="raw"|"wire"} (every session since start).
 */
import type { Duplex } from 'node:stream';
import { ErrorCode, TetherError, isTetherError, messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { Registry } from '../../shared/metrics.ts';
import { type TunnelSession, createTunnelSession } from '../../shared/tunnel/session.ts';
import { dialTunnel, isHubRefusal } from '../../shared/tunnel/ws-transport.ts';
import { buildInfo } from '../../shared/version.ts';
import { localAddresses } from './addresses.ts';
import { createBackoff } from './backoff.ts';
import { createDestinationPolicy, dialTcp } from './destinations.ts';

export interface TunnelAgentOptions {
  /** wss:// URLs of hub replicas (or of one Service in front of them); "/tunnel" is added to a URL without a path. */
  hubUrls: string[];
  nodeName: string;
  /** Announced in HELLO and accepted as destinations (default: this host's addresses). */
  addresses?: string[];
  /** Ports the hub may open besides the kubelet's 10250 (e.g. 9100 for node-exporter). */
  ports?: number[];
  /**
   * CA of the hub's serving certificate, and the node's client certificate and key; read at every
   * dial, so a rotated certificate is used from the next connection on.
   */
  tls: () => { ca?: Buffer; cert?: Buffer; key?: Buffer };
  /** A bearer token to authenticate with instead of the client certificate (read at every dial). */
  token?: () => string | undefined;
  log: Logger;
  registry?: Registry;
  backoff?: { initialMs?: number; maxMs?: number };
  random?: () => number;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  /** How a stream's destination is dialed (default TCP). */
  dial?: (host: string, port: number) => Promise<Duplex>;
  /** How long openApiStream waits for the next session while moving to another replica. Default 3000 ms. */
  moveWaitMs?: number;
}

/** Bytes of the api streams, every session since start: raw = HTTP as the proxy wrote and read it, wire = compressed (ZDATA payloads). */
export interface ApiStreamBytes {
  rawIn: number;
  rawOut: number;
  wireIn: number;
  wireOut: number;
}

export interface TunnelAgentStatus {
  connected: boolean;
  hub?: string;
  since?: string;
  reconnects: number;
  streams: number;
  lastError?: string;
  /** The compression the current session negotiated for api streams. */
  compression?: 'deflate' | 'none';
  /** Api streams' bytes before and after compression (zero unless the upstream goes through the hub). */
  api: ApiStreamBytes;
}

/** The current session's life, as the upstream through the hub needs it. */
export interface TunnelSessionEvent {
  state: 'up' | 'draining' | 'down';
  hub: string;
  reason?: string;
}

export interface TunnelAgent {
  readonly connected: boolean;
  status(): TunnelAgentStatus;
  /**
   * An api stream on the current session (rejects E_TUNNEL_CLOSED when there is none), compressed
   * both ways unless `compress` says otherwise: `'answers'` compresses only what the hub sends back
   * (requests with a pod's token stay plain), `false` nothing (Secrets, tokens, upgrades).
   */
  openApiStream(opts?: { timeoutMs?: number; compress?: boolean | 'answers' }): Promise<Duplex>;
  onSession(listener: (ev: TunnelSessionEvent) => void): () => void;
  apiBytes(): ApiStreamBytes;
  close(): Promise<void>;
}

/** The api stream's name on the wire (frames.ts: OPEN {kube-apiserver, 0, compress}). */
export const API_STREAM_HOST = 'kube-apiserver';

/** Opens an api stream on `session`, or rejects E_TUNNEL_CLOSED when it is missing or not usable. */
export function openApiStreamOn(session: TunnelSession | undefined, timeoutMs = 10_000, compress: boolean | 'answers' = true): Promise<Duplex> {
  if (!session || (session.state !== 'open' && session.state !== 'handshake')) {
    const why = session ? `the session is ${session.state}` : 'no session';
    return Promise.reject(new TetherError(ErrorCode.TunnelClosed, `open api stream: no tunnel session to the hub (${why})`));
  }
  return session.open(API_STREAM_HOST, 0, { compress, timeoutMs });
}

const withPath = (u: string) => {
  const url = new URL(u);
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/tunnel';
  return url.href;
};

export function startTunnelAgent(opts: TunnelAgentOptions): TunnelAgent {
  const { log } = opts;
  const urls = opts.hubUrls.map(withPath);
  if (urls.length === 0) throw new TetherError(ErrorCode.BadConfig, 'start tunnel agent: no hub URL');
  const addresses = () => opts.addresses ?? localAddresses();
  const policy = createDestinationPolicy({ nodeName: opts.nodeName, addresses, ports: opts.ports ?? [] });
  const dial = opts.dial ?? dialTcp;
  const backoff = createBackoff({ ...opts.backoff, random: opts.random });
  const stopping = new AbortController();

  let current: { session: TunnelSession; url: string; since: Date } | undefined;
  const draining = new Set<TunnelSession>();
  let reconnects = 0;
  let established = 0;
  let lastError: string | undefined;
  const results = opts.registry?.counter('tether_tunnel_streams_total', 'Streams the hub opened, by result (ok, refused, failed)');
  const reconnectCounter = opts.registry?.counter('tether_tunnel_reconnects_total', 'Tunnel sessions established after the first');
  const isUp = () => current?.session.state === 'open';
  const openStreams = () => [current?.session, ...draining].reduce((n, s) => n + (s?.stats().streams ?? 0), 0);
  opts.registry?.gauge('tether_tunnel_connected', 'Whether the tunnel to the hub is up', () => [{ value: isUp() ? 1 : 0 }]);
  opts.registry?.gauge('tether_tunnel_streams_open', 'Streams open through the tunnel', () => [{ value: openStreams() }]);
  const apiResults = opts.registry?.counter('tether_tunnel_api_streams_total', 'Api streams this agent opened to the hub (upstream via the hub), by result (ok, failed)');
  /** Api bytes of sessions that ended, and the sessions not yet folded in (moved in one step, so the sum never goes down). */
  const apiDone: ApiStreamBytes = { rawIn: 0, rawOut: 0, wireIn: 0, wireOut: 0 };
  const unfolded = new Set<TunnelSession>();
  const apiBytes = (): ApiStreamBytes => {
    const sum = { ...apiDone };
    for (const s of unfolded) {
      const st = s.stats();
      sum.rawIn += st.apiRawIn;
      sum.rawOut += st.apiRawOut;
      sum.wireIn += st.apiWireIn;
      sum.wireOut += st.apiWireOut;
    }
    return sum;
  };
  opts.registry?.counterFrom('tether_tunnel_api_bytes_total', 'Bytes of the api streams (the upstream through the hub), by direction and stage: raw = HTTP before compression, wire = after', () => {
    const b = apiBytes();
    return [
      { labels: { direction: 'in', stage: 'raw' }, value: b.rawIn },
      { labels: { direction: 'out', stage: 'raw' }, value: b.rawOut },
      { labels: { direction: 'in', stage: 'wire' }, value: b.wireIn },
      { labels: { direction: 'out', stage: 'wire' }, value: b.wireOut },
    ];
  });
  const moveWaitMs = opts.moveWaitMs ?? 3000;
  /** Until when the agent is moving to another replica (dialing at once after a session that worked). */
  let movingUntil = 0;
  const currentWaiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...currentWaiters]) w();
  };
  /** Resolves when a session is current, the move ended (a failed dial) or `ms` passed. */
  const waitForCurrent = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        currentWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      currentWaiters.add(done);
    });
  const sessionListeners = new Set<(ev: TunnelSessionEvent) => void>();
  const tell = (ev: TunnelSessionEvent) => {
    for (const l of [...sessionListeners]) {
      try {
        l(ev);
      } catch (e) {
        log.error('tunnel session listener failed', { error: messageOf(e) });
      }
    }
  };

  const onOpen = async (host: string, port: number): Promise<Duplex> => {
    let target: { host: string; port: number };
    try {
      target = policy.resolve(host, port);
    } catch (e) {
      log.warn('tunnel stream refused', { host, port, reason: messageOf(e) });
      results?.inc({ result: 'refused' });
      throw e;
    }
    try {
      const stream = await dial(target.host, target.port);
      results?.inc({ result: 'ok' });
      return stream;
    } catch (e) {
      log.warn('tunnel stream dial failed', { host, port, reason: messageOf(e) });
      results?.inc({ result: 'failed' });
      throw e;
    }
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stopping.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      stopping.signal.addEventListener('abort', done, { once: true });
    });
  /** One session: resolves when it ended or the hub asked it to drain (it then ends on its own). */
  const serve = async (url: string): Promise<boolean> => {
    const token = opts.token?.();
    const transport = await dialTunnel(url, {
      ...opts.tls(),
      headers: token ? { Authorization: `Bearer ${token}` } : undefined,
      signal: stopping.signal,
      handshakeTimeoutMs: 10_000,
    });
    let drained!: (reason: string) => void;
    const drainAsked = new Promise<string>((r) => (drained = r));
    const session = createTunnelSession({
      transport,
      role: 'agent',
      log: log.child({ hub: url }),
      hello: { node: opts.nodeName, addresses: addresses().slice(0, 64), version: buildInfo.version },
      onOpen,
      onDrain: (reason) => drained(reason),
      heartbeatIntervalMs: opts.heartbeatIntervalMs,
      heartbeatTimeoutMs: opts.heartbeatTimeoutMs,
    });
    const since = new Date();
    current = { session, url, since };
    movingUntil = 0;
    wake();
    unfolded.add(session);
    void session.closed.then(() => {
      unfolded.delete(session);
      const st = session.stats();
      apiDone.rawIn += st.apiRawIn;
      apiDone.rawOut += st.apiRawOut;
      apiDone.wireIn += st.apiWireIn;
      apiDone.wireOut += st.apiWireOut;
    });
    if (stopping.signal.aborted) session.close('agent stopping');
    let welcomed = false;
    session.ready.then(
      () => {
        welcomed = true;
        if (established++ > 0) {
          reconnects++;
          reconnectCounter?.inc();
        }
        log.info('tunnel connected', { hub: url, node: opts.nodeName, session: session.id, compression: session.compression });
        if (current?.session === session) tell({ state: 'up', hub: url });
      },
      () => {},
    );
    const outcome = await Promise.race([session.closed.then((c) => ({ closed: c })), drainAsked.then((reason) => ({ drain: reason }))]);
    // A session that was welcomed and lasted a while counts as working; one that flaps backs off. So
    // does one that was replaced: the loop only sees that for its current session, so another process
    // with this node's credential took the tunnel over, and fighting it back at once would flap both.
    const worked =
      'drain' in outcome || (welcomed && outcome.closed.code !== 'refused' && outcome.closed.code !== 'replaced' && Date.now() - since.getTime() >= 1000);
    if (worked && !stopping.signal.aborted) movingUntil = Date.now() + moveWaitMs; // the loop dials the next replica at once
    current = undefined;
    if ('drain' in outcome) {
      log.info('the hub is draining the tunnel; reconnecting elsewhere', { hub: url, reason: outcome.drain });
      draining.add(session);
      void session.closed.then(() => draining.delete(session));
      tell({ state: 'draining', hub: url, reason: outcome.drain });
      return true;
    }
    const ended = outcome.closed;
    tell({ state: 'down', hub: url, reason: ended.reason });
    if (ended.code === 'refused') {
      lastError = `hub ${url} refused the tunnel: ${ended.reason}`;
      log.error('the hub refused the tunnel', { hub: url, reason: ended.reason });
    } else if (!stopping.signal.aborted) {
      lastError = `tunnel to ${url} closed: ${ended.reason}`;
      log.warn('tunnel closed; reconnecting', { hub: url, reason: ended.reason, by: ended.by });
    }
    return worked;
  };

  const loop = async () => {
    for (let i = 0; !stopping.signal.aborted; i++) {
      const url = urls[i % urls.length]!;
      let worked = false;
      try {
        worked = await serve(url);
      } catch (e) {
        current = undefined;
        movingUntil = 0;
        wake();
        if (stopping.signal.aborted) break;
        lastError = `dial ${url}: ${messageOf(e)}`;
        // A 4xx at the upgrade (bad credentials, not a node) is the hub's answer, not a failure.
        const refused = isHubRefusal(e);
        (refused ? log.error : log.warn)(refused ? 'the hub refused the tunnel' : 'dial hub failed', { hub: url, reason: messageOf(e) });
      }
      if (stopping.signal.aborted) break;
      // A session that worked and ended: try the next replica at once; failures back off.
      if (worked) backoff.reset();
      else await sleep(backoff.next());
    }
  };

  const running = loop();

  return {
    get connected() {
      return isUp();
    },
    status: () => ({
      connected: isUp(),
      hub: current?.url,
      since: current?.since.toISOString(),
      reconnects,
      streams: openStreams(),
      lastError,
      ...(current && isUp() ? { compression: current.session.compression } : {}),
      api: apiBytes(),
    }),
    async openApiStream(o = {}) {
      if (!current && Date.now() < movingUntil && !stopping.signal.aborted) await waitForCurrent(movingUntil - Date.now());
      return openApiStreamOn(current?.session, o.timeoutMs, o.compress ?? true).then(
        (d) => {
          apiResults?.inc({ result: 'ok' });
          return d;
        },
        (e) => {
          apiResults?.inc({ result: 'failed' });
          throw e;
        },
      );
    },
    onSession(listener) {
      sessionListeners.add(listener);
      return () => void sessionListeners.delete(listener);
    },
    apiBytes,
    async close() {
      stopping.abort();
      movingUntil = 0;
      wake();
      current?.session.close('agent stopping');
      for (const s of draining) s.close('agent stopping');
      await running;
      await Promise.all([...draining].map((s) => s.closed));
    },
  };
}
