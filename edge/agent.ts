/**
 * The composition root of `tether-edge run`: makes the parts and wires them together, nothing
 * else. Parts meet only here:
 *
 *   store (edge/store/)          opened first; one that cannot be opened leaves a plain proxy
 *   metrics (metrics.ts)         the counters handed to the parts, the gauges read from them
 *   tunnel (edge/tunnel/)        dials tether-hub; started before the pool, whose probes may use it
 *   upstream (edge/upstream/)    the pool, its targets (what the proxy picks), the node's own requests
 *   certs (edge/certs/)          renewal of the node's certificate, swapped into the targets
 *   topology, cache, proxy       the service-topology filter, the recorder and offline answers, the listener
 *   reconnect (reconnect.ts)     what the return of the link sets off (replay, re-watch, refresh)
 *   upgrade (edge/upgrade/)      over-the-air upgrades, after the proxy serves
 *   admin                        /metrics, /readyz, /status
 *
 * With `upstreamViaHub` the pool's one upstream is VIA_HUB_SERVER, whose connections are api
 * streams of the tunnel session (edge/upstream/via-hub.ts `hubLinks`): node and bearer requests,
 * probes, upgrades (exec, port-forward) and certificate renewal all go through tether-hub; the
 * session's end marks the upstream down at once (followSessions).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { openDb } from '#store-driver';
import { createAdminApp } from '../shared/admin.ts';
import { ErrorCode, TetherError, messageOf } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { type Listening, serveFetch } from '../shared/serve.ts';
import { buildInfo } from '../shared/version.ts';
import { createOfflineTokens, type OfflineTokens, type PodRef } from './auth/offline-tokens.ts';
import { type Cache, createCache, createEventBus } from './cache/index.ts';
import { recoverCertFiles } from './certs/cert-files.ts';
import { startCertRotation } from './certs/rotation.ts';
import type { EdgeConfig } from './config.ts';
import { createAgentMetrics } from './metrics.ts';
import { INSECURE_PLAIN_HTTP_WARNING, localClientAuth } from './proxy/local-auth.ts';
import { type ProxyServer, createProxyServer } from './proxy/server.ts';
import { createReconnect } from './reconnect.ts';
import { type AgentStatus, collectStatus } from './status-report.ts';
import { type Store, createStore } from './store/index.ts';
import { createTopology } from './topology-feed.ts';
import { type TunnelAgent, startTunnelAgent } from './tunnel/tunnel-agent.ts';
import { type AgentUpgrader, startAgentUpgrader } from './upgrade/agent-upgrader.ts';
import { checkHealth } from './upgrade/health.ts';
import { type HubFetcher, hubFetch } from './upgrade/hub-fetch.ts';
import { createNodeRequests } from './upstream/node-requests.ts';
import { createUpstreamPool } from './upstream/pool.ts';
import { createUpstreamTargets, directLinks } from './upstream/targets.ts';
import { createTrafficMeter } from './upstream/traffic.ts';
import { VIA_HUB_SERVER, followSessions, hubLinks } from './upstream/via-hub.ts';

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

export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  const { config, log, nodeName } = opts;
  const { viaHub, hubUrls, servers } = upstreamsOf(config);
  // A rotation interrupted between writing the new key and certificate is finished (or undone) first.
  if (config.certFile && config.keyFile) recoverCertFiles({ certFile: config.certFile, keyFile: config.keyFile }, log.child({ part: 'certs' }));
  const tls = { ca: readPem(config.caFile, 'CA file'), cert: readPem(config.certFile, 'certificate'), key: readPem(config.keyFile, 'key') };
  const hubCa = readPem(config.hubCaFile, 'hub CA file');

  const stored = openStore(config.dataDir, config.storeMinFreeBytes, log);
  const { store } = stored;
  const metrics = createAgentMetrics({ build: buildInfo });
  const bus = createEventBus();
  const traffic = createTrafficMeter();

  // The tunnel: dial out to the hub so it can reach this node's kubelet (logs, exec, port-forward,
  // metrics), and, via the hub, carry the upstream requests.
  const tunnel: TunnelAgent | undefined = hubUrls.length
    ? startTunnelAgent({
        hubUrls,
        nodeName,
        addresses: config.tunnelAddresses.length ? config.tunnelAddresses : undefined,
        ports: config.tunnelPorts,
        tls: tunnelTls(tls, hubCa),
        log: log.child({ part: 'tunnel' }),
        registry: metrics.registry,
      })
    : undefined;
  if (viaHub) log.info('upstream via the hub: apiserver requests travel as api streams of the tunnel', { hubs: hubUrls });
  const links = viaHub && tunnel ? hubLinks(tunnel) : directLinks(tls);
  const pool = createUpstreamPool({ servers, lbMode: config.lbMode, tls, log: log.child({ part: 'upstream' }), meter: traffic, createAgent: links.createAgent });
  const upstreams = createUpstreamTargets({ pool, meter: traffic, tls, links });
  const requests = createNodeRequests({ upstreams, nodeName, userAgent: `tether-edge/${buildInfo.version}` });
  const unfollow = viaHub && tunnel ? followSessions(pool, tunnel) : undefined;
  const rotation =
    config.rotateCertificates && config.caFile && config.certFile && config.keyFile && upstreams.renewalServers().length
      ? startCertRotation({
          nodeName,
          servers: upstreams.renewalServers,
          ...(upstreams.renewalAgent ? { agent: upstreams.renewalAgent } : {}),
          caFile: config.caFile,
          certFile: config.certFile,
          keyFile: config.keyFile,
          bootstrapTokenFile: config.bootstrapTokenFile ?? join(dirname(config.certFile), 'bootstrap-token'),
          log: log.child({ part: 'certs' }),
          onRotated: upstreams.setTls,
        })
      : undefined;

  // Set once the proxy serves (its health is part of a trial's verdict); the cache tells it of recorded Nodes.
  let upgrader: AgentUpgrader | undefined;
  const topology = store
    ? createTopology({ nodeName, store, log: log.child({ part: 'topology' }), filtered: metrics.topologyFiltered, reemitted: metrics.topologyReemitted })
    : undefined;
  topology?.refresh();
  const cache: Cache = store
    ? createCache({
        store,
        bus,
        log: log.child({ part: 'cache' }),
        bookmarkIntervalMs: opts.bookmarkIntervalMs,
        onStoreError: stored.failed,
        onStoreOk: stored.ok,
        onDecodeError: metrics.decodeError,
        onEventsDropped: metrics.eventsDropped,
        onRecorded: (gvr) => {
          topology?.recorded(gvr);
          upgrader?.recorded(gvr);
        },
      })
    : storelessCache(stored.check);
  const offlineTokens = keptOfflineTokens(store, log);
  metrics.observe({ pool, traffic, bus, store, offlineTokens });

  const proxy = await createProxyServer({
    listen: config.listen,
    logRequests: config.logLevel === 'debug',
    upstreams,
    cache,
    isCachedComponent: cachedComponents(config.cacheComponents),
    log: log.child({ part: 'proxy' }),
    requests: metrics.requests,
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
    podExists: podExistsIn(store),
  });

  const reconnect = createReconnect({ link: pool, requests, store, bus, topology, log, jitterMs: opts.reconnectJitterMs, random: opts.random });
  pool.onChange(() => upgrader?.linkChanged());

  // Over-the-air upgrades: after the proxy serves, so that a new version on trial can prove itself.
  const upgradeConfig = config.upgrade;
  let artifacts: HubFetcher | undefined;
  if (upgradeConfig?.enabled && nodeName && opts.upgrade !== false) {
    const upgradeOpts = opts.upgrade;
    artifacts = tunnel ? hubFetch(tunnel) : undefined;
    upgrader = startAgentUpgrader({
      nodeName,
      running: buildInfo,
      config: { dataDir: config.dataDir, releaseKey: config.releaseKey, upgrade: upgradeConfig },
      storedNode: store ? () => store.objects.get('v1/nodes', '', nodeName) : undefined,
      online: requests.online,
      watch: requests.watch,
      patch: requests.patchNode,
      healthy: trialHealth({ storeOpen: store !== undefined, storeProblem: stored.check, proxyUrl: proxy.url, pool }, log),
      hub: artifacts,
      restart: restarter(upgradeOpts, log),
      log: log.child({ part: 'upgrade' }),
      fallbackAfterMs: upgradeOpts ? upgradeOpts.fallbackAfterMs : undefined,
    });
    void upgrader.started;
  }

  const status = () =>
    collectStatus({
      nodeName,
      pool,
      store,
      storeProblem: stored.check(),
      bus,
      proxy: proxy.url,
      certificate: rotation?.status(),
      tunnel: tunnel?.status(),
      upstreamMode: viaHub ? 'via-hub' : 'direct',
      problems: [metrics.upstreamDataProblem(), rotation?.status().problem ?? null, config.insecurePlainHttp ? INSECURE_PLAIN_HTTP_WARNING : null].filter((p) => p !== null),
      link: metrics.link(),
      upgrade: upgrader?.summary() ?? { running: buildInfo.version },
    });
  const app = createAdminApp({ registry: metrics.registry, checks: { store: stored.check, 'upstream-data': metrics.upstreamDataProblem } });
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
      reconnect.stop();
      bus.endAll();
      await proxy.close();
      await admin.close();
      pool.close();
      upstreams.close();
      store?.db.close();
    },
  };
}

/** Direct to `servers`, or through the hub (one upstream, VIA_HUB_SERVER); the hubs the tunnel dials. */
function upstreamsOf(config: EdgeConfig): { viaHub: boolean; hubUrls: string[]; servers: readonly string[] } {
  const viaHub = config.upstreamViaHub;
  const hubUrls = [...config.hubUrls, ...(config.hubUrl && !config.hubUrls.includes(config.hubUrl) ? [config.hubUrl] : [])];
  if (viaHub && hubUrls.length === 0) {
    throw new TetherError(ErrorCode.BadConfig, 'invalid configuration: upstreamViaHub: needs hubUrls (or hubUrl), the tunnel the upstream requests travel on');
  }
  if (!viaHub && config.servers.length === 0) throw new TetherError(ErrorCode.BadConfig, 'invalid configuration: servers: at least one kube-apiserver URL is needed');
  return { viaHub, hubUrls, servers: viaHub ? [VIA_HUB_SERVER] : config.servers };
}

