/**
 * tether-hub's configuration schema. Every field has a default and a description; the entry point
 * fills it from a file (--config), TETHER_HUB_* environment variables and flags.
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { controllersConfigSchema } from './controllers/config.ts';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/, 'expected host:port, e.g. 0.0.0.0:8443');

const cidr = z.string().regex(/^[0-9A-Fa-f.:]+(\/[0-9]{1,3})?$/, 'expected a CIDR, e.g. 10.0.0.0/8');

export const hubConfigSchema = z.strictObject({
  replicaId: z.string().min(1).default(hostname()).describe('This replica\'s name in tunnel Leases (default: the host name, i.e. the pod name)'),
  listen: hostPort.default('0.0.0.0:8443').describe('Address where edge agents connect (wss)'),
  connectListen: hostPort.default('127.0.0.1:8132').describe("HTTP CONNECT endpoint (TLS) for kube-apiserver's egress, Prometheus and peer replicas"),
  connectSocket: z.string().optional().describe('Also serve CONNECT on this Unix socket (no TLS; callers are trusted as kube-apiserver)'),
  connectAdvertise: hostPort.optional().describe('The CONNECT address other replicas use to reach this one (default: connectListen)'),
  adminListen: hostPort.default('127.0.0.1:8267').describe('Address of /healthz, /readyz and /metrics'),
  kubeconfig: z.string().optional().describe('Kubeconfig of the cluster (default: in-cluster)'),
  tlsCertFile: z.string().optional().describe('Serving certificate of the agent and CONNECT listeners (needed for both)'),
  tlsKeyFile: z.string().optional().describe('Key of the serving certificate'),
  clientCaFile: z.string().optional().describe('CA bundle that verifies client certificates: agents (the cluster CA), kube-apiserver, Prometheus, peers'),
  connectUsers: z
    .array(z.string().min(1))
    .default(['kube-apiserver-egress', 'kube-apiserver'])
    .describe('Users (certificate CN or TokenReview user name) that may CONNECT anywhere the policy allows'),
  scrapeUsers: z
    .array(z.string().min(1))
    .default([])
    .describe('Users that may CONNECT only to edge nodes through their tunnels (Prometheus)'),
  peerUsers: z.array(z.string().min(1)).default(['tether-hub']).describe('Users of other hub replicas forwarding a CONNECT'),
  peerCertFile: z.string().optional().describe('Client certificate presented to other replicas (default: tlsCertFile)'),
  peerKeyFile: z.string().optional().describe('Key of the peer client certificate (default: tlsKeyFile)'),
  peerCaFile: z.string().optional().describe("CA bundle that verifies other replicas' serving certificates (default: clientCaFile)"),
  leaseNamespace: z.string().min(1).default('tether-system').describe('Namespace of the tunnel Leases'),
  leaseDurationSeconds: z.number().int().min(3).default(15).describe('A replica that stops renewing a tunnel Lease for this long no longer holds the node'),
  directAllow: z
    .array(cidr)
    .default(['0.0.0.0/0', '::/0'])
    .describe('Destinations outside edge nodes the hub may dial directly (CIDRs; empty disables direct dialing)'),
  directDeny: z
    .array(cidr)
    .default(['127.0.0.0/8', '::1/128', '169.254.0.0/16', 'fe80::/10'])
    .describe('Destinations never dialed directly, even when allowed'),
  handshakeTimeoutMs: z.number().int().min(1).default(10_000).describe('A client of the agent or CONNECT listener must finish its TLS handshake within this time, or is disconnected'),
  headerTimeoutMs: z
    .number()
    .int()
    .min(1)
    .default(10_000)
    .describe('After the handshake, the request (CONNECT head, or websocket upgrade) must arrive and be authenticated within this time, or the client is disconnected'),
  maxConnections: z.number().int().min(1).default(20_000).describe('Open connections per listener (agent, CONNECT) at most; more are closed at once'),
  maxPendingPerSource: z
    .number()
    .int()
    .min(1)
    .default(64)
    .describe('Connections per listener from one source address that are not yet authenticated, at most; more are closed at once'),
  dialTimeoutSeconds: z.number().int().min(1).default(10).describe('Limit on opening a stream or a direct connection'),
  heartbeatSeconds: z.number().int().min(1).default(10).describe('Tunnel heartbeat interval; a peer silent for 3 intervals is gone'),
  shutdownGraceSeconds: z.number().int().min(0).default(10).describe('On SIGTERM, how long open streams may finish after agents were told to reconnect elsewhere'),
  admitUnregisteredNodes: z
    .boolean()
    .default(false)
    .describe('Accept the tunnel of an authenticated node whose Node object does not exist yet (nodes with upstreamViaHub register their Node through it; it is routed no address until its Node object lists some)'),
  apiStreams: z
    .boolean()
    .default(true)
    .describe("Accept api streams: agents running with upstreamViaHub send their kube-apiserver requests inside the tunnel, and the hub forwards them as the node (needs deploy/rbac.yaml's tether-hub-node-proxy)"),
  apiImpersonation: z
    .enum(['constrained', 'legacy'])
    .default('constrained')
    .describe("How the hub acts as a node: 'constrained' (Kubernetes >= 1.36: Impersonate-User only, mode arbitrary-node) or 'legacy' (older clusters: Impersonate-User plus Impersonate-Group system:nodes; needs deploy/rbac-legacy-impersonation.yaml)"),
  apiAcceptEncoding: z
    .enum(['edge', 'identity'])
    .default('edge')
    .describe("Accept-Encoding of forwarded requests: 'edge' keeps what the agent asked (gzip), 'identity' asks kube-apiserver for uncompressed answers and lets the tunnel's deflate compress them"),
  apiTopologyFilter: z
    .boolean()
    .default(true)
    .describe("Filter api streams' EndpointSlices and Endpoints answers by service topology before they cross the link (Service and NodePool informers on the hub)"),
  artifactRelay: z
    .boolean()
    .default(true)
    .describe("Serve EdgeUpgrade release files to nodes inside their tunnels (GET /tether/v1/artifacts/<edgeupgrade>/<file> on an api stream), for nodes that cannot reach spec.baseURL; works with apiStreams off too"),
  artifactCacheDir: z.string().min(1).default('/var/cache/tether-hub/artifacts').describe('Where the relay keeps one copy of each release file per EdgeUpgrade uid (a writable volume)'),
  artifactCacheBytes: z
    .number()
    .int()
    .min(1)
    .default(2 * 1024 ** 3)
    .describe('Size cap of artifactCacheDir in bytes; copies no node is reading are removed, least recently used first'),
  artifactOriginCaFile: z.string().optional().describe('CA bundle that verifies https release origins (default: the system CAs)'),
  artifactOriginTimeoutSeconds: z
    .number()
    .int()
    .min(1)
    .default(30)
    .describe("The relay's limit on an origin's answer, and on a pause in its bytes"),
  controllers: controllersConfigSchema.prefault({}).describe('Node pool, pool set, autonomy, CSR approval and EdgeUpgrade controllers'),
  logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info').describe('Lowest log level written'),
  logFormat: z.enum(['json', 'text']).default('json').describe('Log line format'),
});

export type HubConfig = z.infer<typeof hubConfigSchema>;
export const HUB_ENV_PREFIX = 'TETHER_HUB_';
