/**
 * The composition root of `tether-hub run`'s tunnel side: the node directory and lease view fed
 * by the backend (the apiserver, or a fixed list for benchmarks), the lease keeper, the tunnel
 * table, the router, and the two listeners (agents; CONNECT). Parts meet only here.
 *
 * Api streams (config apiStreams): streams an agent opens to `kube-apiserver:0` go to the
 * forwarder (tunnel/api-forward.ts), which sends their requests to kube-apiserver as the node the
 * session authenticated; its upstream comes from `apiUpstream`, or from the kubeconfig on the
 * first api stream.
 *
 * Artifact relay (config artifactRelay): requests under /tether/v1/artifacts/ on api streams are
 * answered by tunnel/artifacts.ts from the hub's disk copy of an EdgeUpgrade's release files; the
 * EdgeUpgrade is read with a client of the kubeconfig made on the first such request. With
 * apiStreams off and the relay on, api streams are accepted for the relay only.
 *
 * Stopping (SIGTERM): the leases are handed back (holder ""), every session is asked to drain so
 * its agent reconnects to another replica at once while open streams finish (up to
 * shutdownGraceSeconds), then the rest is closed and both listeners close.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { ReadyCheck } from '../shared/admin.ts';
import { ErrorCode, TetherError, messageOf } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import type { Registry } from '../shared/metrics.ts';
import { splitHostPort } from '../shared/serve.ts';
import type { HubConfig } from './config.ts';
import { createApiUpstream, createRestClient, loadKubeConfig } from './kube/client.ts';
import { createArtifactCache } from './tunnel/artifact-cache.ts';
import { createOriginFetch } from './tunnel/artifact-origin.ts';
import { type UpgradeLookup, createUpgradeLookup } from './tunnel/artifact-upgrades.ts';
import { createArtifactRelay } from './tunnel/artifacts.ts';
import { type ApiUpstream, createApiForwarder } from './tunnel/api-forward.ts';
import { type HubTopology, createHubTopology } from './tunnel/api-topology.ts';
import { watchTopology } from './tunnel/kube-backend.ts';
import { startAgentServer } from './tunnel/agent-server.ts';
import { startConnectServer } from './tunnel/connect-server.ts';
import { createDirectDialer } from './tunnel/direct-dial.ts';
import { type Identity, createCachedReviewer } from './tunnel/identity.ts';
import type { Watching } from './tunnel/kube-backend.ts';
import { createLeaseKeeper, createLeaseView } from './tunnel/leases.ts';
import { createHubMetrics } from './tunnel/metrics.ts';
import { createNodeDirectory } from './tunnel/node-directory.ts';
import { createPeerDialer } from './tunnel/peer-dial.ts';
import { type Caller, createRouter } from './tunnel/router.ts';
import { createTunnelTable } from './tunnel/tunnels.ts';
import type { HubBackend } from './tunnel/backend.ts';

export type { HubBackend };

export interface HubOptions {
  config: HubConfig;
  backend: HubBackend;
  log: Logger;
  registry: Registry;
  /** The network seam of direct dials (tests map 198.18.x destinations to a local server); default node:net. */
  directConnect?: (ip: string, port: number) => Socket;
  /** Where api streams are forwarded (tests); default: kube-apiserver of `config.kubeconfig`, made on the first api stream. */
  apiUpstream?: ApiUpstream;
  /** The topology state api streams are filtered with (tests feed it); default: fed by informers started with the default upstream. */
  apiTopology?: HubTopology;
  /** Where the artifact relay reads EdgeUpgrades (tests); default: the apiserver of `config.kubeconfig`, on the first relayed request. */
  artifactUpgrades?: UpgradeLookup;
}

export interface RunningHub {
  /** host:port where agents connect (wss://…/tunnel). */
  agentAddress: string;
  /** host:port of the TLS CONNECT listener. */
  connectAddress?: string;
  /** The address peers use (in this replica's Leases). */
  advertise: string;
  checks: Record<string, ReadyCheck>;
  /** Nodes whose tunnels this replica holds. */
  nodes(): string[];
  close(): Promise<void>;
}

function readFile(path: string | undefined, what: string): Buffer | undefined {
  if (!path) return undefined;
  try {
    return readFileSync(path);
  } catch (e) {
    throw new TetherError(ErrorCode.BadConfig, `read ${what} ${path}: ${messageOf(e)}`, { cause: e });
  }
}