/** The tunnel's material, read per dial so that a rotated certificate applies; the hub's own CA when configured. */
function tunnelTls(tls: { ca?: Buffer; cert?: Buffer; key?: Buffer }, hubCa: Buffer | undefined) {
  return () => ({ ca: hubCa ?? tls.ca, cert: tls.cert, key: tls.key });
}

/** `cacheComponents` (lower-cased names, `*` for every client) as the proxy's question. */
function cachedComponents(names: readonly string[]): (component: string) => boolean {
  const set = new Set(names.map((c) => c.toLowerCase()));
  return (c) => set.has('*') || set.has(c);
}

function readPem(path: string | undefined, what: string): Buffer | undefined {
  if (!path) return undefined;
  try {
    return readFileSync(path);
  } catch (e) {
    throw new TetherError(ErrorCode.BadConfig, `read ${what} ${path}: ${messageOf(e)}`, { cause: e });
  }
}

/** The store and what /readyz and status report of it: an open or write failure, or too little free space. */
interface OpenedStore {
  store?: Store;
  check(): string | null;
  failed(e: unknown): void;
  ok(): void;
}

/** Opens the store; a store that cannot be opened leaves the agent running as a plain proxy. */
function openStore(dir: string, minFreeBytes: number, log: Logger): OpenedStore {
  let store: Store | undefined;
  let problem: string | null = null;
  try {
    store = createStore(openDb({ path: join(dir, 'tether.db'), minFreeBytes }));
  } catch (e) {
    log.error('the snapshot store cannot be used; serving online pass-through only', { error: e });
    problem = messageOf(e);
  }
  return {
    store,
    check: () => problem ?? store?.db.health.problem() ?? null,
    failed: (e) => void (problem = messageOf(e)),
    ok: () => void (problem = null),
  };
}

