/**
 * The edge agent's configuration schema. Every field has a default and a description; the entry
 * point fills it from a file (--config), TETHER_EDGE_* environment variables and flags.
 */
import { createPublicKey } from 'node:crypto';
import { z } from 'zod';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/, 'expected host:port, e.g. 127.0.0.1:10261');

/**
 * Why a PEM text is not an Ed25519 public key (SPKI, "BEGIN PUBLIC KEY"), or undefined when it is.
 * The release key must be Ed25519: the agent verifies SHA256SUMS.sig with node:crypto
 * verify(null, …), which for other key types would mean a different (hashed) scheme.
 */
export function ed25519PublicKeyProblem(pem: string): string | undefined {
  if (!pem.includes('-----BEGIN PUBLIC KEY-----')) {
    return pem.includes('PRIVATE KEY')
      ? 'this is a private key: pin the public key (openssl pkey -in release.key -pubout -out release.pub)'
      : 'expected a PEM public key ("-----BEGIN PUBLIC KEY-----")';
  }
  let type: string | undefined;
  try {
    type = createPublicKey({ key: pem, format: 'pem' }).asymmetricKeyType;
  } catch {
    return 'not a readable PEM public key (damaged or truncated base64?)';
  }
  return type === 'ed25519' ? undefined : `expected an Ed25519 public key, got ${type ?? 'an unknown key type'}`;
}

const releaseKey = z.string().superRefine((pem, ctx) => {
  const problem = ed25519PublicKeyProblem(pem);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** Over-the-air upgrades (edge/upgrade/): where the binary is and how a new one is trialled. */
const upgradeSchema = z.strictObject({
  enabled: z.boolean().default(true).describe('Apply over-the-air upgrades the hub asks for (false: report nothing, never swap)'),
  binary: z.string().min(1).default('/usr/local/bin/tether-edge').describe('The file systemd runs, replaced atomically by an upgrade'),
  dir: z.string().min(1).optional().describe('Directory of downloads, kept releases and the known-good link (default: <dataDir>/upgrade)'),
  healthDeadlineSeconds: z
    .number()
    .int()
    .positive()
    .default(120)
    .describe('Seconds a new version has to become healthy before the previous binary is put back'),
  allowDowngrade: z.boolean().default(false).describe('Accept a target version lower than the running one'),
  caFile: z.string().min(1).optional().describe('CA bundle of the release location (default: the system CAs)'),
});

export const edgeConfigSchema = z.strictObject({
  nodeName: z.string().min(1).optional().describe('Name of this node (default: the host name)'),
  listen: hostPort.default('127.0.0.1:10261').describe('Address of the caching proxy that kubelet and pods use'),
  adminListen: hostPort.default('127.0.0.1:10267').describe('Address of /healthz, /readyz and /metrics'),
  servers: z
    .array(z.url({ protocol: /^https?$/, error: 'expected an http(s) URL of a kube-apiserver' }))
    .default([])
    .describe('Upstream kube-apiserver URLs, comma-separated'),
  lbMode: z.enum(['round-robin', 'priority']).default('priority').describe('How requests are spread over the servers'),
  caFile: z.string().optional().describe('CA bundle that signs the apiserver certificate'),
  certFile: z.string().optional().describe("The node's client certificate (CN=system:node:<name>)"),
  keyFile: z.string().optional().describe("The node's client key"),
  bootstrapTokenFile: z
    .string()
    .optional()
    .describe('Fresh bootstrap token for re-joining after the certificate expired offline (default: bootstrap-token beside certFile)'),
  rotateCertificates: z.boolean().default(true).describe('Renew the client certificate at a jittered 70–90 % of its lifetime'),
  dataDir: z.string().default('/var/lib/tether').describe('Directory of the snapshot store (created 0700)'),
  storeMinFreeBytes: z
    .number()
    .int()
    .min(0)
    .default(32 * 1024 * 1024)
    .describe('Free space below which the store check of /readyz fails, before SQLite runs out of disk (0: only write failures count)'),
  localCaDir: z
    .string()
    .optional()
    .describe("Directory of the local CA whose client certificates local clients (kubelet, kube-proxy) present; created 0700 (default: <dataDir>/local-ca; join sets /etc/tether/pki/local)"),
  insecurePlainHttp: z
    .boolean()
    .default(false)
    .describe(
      "INSECURE, for installs joined before local client certificates: serve plain HTTP and lend the node's identity to every request without credentials on a loopback listener (any local process is then the node)",
    ),
  cacheSecrets: z.boolean().default(true).describe('Keep Secrets in the snapshot store (false: Secrets are never written to disk, and are not answered offline)'),
  cacheComponents: z
    .array(z.string().min(1))
    .default(['kubelet', 'kube-proxy', 'coredns', 'flanneld', 'tether'])
    .describe('Components whose responses are cached ("*" for all): the CN of a local client certificate; the User-Agent up to the first "/" only for bearer tokens and --insecure-plain-http'),
  maxConcurrentLists: z
    .number()
    .int()
    .min(1)
    .default(4)
    .describe('Upstream LISTs in flight at once; more wait, so relists after a reconnect do not storm the apiserver'),
  hubUrl: z.url({ protocol: /^wss?$/ }).optional().describe('wss:// address of tether-hub for the tunnel'),
  hubUrls: z
    .array(z.url({ protocol: /^wss?$/ }))
    .default([])
    .describe('wss:// addresses of tether-hub replicas (or one Service), tried in order (hubUrl is added last)'),
  hubCaFile: z.string().optional().describe("CA bundle of the hub's serving certificate (default: caFile)"),
  upstreamViaHub: z
    .boolean()
    .default(false)
    .describe(
      "Send every upstream request (watches, probes and certificate renewal included) as a compressed stream of the tunnel to tether-hub, which forwards it to kube-apiserver as this node: the node then needs no route to the apiserver. Needs hubUrls (or hubUrl); servers is then not used",
    ),
  tunnelPorts: z
    .array(z.number().int().min(1).max(65535))
    .default([])
    .describe('Ports the hub may reach through the tunnel besides the kubelet (10250), e.g. 9100'),
  tunnelAddresses: z
    .array(z.string().min(1))
    .default([])
    .describe("Addresses announced to the hub and accepted as destinations (default: the host's addresses)"),
  releaseKey: releaseKey
    .optional()
    .describe(
      'Inline PEM Ed25519 public key that must sign every release (SHA256SUMS.sig) before an over-the-air upgrade; without it every upgrade is refused (set by tether-edge join --release-key)',
    ),
  upgrade: upgradeSchema
    .default({ enabled: true, binary: '/usr/local/bin/tether-edge', healthDeadlineSeconds: 120, allowDowngrade: false })
    .describe('Over-the-air upgrades'),
  logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info').describe('Lowest log level written'),
  logFormat: z.enum(['json', 'text']).default('json').describe('Log line format'),
});

export type EdgeConfig = z.infer<typeof edgeConfigSchema>;
export const EDGE_ENV_PREFIX = 'TETHER_EDGE_';