export async function startHub(opts: HubOptions): Promise<RunningHub> {
  const { config, backend, log } = opts;
  const cert = readFile(config.tlsCertFile, 'tlsCertFile');
  const key = readFile(config.tlsKeyFile, 'tlsKeyFile');
  if (!cert || !key) throw new TetherError(ErrorCode.BadConfig, 'invalid configuration: tlsCertFile and tlsKeyFile: the agent and CONNECT listeners need a serving certificate');
  const ca = readFile(config.clientCaFile, 'clientCaFile');
  const peerTls = {
    ca: readFile(config.peerCaFile, 'peerCaFile') ?? ca,
    cert: readFile(config.peerCertFile, 'peerCertFile') ?? cert,
    key: readFile(config.peerKeyFile, 'peerKeyFile') ?? key,
  };
  const dialTimeoutMs = config.dialTimeoutSeconds * 1000;

  const directory = createNodeDirectory({
    onContested: (address, nodes) => log.warn('address listed by several Node objects; routed to none of them', { address, nodes }),
  });
  const view = createLeaseView();
  const watches: Watching[] = [backend.watchNodes(directory)];
  if (backend.watchServices) watches.push(backend.watchServices(directory));
  const limits = {
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    headerTimeoutMs: config.headerTimeoutMs,
    maxConnections: config.maxConnections,
    maxPendingPerSource: config.maxPendingPerSource,
  };
  if (backend.leases) watches.push(backend.leases.watch(view));

  // The tables exist before any listener, the keeper once the CONNECT address is known.
  let keeper: ReturnType<typeof createLeaseKeeper> | undefined;
  const lazyKeeper = {
    hold: (n: string, credential?: string) => keeper?.hold(n, credential) ?? Promise.resolve(),
    release: (n: string) => keeper?.release(n) ?? Promise.resolve(),
    held: () => keeper?.held() ?? [],
    close: (o?: { release?: boolean }) => keeper?.close(o) ?? Promise.resolve(),
  };
  const listenerCounts: { agent?: () => number; connect?: () => number } = {};
  const metrics = createHubMetrics(opts.registry, {
    sessions: () => table.entries().map(({ node, session }) => ({ node, stats: () => session.stats() })),
    contested: () => directory.contested().length,
    listeners: () => [
      { listener: 'agent' as const, open: listenerCounts.agent?.() ?? 0 },
      { listener: 'connect' as const, open: listenerCounts.connect?.() ?? 0 },
    ],
  });
  const tlog = log.child({ part: 'tunnels' });
  const table = createTunnelTable({ directory, keeper: lazyKeeper, log: tlog, metrics });
  const topology = config.apiTopologyFilter ? (opts.apiTopology ?? createHubTopology()) : undefined;
  const defaultUpstream = async () => {
    const kc = loadKubeConfig(config.kubeconfig);
    const u = await createApiUpstream(kc);
    if (topology && !opts.apiTopology) watches.push(...watchTopology(kc, topology, log.child({ part: 'kube' })));
    return u;
  };
  let upgrades: UpgradeLookup | undefined = opts.artifactUpgrades;
  const relay = config.artifactRelay
    ? createArtifactRelay({
        // Made on first use, so a hub that relays nothing never reads the kubeconfig for it; a failure is retried on the next request.
        upgrades: (name) => (upgrades ??= createUpgradeLookup(createRestClient(loadKubeConfig(config.kubeconfig), { maxSockets: 4 })))(name),
        cache: createArtifactCache({
          dir: config.artifactCacheDir,
          maxBytes: config.artifactCacheBytes,
          fetch: createOriginFetch({ ca: readFile(config.artifactOriginCaFile, 'artifactOriginCaFile'), timeoutMs: config.artifactOriginTimeoutSeconds * 1000 }),
          idleTimeoutMs: config.artifactOriginTimeoutSeconds * 1000,
          log: log.child({ part: 'artifacts' }),
        }),
        answered: (_node, code) => metrics.apiAnswered(code),
        log: log.child({ part: 'artifacts' }),
      })
    : undefined;
  const forwarder = config.apiStreams || relay
    ? createApiForwarder({
        upstream: opts.apiUpstream ?? defaultUpstream,
        ...(topology ? { topology } : {}),
        impersonation: config.apiImpersonation,
        ...(config.apiAcceptEncoding === 'identity' ? { acceptEncoding: 'identity' } : {}),
        answered: (_node, code) => metrics.apiAnswered(code),
        ...(relay ? { artifacts: relay } : {}),
        apiserver: config.apiStreams,
        log: log.child({ part: 'api' }),
      })
    : undefined;
  const reviewer = backend.tokenReview ? createCachedReviewer(backend.tokenReview) : undefined;
  const route = createRouter({
    directory,
    // A draining session takes no new streams: route as if it were gone (to the new holder).
    tunnelOf: (node) => {
      const s = table.get(node);
      return s && (s.state === 'open' || s.state === 'handshake') ? s : undefined;
    },
    leases: backend.leases ? view : undefined,
    replica: config.replicaId,
    direct: createDirectDialer({ allow: config.directAllow, deny: config.directDeny, timeoutMs: dialTimeoutMs, ...(opts.directConnect ? { connect: opts.directConnect } : {}) }),
    forward: createPeerDialer({ ...peerTls, replica: config.replicaId, timeoutMs: dialTimeoutMs }),
    dialTimeoutMs,
  });
  const authorize = (id: Identity): Caller | string => {
    if (id.via === 'socket' || config.connectUsers.includes(id.user)) return { kind: 'apiserver', user: id.user };
    if (config.scrapeUsers.includes(id.user)) return { kind: 'scrape', user: id.user };
    if (config.peerUsers.includes(id.user)) return { kind: 'peer', user: id.user };
    return `user ${id.user} may not use the CONNECT endpoint (not in connectUsers, scrapeUsers or peerUsers)`;
  };

  const connect = await startConnectServer({
    listen: config.connectListen,
    socketPath: config.connectSocket,
    tls: { cert, key, ca },
    reviewer,
    authorize,
    route,
    limits,
    metrics,
    log: log.child({ part: 'connect' }),
  });
  listenerCounts.connect = () => connect.connections;
  const advertise = config.connectAdvertise ?? connect.address ?? config.connectListen;
  if (backend.leases && ['0.0.0.0', '::', ''].includes(splitHostPort(advertise).host)) {
    throw new TetherError(ErrorCode.BadConfig, `invalid configuration: connectAdvertise: other replicas cannot reach ${advertise}; set the address they should use (the pod IP)`);
  }
  if (backend.leases) {
    keeper = createLeaseKeeper({
      api: backend.leases.api,
      replica: config.replicaId,
      address: advertise,
      durationSeconds: config.leaseDurationSeconds,
      log: log.child({ part: 'leases' }),
      onLost: (node, holder) => table.drop(node, `node ${node} is now held by replica ${holder}`),
    });
  }

  const agents = await startAgentServer({
    listen: config.listen,
    tls: { cert, key, ca },
    reviewer,
    admit: async (node, _hello, credential) => {
      if (!directory.hasNode(node)) {
        const addresses = await backend.nodeAddresses(node);
        if (addresses) directory.setNode(node, addresses);
        else if (!config.admitUnregisteredNodes) {
          throw new TetherError(ErrorCode.TunnelDenied, `hello: Node ${node} does not exist; the node must be registered before its tunnel connects (or the hub run with admitUnregisteredNodes)`);
        } else {
          // It owns no address until its Node object lists some (node-directory.ts); it may register through its api streams.
          log.info('agent of a node not registered yet accepted', { node });
        }
      }
      const elsewhere = backend.leases ? view.owner(node) : undefined;
      const why =
        table.check(node, credential) ??
        (elsewhere && elsewhere.replica !== config.replicaId && elsewhere.credential && elsewhere.credential !== credential
          ? `node ${node} already has a live tunnel session on replica ${elsewhere.replica} authenticated with another credential; a replacement must use the same certificate or token, or wait until that session ends`
          : null);
      if (why) {
        tlog.warn('agent session replacement refused', { node, reason: why });
        metrics.replacement('refused');
        throw new TetherError(ErrorCode.TunnelDenied, `hello: ${why}`);
      }
    },
    onSession: (node, session, hello, credential) => {
      void session.closed.then(() => metrics.sessionEnded(node, session.stats()));
      table.add(node, session, hello, credential);
    },
    ...(forwarder ? { onOpen: (node: string, host: string, port: number) => forwarder.open(node, host, port) } : {}),
    limits,
    heartbeatIntervalMs: config.heartbeatSeconds * 1000,
    heartbeatTimeoutMs: config.heartbeatSeconds * 3000,
    log: log.child({ part: 'agents' }),
    metrics,
  });
  listenerCounts.agent = () => agents.guard.open;
  log.info('tunnel hub listening', { replica: config.replicaId, agents: agents.address, connect: connect.address, socket: connect.socketPath, advertise });

  const [nodesWatch, leasesWatch] = watches;
  return {
    agentAddress: agents.address,
    connectAddress: connect.address,
    advertise,
    checks: {
      nodes: () => (nodesWatch?.healthy ? null : 'the Node informer is not synced'),
      ...(leasesWatch ? { leases: () => (leasesWatch.healthy ? null : 'the Lease informer is not synced') } : {}),
    },
    nodes: () => table.entries().map((e) => e.node),
    async close() {
      await lazyKeeper.close({ release: true });
      await table.drainAll('hub replica stopping', config.shutdownGraceSeconds * 1000);
      await agents.close();
      forwarder?.close();
      relay?.close();
      await connect.close();
      await Promise.all(watches.map((w) => w.stop()));
      metrics.close();
    },
  };
}
