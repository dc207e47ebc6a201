/**
 * The composition root of `tether-edge run`: opens the store, builds the upstream pool, the cache
 * and the proxy, serves the admin endpoints, and reacts to the link going down and coming back
 * (on reconnect, after a jittered delay: replay the outbox, end offline watches so clients
 * re-watch upstream, refresh the discovery documents). Parts meet only here.
 *
 * With `upstreamViaHub` the tunnel agent starts first and the pool's one upstream is
 * VIA_HUB_SERVER, whose agent opens api streams on the tunnel session (edge/upstream/via-hub.ts):
 * node and bearer requests, probes, upgrades (exec, port-forward) and certificate renewal all go
 * through tether-hub; the session's end marks the upstream down at once (followSessions).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { openDb } from '#store-driver';
import { createAdminApp } from '../shared/admin.ts';
import { ErrorCode, TetherError, messageOf } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { Registry, registerProcessMetrics } from '../shared/metrics.ts';
import { type Listening, serveFetch } from '../shared/serve.ts';
import { buildInfo } from '../shared/version.ts';
import { createCache, createEventBus } from './cache/index.ts';
import { recoverCertFiles } from './certs/cert-files.ts';
import { startCertRotation } from './certs/rotation.ts';
import { type TunnelAgent, startTunnelAgent } from './tunnel/agent.ts';
import { createTopology } from './topology.ts';
import { replayOutbox } from './cache/replay.ts';
import type { EdgeConfig } from './config.ts';
import { createOfflineTokens } from './auth/offline-tokens.ts';
import { INSECURE_PLAIN_HTTP_WARNING, localClientAuth } from './proxy/local-auth.ts';
import { callUpstream, watchUpstream } from './proxy/client.ts';
import type { ExchangeKind, ForwardExchange } from './proxy/forward.ts';
import { TRAFFIC_DIRECTIONS, TRAFFIC_KINDS, createTrafficMeter, type TrafficFigures } from './upstream/traffic.ts';
import { type ProxyCache, type ProxyServer, type Target, createProxyServer } from './proxy/server.ts';
import { type Store, createStore } from './store/index.ts';
import { type Upstream, type UpstreamPool, createUpstreamPool } from './upstream/pool.ts';
import { POOLING } from './upstream/tls.ts';
import { ApiStreamSocket, VIA_HUB_SERVER, createHubAgent, followSessions } from './upstream/via-hub.ts';
import { prefetchDiscovery } from './discovery.ts';
import { type AgentStatus, collectStatus } from './status.ts';
import { type AgentUpgrader, startAgentUpgrader } from './upgrade/agent-upgrader.ts';
import { checkHealth } from './upgrade/health.ts';
import { type HubFetcher, hubFetch } from './upgrade/hub-fetch.ts';

export interface RunningAgent {
  proxy: ProxyServer;
  admin: Listening;
  status(): AgentStatus;
  close(): Promise<void>;
}

export interface AgentOptions {
  config: EdgeConfig;
  nodeName: string;
  log: Logger;
  /** Upper bound of the random delay before reconnect work starts (spreads many nodes). */
  reconnectJitterMs?: number;
  bookmarkIntervalMs?: number;
  random?: () => number;
  /**
   * Over-the-air upgrades (edge/upgrade/), run when `config.upgrade.enabled` and a node name is
   * known; `false` turns them off whatever the configuration says (in-process tests).
   */
  upgrade?: false | {
    /** Stop the agent cleanly and exit 0, so that systemd starts the binary now installed (`tether-edge run` does). */
    restart(reason: string): void;
    /** How long without a recorded copy of the Node before watching it directly (target.ts). */
    fallbackAfterMs?: number;
  };
}

function readPem(path: string | undefined, what: string): Buffer | undefined {
  if (!path) return undefined;
  try {
    return readFileSync(path);
  } catch (e) {
    throw new TetherError(ErrorCode.BadConfig, `read ${what} ${path}: ${messageOf(e)}`, { cause: e });
  }
}

