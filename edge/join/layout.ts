/**
 * Where join puts things on a node, and what it writes there. Paths are as on the node; with
 * `--root DIR` they are written under DIR but keep these values inside the files.
 */
import { parse as parseYaml, stringify } from 'yaml';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';

export const PATHS = {
  etcDir: '/etc/tether',
  config: '/etc/tether/edge.yaml',
  manifest: '/etc/tether/join.json',
  backupDir: '/etc/tether/backup',
  pkiDir: '/etc/tether/pki',
  ca: '/etc/tether/pki/ca.crt',
  cert: '/etc/tether/pki/node.crt',
  key: '/etc/tether/pki/node.key',
  /** Not written by join: where an operator puts a fresh token when the certificate expired offline. */
  bootstrapToken: '/etc/tether/pki/bootstrap-token',
  /** The local CA of the agent's clients (0700; ca.key and ca.crt 0600). */
  localCaDir: '/etc/tether/pki/local',
  localCaCert: '/etc/tether/pki/local/ca.crt',
  localCaKey: '/etc/tether/pki/local/ca.key',
  /** kube-proxy's kubeconfig with its local client certificate (CN=kube-proxy). */
  kubeProxyKubeconfig: '/etc/tether/kube-proxy.conf',
  dataDir: '/var/lib/tether',
  unit: '/etc/systemd/system/tether-edge.service',
  kubeletKubeconfig: '/etc/kubernetes/kubelet.conf',
  kubeletEnv: '/etc/tether/kubelet.env',
  kubeletDropIn: '/etc/systemd/system/kubelet.service.d/20-tether.conf',
  /** Read only: Debian's kubelet defaults, whose KUBELET_EXTRA_ARGS kubelet.env keeps. */
  kubeletDefaults: '/etc/default/kubelet',
} as const;

export const AGENT_URL = 'https://127.0.0.1:10261';
export const POOL_LABEL = 'apps.tether.dev/pool';
export const UNIT_NAME = 'tether-edge.service';

const header = (what: string) => `# ${what}\n# Written by \`tether-edge join\`; \`tether-edge reset\` removes it.\n`;

export interface AgentConfigInput {
  nodeName: string;
  server: string;
  hubUrl?: string;
  /** The agent's upstream goes through the hub (needs hubUrl). */
  upstreamViaHub?: boolean;
  /**
   * PEM Ed25519 public key that must sign releases for over-the-air upgrades (join --release-key),
   * written inline so the pin travels with the configuration and no other file can swap it.
   */
  releaseKey?: string;
  /** The file the systemd unit runs: what an over-the-air upgrade replaces (upgrade.binary). */
  binary?: string;
}

/** The agent's configuration: keys of edge/config.ts edgeConfigSchema. */
export function agentConfigYaml(i: AgentConfigInput): string {
  const doc: Record<string, unknown> = {
    nodeName: i.nodeName,
    servers: [i.server],
    caFile: PATHS.ca,
    certFile: PATHS.cert,
    keyFile: PATHS.key,
    dataDir: PATHS.dataDir,
    localCaDir: PATHS.localCaDir,
    ...(i.hubUrl ? { hubUrl: i.hubUrl } : {}),
    ...(i.upstreamViaHub ? { upstreamViaHub: true } : {}),
    ...(i.releaseKey ? { releaseKey: i.releaseKey } : {}),
    // Stated even when it is the default, so the file the upgrader replaces is the one ExecStart runs.
    ...(i.binary ? { upgrade: { binary: i.binary } } : {}),
  };
  return header('tether-edge configuration (tether-edge run --config /etc/tether/edge.yaml)') + stringify(doc);
}

/** The hard link to the last binary that proved healthy, kept by the upgrader (edge/upgrade/). */
export function knownGoodBinary(dataDir: string = PATHS.dataDir): string {
  return `${dataDir}/upgrade/known-good`;
}

/**
 * The agent's unit. Before every start, the known-good binary (not the one about to start) runs
 * `upgrade guard`: a new binary that keeps failing to start cannot be trusted to roll itself back,
 * so the last healthy one counts the attempts and puts the previous release back. "-": before the
 * first upgrade there is no known-good file, and a failing guard must not keep the agent down.
 */
export function systemdUnit(binary: string, dataDir: string = PATHS.dataDir): string {
  return `${header('tether-edge: the edge agent that kubelet talks to')}[Unit]
Description=Tether edge agent (caching proxy for kube-apiserver on 127.0.0.1:10261)
Wants=network-online.target
After=network-online.target
Before=kubelet.service

[Service]
ExecStartPre=-${knownGoodBinary(dataDir)} upgrade guard --config ${PATHS.config}
ExecStart=${binary} run --config ${PATHS.config}
Restart=always
RestartSec=2
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`;
}