/** Without a store: online pass-through only; offline every answer is this error. */
function storelessCache(problem: () => string | null): Cache {
  const offlineOnly = (): never => {
    throw new TetherError(ErrorCode.UpstreamUnavailable, `tether-edge: offline, and the snapshot store is unavailable (${problem()})`);
  };
  return { tapFor: () => undefined, read: offlineOnly, watch: offlineOnly, write: offlineOnly, document: () => undefined };
}

/** Proofs of bearer tokens the apiserver accepted, kept in the store so they outlive a restart. */
function keptOfflineTokens(store: Store | undefined, log: Logger): OfflineTokens {
  const keep = <T>(what: string, f: () => T, otherwise: T): T => {
    try {
      return f();
    } catch (e) {
      log.warn(`token proofs: ${what} failed`, { error: e });
      return otherwise;
    }
  };
  return createOfflineTokens({
    initial: store ? keep('load', () => (store.tokens.prune(Date.now()), store.tokens.load(Date.now())), []) : [],
    onChange: (r) => store && keep('store', () => store.tokens.put(r), undefined),
    onEvict: (h) => store && keep('delete', () => store.tokens.delete(h), undefined),
  });
}

/** A bound service-account token is good offline only while its pod (same uid) is in the store. */
function podExistsIn(store: Store | undefined): (p: PodRef) => boolean {
  return (p) => store?.objects.get('v1/pods', p.namespace, p.name)?.metadata.uid === p.uid;
}

/** A trial's verdict (edge/upgrade/health.ts), with the reason logged while it is not healthy. */
function trialHealth(sources: Parameters<typeof checkHealth>[0], log: Logger): () => Promise<boolean> {
  return async () => {
    const v = await checkHealth(sources);
    if (!v.healthy) log.info('upgrade: not healthy yet', { problem: v.problem });
    return v.healthy;
  };
}

function restarter(upgradeOpts: { restart(reason: string): void } | undefined, log: Logger): (reason: string) => void {
  return (reason) => {
    if (upgradeOpts) return upgradeOpts.restart(reason);
    log.error('upgrade: a restart is needed but this agent has no way to restart itself; restart it (tether-edge run does)', { reason });
  };
}