/** Opens the store; a store that cannot be opened leaves the agent running as a plain proxy. */
function openStore(dir: string, minFreeBytes: number, log: Logger): { store?: Store; problem?: string } {
  try {
    return { store: createStore(openDb({ path: join(dir, 'tether.db'), minFreeBytes })) };
  } catch (e) {
    log.error('the snapshot store cannot be used; serving online pass-through only', { error: e });
    return { problem: messageOf(e) };
  }
}

export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  const { config, log } = opts;
  const viaHub = config.upstreamViaHub;
  const hubUrls = [...config.hubUrls, ...(config.hubUrl && !config.hubUrls.includes(config.hubUrl) ? [config.hubUrl] : [])];
  if (viaHub && hubUrls.length === 0) {
    throw new TetherError(ErrorCode.BadConfig, 'invalid configuration: upstreamViaHub: needs hubUrls (or hubUrl), the tunnel the upstream requests travel on');
  }
  if (!viaHub && config.servers.length === 0) throw new TetherError(ErrorCode.BadConfig, 'invalid configuration: servers: at least one kube-apiserver URL is needed');
  const servers = viaHub ? [VIA_HUB_SERVER] : config.servers;
  // A rotation interrupted between writing the new key and certificate is finished (or undone) first.
  if (config.certFile && config.keyFile) recoverCertFiles({ certFile: config.certFile, keyFile: config.keyFile }, log.child({ part: 'certs' }));
  const tls = { ca: readPem(config.caFile, 'CA file'), cert: readPem(config.certFile, 'certificate'), key: readPem(config.keyFile, 'key') };

  const opened = openStore(config.dataDir, config.storeMinFreeBytes, log);
  const store = opened.store;
  let storeProblem: string | null = opened.problem ?? null;
  /** What /readyz and status report of the store: an open or write failure, or too little free space. */
  const storeCheck = () => storeProblem ?? store?.db.health.problem() ?? null;
  const registry = new Registry();
  registerProcessMetrics(registry, buildInfo);
  const requests = registry.counter('tether_proxy_requests_total', 'Requests answered by the proxy, by verb, code and source');
  const decodeErrors = registry.counter('tether_upstream_decode_errors_total', 'Upstream bodies that could not be decoded for the cache');
  const droppedEvents = registry.counter('tether_outbox_events_dropped_total', 'Events dropped from the outbox to stay within its bound');
  const transitions = registry.counter('tether_upstream_transitions_total', 'Upstream health changes');
  const bus = createEventBus();
  // Set once the proxy serves (its health is part of a trial's verdict); the cache tells it of recorded Nodes.
  let upgrader: AgentUpgrader | undefined;
  // An upstream answering what cannot be decoded is reported for a while after the last occurrence.
  let garbage: { at: number; what: string; count: number } | undefined;
  const GARBAGE_REPORT_MS = 5 * 60_000;
  const garbageProblem = () =>
    garbage && Date.now() - garbage.at < GARBAGE_REPORT_MS
      ? `${garbage.count} upstream answer(s) could not be decoded, last for ${garbage.what} at ${new Date(garbage.at).toISOString()}; those were passed through but not cached`
      : null;

  // What the link costs: bytes by kind, in total and over the last hour and day.
  const traffic = createTrafficMeter();
  const series = (f: TrafficFigures) =>
    TRAFFIC_DIRECTIONS.flatMap((direction) => TRAFFIC_KINDS.map((kind) => ({ labels: { direction, kind }, value: f[direction][kind] })));
  registry.counterFrom('tether_upstream_bytes_total', 'Bytes the agent sent to and received from the apiservers, by kind (HTTP level: heads and bodies as on the wire, without TLS and TCP/IP overhead)', () => series(traffic.total()));
  registry.gauge('tether_upstream_bytes_last_hour', 'Bytes to and from the apiservers in the last hour, by kind', () => series(traffic.last(3_600_000)));
  registry.gauge('tether_upstream_bytes_last_day', 'Bytes to and from the apiservers in the last 24 hours, by kind', () => series(traffic.last(86_400_000)));
  registry.gauge('tether_upstream_rtt_seconds', 'Smoothed round-trip time to each apiserver, from probes and answers', () =>
    pool.all().filter((u) => u.rttMs !== undefined).map((u) => ({ labels: { server: u.url.host }, value: u.rttMs! / 1000 })),
  );
  registry.counterFrom('tether_upstream_probes_total', 'Health probes sent to each apiserver', () => pool.all().map((u) => ({ labels: { server: u.url.host }, value: u.probes })));

  // The tunnel: dial out to the hub so it can reach this node's kubelet (logs, exec, port-forward,
  // metrics), and, via the hub, carry the upstream requests. Started before the pool, whose first
  // probe may go through it.
  const hubCa = readPem(config.hubCaFile, 'hub CA file');
  const tunnel: TunnelAgent | undefined = hubUrls.length
    ? startTunnelAgent({
        hubUrls,
        nodeName: opts.nodeName,
        addresses: config.tunnelAddresses.length ? config.tunnelAddresses : undefined,
        ports: config.tunnelPorts,
        tls: () => ({ ca: hubCa ?? tls.ca, cert: tls.cert, key: tls.key }), // read per dial: rotated certificates apply
        log: log.child({ part: 'tunnel' }),
        registry,
      })
    : undefined;
  const openApiStream = (o?: { compress?: boolean | 'answers' }) => tunnel!.openApiStream(o);
  if (viaHub) log.info('upstream via the hub: apiserver requests travel as api streams of the tunnel', { hubs: hubUrls });

  const pool: UpstreamPool = createUpstreamPool({
    servers,
    lbMode: config.lbMode,
    tls,
    log: log.child({ part: 'upstream' }),
    meter: traffic,
    ...(viaHub ? { createAgent: () => createHubAgent(openApiStream) } : {}),
  });
  const unfollow = viaHub && tunnel ? followSessions(pool, tunnel) : undefined;
  const httpsServers = servers.filter((s) => s.startsWith('https:'));
  const rotation =
    config.rotateCertificates && config.caFile && config.certFile && config.keyFile && (httpsServers.length || viaHub)
      ? startCertRotation({
          nodeName: opts.nodeName,
          // The healthy upstream first; all of them when none is (an expired certificate fails every probe).
          servers: viaHub
            ? [VIA_HUB_SERVER]
            : () => {
                const u = pool.pick();
                return u ? [u.url.href, ...httpsServers.filter((s) => s !== u.url.href)] : httpsServers;
              },
          // Through the hub, CSRs go on the upstream's api streams (the hub forwards them as the node).
          ...(viaHub ? { agent: () => pool.all()[0]!.agent as HttpAgent } : {}),
          caFile: config.caFile,
          certFile: config.certFile,
          keyFile: config.keyFile,
          bootstrapTokenFile: config.bootstrapTokenFile ?? join(dirname(config.certFile), 'bootstrap-token'),
          log: log.child({ part: 'certs' }),
          onRotated: (m) => {
            // New connections use the new certificate; requests in flight finish on the old one.
            tls.cert = m.cert;
            tls.key = m.key;
            pool.setTls(m);
          },
        })
      : undefined;
  const bearerAgents = new Map<string, HttpAgent>();
  // Via the hub: answers that carry credentials (Secrets, tokens) and upgrades go on api streams of
  // their own, never compressed (forward.ts carriesCredentials).
  const sensitiveViaHub = viaHub ? createHubAgent(() => openApiStream({ compress: false })) : undefined;
  const targets = new Map<Upstream, Target>();
  const targetOf = (u: Upstream): Target => {
    let t = targets.get(u);
    if (!t) {
      const href = u.url.href;
      let bearer = bearerAgents.get(href);
      // Through the hub, bearer requests go on api streams too (the hub lends the node's identity only
      // to requests without `Authorization: Bearer`, and passes the others on as they are), on streams
      // whose requests stay plain: a pod's token must never share a compression context with bytes
      // another local client chose (CRIME); their answers (a kube-proxy's watch events) compress.
      // Answers that carry Secrets or tokens take streams with no compression at all (below).
      if (!bearer) {
        bearer = viaHub
          ? createHubAgent(() => openApiStream({ compress: 'answers' }))
          : u.url.protocol === 'https:'
            ? new HttpsAgent({ ...POOLING, ca: tls.ca })
            : new HttpAgent(POOLING);
        bearerAgents.set(href, bearer);
      }
      t = {
        url: u.url,
        get agent() {
          return u.agent;
        },
        get bearerAgent() {
          return bearer;
        },
        ...(viaHub ? { sensitiveAgent: sensitiveViaHub, connect: () => new ApiStreamSocket(() => openApiStream({ compress: false })) } : {}),
        exchange: (kind: ExchangeKind): ForwardExchange => {
          const x = pool.exchange(u, kind === 'watch' ? 'watch' : 'request');
          return {
            sent: (n) => traffic.add('sent', kind, n),
            answered: (n) => {
              traffic.add('received', kind, n);
              x.answered();
            },
            received: (n) => {
              traffic.add('received', kind, n);
              x.heard();
            },
            broken: (e) => pool.reportFailure(u, e),
            end: () => x.end(),
          };
        },
        tlsOptions: (withIdentity) => (withIdentity ? { ca: tls.ca, cert: tls.cert, key: tls.key } : { ca: tls.ca }),
      };
      targets.set(u, t);
    }
    return t;
  };
  const upstreamOf = new Map<Target, Upstream>();
  for (const u of pool.all()) upstreamOf.set(targetOf(u), u);

  const offlineOnly = (): never => {
    throw new TetherError(ErrorCode.UpstreamUnavailable, `tether-edge: offline, and the snapshot store is unavailable (${storeProblem})`);
  };
  const topology = store
    ? createTopology({
        nodeName: opts.nodeName,
        store,
        log: log.child({ part: 'topology' }),
        filtered: registry.counter('tether_edge_topology_filtered_total', 'Answers of EndpointSlices and Endpoints run through the service-topology filter'),
        reemitted: registry.counter('tether_edge_topology_reemitted_total', 'Objects re-sent to open watches after a topology change'),
      })
    : undefined;
  topology?.refresh();
  const cache: ProxyCache = store
    ? createCache({
        store,
        bus,
        log: log.child({ part: 'cache' }),
        bookmarkIntervalMs: opts.bookmarkIntervalMs,
        onStoreError: (e) => (storeProblem = messageOf(e)),
        onStoreOk: () => (storeProblem = null),
        onDecodeError: (what) => {
          decodeErrors.inc({ what: what.split(' ')[0] ?? what });
          garbage = { at: Date.now(), what, count: (garbage?.count ?? 0) + 1 };
        },
        onEventsDropped: (n) => droppedEvents.inc({}, n),
        onRecorded: (gvr) => {
          topology?.recorded(gvr);
          upgrader?.recorded(gvr);
        },
      })
    : { tapFor: () => undefined, read: offlineOnly, watch: offlineOnly, write: offlineOnly, document: () => undefined };

  // Proofs of bearer tokens the apiserver accepted, kept in the store so they outlive a restart.
  const keepTokens = <T>(what: string, f: () => T, otherwise: T): T => {
    try {
      return f();
    } catch (e) {
      log.warn(`token proofs: ${what} failed`, { error: e });
      return otherwise;
    }
  };
  const offlineTokens = createOfflineTokens({
    initial: store ? keepTokens('load', () => (store.tokens.prune(Date.now()), store.tokens.load(Date.now())), []) : [],
    onChange: (r) => store && keepTokens('store', () => store.tokens.put(r), undefined),
    onEvict: (h) => store && keepTokens('delete', () => store.tokens.delete(h), undefined),
  });
  registry.gauge('tether_offline_tokens', 'Bearer tokens the apiserver accepted online, kept (by hash) to check them offline', () => [{ value: offlineTokens.size }]);
  const cachedSet = new Set(config.cacheComponents.map((c) => c.toLowerCase()));
  const proxy = await createProxyServer({
    listen: config.listen,
    logRequests: config.logLevel === 'debug',
    upstreams: {
      pick: () => {
        const u = pool.pick();
        return u ? targetOf(u) : undefined;
      },
      reportFailure: (t, e) => {
        const u = upstreamOf.get(t);
        if (u) pool.reportFailure(u, e);
      },
      track: (t, a) => {
        const u = upstreamOf.get(t);
        return u ? pool.track(u, a) : () => {};
      },
    },
    cache,
    isCachedComponent: (c) => cachedSet.has('*') || cachedSet.has(c),
    log: log.child({ part: 'proxy' }),
    requests,
    maxConcurrentLists: config.maxConcurrentLists,
    filter: topology,
    clientAuth: localClientAuth({
      insecurePlainHttp: config.insecurePlainHttp,
      caDir: config.localCaDir ?? join(config.dataDir, 'local-ca'),
      listen: config.listen,
      log: log.child({ part: 'proxy' }),
    }),
    cacheSecrets: config.cacheSecrets,
    offlineTokens,
    // A bound service-account token is good offline only while its pod (same uid) is in the store.
    podExists: (p) => store?.objects.get('v1/pods', p.namespace, p.name)?.metadata.uid === p.uid,
  });

  // Reconnect work, once per return of the link, after a jittered delay.
  const random = opts.random ?? Math.random;
  let reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  let replaying = false;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let pools: { stop(): void } | undefined;
  const userAgent = `tether-edge/${buildInfo.version}`;
  /** One watch of the agent's own on the upstream the pool picks (tracked: a cut aborts it). */
  const watchOnPool = (path: string, onLine: (line: string) => void) => {
    const u = pool.pick();
    if (!u) return { done: Promise.resolve({ status: 0 }), stop: () => {} };
    const abort = new AbortController();
    const untrack = pool.track(u, abort);
    const w = watchUpstream(targetOf(u), path, onLine, { signal: abort.signal, userAgent });
    void w.done.finally(untrack);
    return w;
  };
  /** NodePools (for the topology filter): one LIST, then a watch, while online; started again on each reconnect. */
  const followPools = (call: Parameters<typeof replayOutbox>[1]) => {
    pools?.stop();
    if (!topology) return;
    pools = topology.followPools({
      call,
      online: () => pool.online,
      watch: watchOnPool,
    });
  };
  const discoveryTags = new Map<string, string>();
  /** Replays the outbox; when the apiserver refused for now (5xx, 429), tries again later while online. */
  const replay = async (call: Parameters<typeof replayOutbox>[1]) => {
    if (replaying || !store) return;
    replaying = true;
    let done = true;
    try {
      const r = await replayOutbox(store, call, log.child({ part: 'replay' }));
      done = r.done;
      log.info('outbox replayed', { ...r });
    } catch (e) {
      done = false;
      log.warn('outbox replay failed', { error: e });
    } finally {
      replaying = false;
    }
    if (!done) {
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => {
        if (pool.online) void replay(call);
      }, 5000 + Math.floor(random() * 5000));
    }
  };
  const onOnline = async () => {
    const u = pool.pick();
    if (!u || !store) {
      bus.endAll();
      return;
    }
    const as = (kind: ExchangeKind): Parameters<typeof replayOutbox>[1] => (method, path, o = {}) => callUpstream(targetOf(u), method, path, { ...o, userAgent, kind });
    await replay(as('replay'));
    bus.endAll();
    followPools(as('request'));
    const d = await prefetchDiscovery(store, as('discovery'), log, discoveryTags).catch((e) => log.warn('discovery refresh failed', { error: e }));
    if (d) log.debug('discovery refreshed', { ...d });
  };
  let wasOnline = false;
  let transitionCount = 0;
  pool.onChange((ev) => {
    transitions.inc({ server: ev.upstream.url.host, healthy: String(ev.healthy) });
    transitionCount++;
    log.info(ev.healthy ? 'upstream healthy' : 'upstream unhealthy', { server: ev.upstream.url.host, reason: ev.reason });
    if (pool.online && !wasOnline) {
      wasOnline = true;
      clearTimeout(reconnectTimer);
      reconnectTimer = setTimeout(() => void onOnline(), Math.floor(random() * (opts.reconnectJitterMs ?? 2000)));
    } else if (!pool.online && wasOnline) {
      wasOnline = false;
      log.warn('offline: answering from the snapshot store');
    }
    upgrader?.linkChanged();
  });

  registry.gauge('tether_upstream_healthy', 'Whether each upstream apiserver is healthy', () =>
    pool.all().map((u) => ({ labels: { server: u.url.host }, value: u.healthy ? 1 : 0 })),
  );
  registry.gauge('tether_offline_watches', 'Watches currently served from the store', () => [{ value: bus.watches }]);
  if (store) {
    registry.gauge('tether_store_objects', 'Objects in the snapshot store by resource', () =>
      Object.entries(store.objects.counts()).map(([gvr, value]) => ({ labels: { gvr }, value })),
    );
    registry.gauge('tether_outbox_depth', 'Offline writes waiting for replay, by kind', () =>
      Object.entries(store.outbox.depth()).map(([kind, value]) => ({ labels: { kind }, value })),
    );
  }

  // Over-the-air upgrades: after the proxy serves, so that a new version on trial can prove itself.
  const upgradeConfig = config.upgrade;
  let artifacts: HubFetcher | undefined;
  if (upgradeConfig?.enabled && opts.nodeName && opts.upgrade !== false) {
    const upgradeOpts = opts.upgrade;
    const nodePath = `/api/v1/nodes/${encodeURIComponent(opts.nodeName)}`;
    artifacts = tunnel ? hubFetch(tunnel) : undefined;
    upgrader = startAgentUpgrader({
      nodeName: opts.nodeName,
      running: buildInfo,
      config: { dataDir: config.dataDir, releaseKey: config.releaseKey, upgrade: upgradeConfig },
      storedNode: store ? () => store.objects.get('v1/nodes', '', opts.nodeName) : undefined,
      online: () => pool.online,
      watch: watchOnPool,
      patch: (body) => {
        const u = pool.pick();
        if (!u) return Promise.reject(new TetherError(ErrorCode.UpstreamUnavailable, `patch node ${opts.nodeName}: offline`));
        return callUpstream(targetOf(u), 'PATCH', nodePath, { contentType: 'application/merge-patch+json', body, userAgent });
      },
      healthy: async () => {
        const v = await checkHealth({ storeOpen: store !== undefined, storeProblem: storeCheck, proxyUrl: proxy.url, pool });
        if (!v.healthy) log.info('upgrade: not healthy yet', { problem: v.problem });
        return v.healthy;
      },
      hub: artifacts,
      restart: (reason) => {
        if (upgradeOpts) return upgradeOpts.restart(reason);
        log.error('upgrade: a restart is needed but this agent has no way to restart itself; restart it (tether-edge run does)', { reason });
      },
      log: log.child({ part: 'upgrade' }),
      fallbackAfterMs: upgradeOpts ? upgradeOpts.fallbackAfterMs : undefined,
    });
    void upgrader.started;
  }

  const status = () =>
    collectStatus({
      nodeName: opts.nodeName,
      pool,
      store,
      storeProblem: storeCheck(),
      bus,
      proxy: proxy.url,
      certificate: rotation?.status(),
      tunnel: tunnel?.status(),
      upstreamMode: viaHub ? 'via-hub' : 'direct',
      problems: [garbageProblem(), rotation?.status().problem ?? null, config.insecurePlainHttp ? INSECURE_PLAIN_HTTP_WARNING : null].filter((p) => p !== null),
      link: { total: traffic.total(), lastHour: traffic.last(3_600_000), lastDay: traffic.last(86_400_000), transitions: transitionCount },
      upgrade: upgrader?.summary() ?? { running: buildInfo.version },
    });
  const app = createAdminApp({ registry, checks: { store: storeCheck, 'upstream-data': garbageProblem } });
  app.get('/status', (c) => c.json(status()));
  const admin = await serveFetch(app.fetch, config.adminListen);

  return {
    proxy,
    admin,
    status,
    async close() {
      upgrader?.stop();
      artifacts?.close();
      unfollow?.();
      await tunnel?.close();
      rotation?.stop();
      clearTimeout(reconnectTimer);
      clearTimeout(retryTimer);
      pools?.stop();
      bus.endAll();
      await proxy.close();
      await admin.close();
      pool.close();
      for (const a of bearerAgents.values()) a.destroy();
      sensitiveViaHub?.destroy();
      store?.db.close();
    },
  };
}