/** A local client's credentials for the agent: the local CA (to trust the agent) and its own certificate. */
export interface LocalCredentials {
  caPem: string;
  certPem: string;
  keyPem: string;
}

const b64 = (pem: string) => Buffer.from(pem).toString('base64');

/** A kubeconfig for one local component (the kubelet, kube-proxy), talking to the agent over HTTPS. */
export function localKubeconfig(component: string, creds: LocalCredentials, what: string): string {
  return (
    header(what) +
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'tether-edge', cluster: { server: AGENT_URL, 'certificate-authority-data': b64(creds.caPem) } }],
      contexts: [{ name: 'tether-edge', context: { cluster: 'tether-edge', user: component } }],
      'current-context': 'tether-edge',
      users: [{ name: component, user: { 'client-certificate-data': b64(creds.certPem), 'client-key-data': b64(creds.keyPem) } }],
    })
  );
}

/**
 * The kubelet's kubeconfig, pointing at the agent with the kubelet's local client certificate
 * (CN=kubelet): that certificate, not the User-Agent, is what makes a request the kubelet's. An
 * existing one (a kubeadm node being converted) keeps its contexts and names, so tools reading it
 * still find them; its clusters now name the agent and trust the local CA, and its users carry the
 * local certificate (the kubeadm credentials are in /etc/tether/backup).
 */
export function kubeletKubeconfig(creds: LocalCredentials, existing?: string): string {
  if (existing === undefined) {
    return localKubeconfig('kubelet', creds, 'kubelet kubeconfig: the kubelet talks to the tether-edge agent, which holds the node identity');
  }
  let doc: { clusters?: { cluster?: Record<string, unknown> }[]; users?: { name?: string; user?: Record<string, unknown> }[] };
  try {
    doc = parseYaml(existing) as typeof doc;
  } catch (e) {
    throw new TetherError(ErrorCode.BadConfig, `join: the existing ${PATHS.kubeletKubeconfig} does not parse: ${messageOf(e)}`, { cause: e });
  }
  if (!doc || !Array.isArray(doc.clusters) || doc.clusters.length === 0) {
    throw new TetherError(ErrorCode.BadConfig, `join: the existing ${PATHS.kubeletKubeconfig} names no cluster; move it away and join again`);
  }
  for (const c of doc.clusters) {
    const cluster = (c.cluster ??= {});
    cluster.server = AGENT_URL;
    delete cluster['certificate-authority'];
    delete cluster['tls-server-name'];
    cluster['certificate-authority-data'] = b64(creds.caPem);
  }
  const users = Array.isArray(doc.users) && doc.users.length ? doc.users : (doc.users = [{ name: 'kubelet' }]);
  for (const u of users) u.user = { 'client-certificate-data': b64(creds.certPem), 'client-key-data': b64(creds.keyPem) };
  return header('kubelet kubeconfig, converted: the kubelet talks to the tether-edge agent (the original is in /etc/tether/backup)') + stringify(doc);
}

/**
 * The pool label request: kubelet flags in an environment file that the kubelet drop-in loads
 * after /etc/default/kubelet, keeping that file's KUBELET_EXTRA_ARGS. The kubelet applies
 * --node-labels when it registers the Node.
 */
export function kubeletEnv(pool: string, defaults?: string): string {
  const previous = defaults ? extraArgsOf(defaults) : '';
  const args = [previous, `--node-labels=${POOL_LABEL}=${pool}`].filter(Boolean).join(' ');
  return header('kubelet flags for the node pool (loaded by kubelet.service.d/20-tether.conf)') + `KUBELET_EXTRA_ARGS="${args}"\n`;
}

export function kubeletDropIn(): string {
  return `${header('kubelet drop-in: adds the node pool label to the kubelet flags')}[Service]\nEnvironmentFile=-${PATHS.kubeletEnv}\n`;
}

function extraArgsOf(envFile: string): string {
  for (const line of envFile.split('\n')) {
    const m = /^\s*KUBELET_EXTRA_ARGS\s*=\s*(.*)$/.exec(line);
    if (m) return m[1]!.trim().replace(/^(["'])(.*)\1$/, '$2');
  }
  return '';
}

const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function checkPoolName(pool: string): string {
  if (!LABEL_VALUE.test(pool)) throw new TetherError(ErrorCode.BadConfig, `join: --pool ${JSON.stringify(pool)} is not a valid label value (letters, digits, "-", "_", ".", at most 63)`);
  return pool;
}

export function checkNodeName(name: string): string {
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    throw new TetherError(ErrorCode.BadConfig, `join: node name ${JSON.stringify(name)} is not a valid Kubernetes node name (lower-case letters, digits, "-" and "."); pass --node-name`);
  }
  return name;
}
