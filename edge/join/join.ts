/**
 * `tether-edge join`: make this machine an edge node of a cluster.
 *
 *   validate the arguments → discover and pin the cluster CA (ca-discovery.ts) → get a node client
 *   certificate with the bootstrap token (certs/request-cert.ts) → make the local CA and the
 *   kubelet's and kube-proxy's client certificates (certs/local-ca.ts) → write configuration, key,
 *   certificate, local CA, systemd unit, kubeconfigs and pool label as one change set (changes.ts)
 *   → with systemd on "/": reload, enable and start tether-edge, restart a running kubelet.
 *
 * Nothing is written before every network step has succeeded, and a failed write undoes the rest.
 */
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createPublicKey } from 'node:crypto';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { createLocalCa, localCaFrom } from '../certs/local-ca.ts';
import { ed25519PublicKeyProblem } from '../config.ts';
import { requestNodeCertificate } from '../certs/request-cert.ts';
import { type ChangePlan, type PlannedFile, applyChanges, readManifest } from './changes.ts';
import { discoverCluster } from './ca-discovery.ts';
import {
  PATHS,
  UNIT_NAME,
  agentConfigYaml,
  checkNodeName,
  checkPoolName,
  kubeletDropIn,
  kubeletEnv,
  kubeletKubeconfig,
  localKubeconfig,
  systemdUnit,
} from './layout.ts';
import { type Systemd, detectSystemd } from './systemd.ts';
import { parseBootstrapToken, parseCaCertHash } from './token.ts';

export interface JoinOptions {
  server: string;
  token: string;
  caCertHash: string;
  nodeName?: string;
  pool?: string;
  hubUrl?: string;
  /**
   * Write `upstreamViaHub: true`: the agent sends its apiserver requests through the hub (needs
   * hubUrl). The join itself (discovery, the bootstrap CSR) still talks to `server` directly.
   */
  upstreamViaHub?: boolean;
  /**
   * PEM file of the Ed25519 public key that signs releases: pinned inline in the agent's
   * configuration (releaseKey). Without it the agent refuses every over-the-air upgrade.
   */
  releaseKeyFile?: string;
  /** Directory standing for "/"; default "/". */
  root?: string;
  /** The tether-edge executable the systemd unit runs. */
  binary: string;
  /** For discovery, and again for the certificate to be issued. */
  timeoutMs: number;
  log: Logger;
  /** Default: detected (only on "/"). */
  systemd?: Systemd;
}

export interface JoinResult {
  nodeName: string;
  server: string;
  csrName: string;
  notAfter: Date;
  written: string[];
  /** Files that existed and were replaced; originals under /etc/tether/backup. */
  replaced: string[];
  /** What was done with systemd, or what the operator should do. */
  next: string[];
}

/** The release key as the agent's configuration holds it: the canonical SPKI PEM, checked to be Ed25519. */
export function readReleaseKey(path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TetherError(ErrorCode.BadConfig, `join: cannot read --release-key ${path}: ${messageOf(e)}`, { cause: e });
  }
  const problem = ed25519PublicKeyProblem(pem);
  if (problem) throw new TetherError(ErrorCode.BadConfig, `join: --release-key ${path}: ${problem}`);
  // Re-exported so comments or other text around the PEM block never reach the configuration.
  return createPublicKey({ key: pem, format: 'pem' }).export({ type: 'spki', format: 'pem' }).toString();
}

function checkUrl(value: string, protocols: string[], flag: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new TetherError(ErrorCode.BadConfig, `join: ${flag} ${JSON.stringify(value)} is not a URL`);
  }
  if (!protocols.includes(u.protocol)) throw new TetherError(ErrorCode.BadConfig, `join: ${flag} must be a ${protocols.join(' or ')}// URL, not ${value}`);
  return value.replace(/\/+$/, '');
}

export async function joinNode(o: JoinOptions): Promise<JoinResult> {
  const root = o.root ?? '/';
  const server = checkUrl(o.server, ['https:'], '--server');
  const token = parseBootstrapToken(o.token);
  const pin = parseCaCertHash(o.caCertHash);
  const nodeName = checkNodeName(o.nodeName ?? hostname().toLowerCase());
  const pool = o.pool === undefined ? undefined : checkPoolName(o.pool);
  const hubUrl = o.hubUrl === undefined ? undefined : checkUrl(o.hubUrl, ['wss:', 'ws:'], '--hub');
  if (o.upstreamViaHub && !hubUrl) throw new TetherError(ErrorCode.BadConfig, 'join: --upstream-via-hub needs --hub, the tunnel the agent\'s apiserver requests travel on');
  const releaseKey = o.releaseKeyFile === undefined ? undefined : readReleaseKey(o.releaseKeyFile);
  if (!existsSync(root)) throw new TetherError(ErrorCode.BadConfig, `join: --root ${root} does not exist`);
  if (readManifest(root, PATHS.manifest)) {
    throw new TetherError(ErrorCode.BadConfig, `join: this node has joined already (${join(root, PATHS.manifest)} exists); run \`tether-edge reset\` first`);
  }

  const cluster = await discoverCluster({ server, token, caCertHash: pin, timeoutMs: o.timeoutMs, log: o.log });
  const issued = await requestNodeCertificate({
    endpoint: { server, ca: cluster.caPem, token: token.value },
    nodeName,
    timeoutMs: o.timeoutMs,
    log: o.log,
  });

  const existing = (p: string) => (existsSync(join(root, p)) ? readFileSync(join(root, p), 'utf8') : undefined);
  const kubeletConf = existing(PATHS.kubeletKubeconfig);
  // The local CA of the agent's clients, and their certificates: the kubelet's and kube-proxy's.
  const localCa = createLocalCa(`tether-edge local CA (${nodeName})`);
  const ca = localCaFrom(PATHS.localCaDir, localCa.certPem, localCa.keyPem);
  const credsFor = (cn: string) => ({ caPem: localCa.certPem, ...ca.issue(cn, 'client') });
  const files: PlannedFile[] = [
    { path: PATHS.localCaCert, content: localCa.certPem, mode: 0o600 },
    { path: PATHS.localCaKey, content: localCa.keyPem, mode: 0o600 },
    {
      path: PATHS.kubeProxyKubeconfig,
      content: localKubeconfig('kube-proxy', credsFor('kube-proxy'), 'kube-proxy kubeconfig: kube-proxy talks to the tether-edge agent (point kube-proxy --kubeconfig here)'),
      mode: 0o600,
    },
    { path: PATHS.ca, content: cluster.caPem, mode: 0o600 },
    { path: PATHS.key, content: issued.keyPem, mode: 0o600 },
    { path: PATHS.cert, content: issued.certPem, mode: 0o600 },
    { path: PATHS.config, content: agentConfigYaml({ nodeName, server, hubUrl, upstreamViaHub: o.upstreamViaHub, releaseKey, binary: o.binary }), mode: 0o644 },
    { path: PATHS.unit, content: systemdUnit(o.binary), mode: 0o644 },
    { path: PATHS.kubeletKubeconfig, content: kubeletKubeconfig(credsFor('kubelet'), kubeletConf), mode: 0o600 },
  ];
  if (pool !== undefined) {
    files.push({ path: PATHS.kubeletEnv, content: kubeletEnv(pool, existing(PATHS.kubeletDefaults)), mode: 0o644 });
    files.push({ path: PATHS.kubeletDropIn, content: kubeletDropIn(), mode: 0o644 });
  }
  const plan: ChangePlan = {
    manifestPath: PATHS.manifest,
    backupDir: PATHS.backupDir,
    dirs: [
      { path: PATHS.etcDir, mode: 0o755, owned: false },
      { path: PATHS.pkiDir, mode: 0o700, owned: true },
      { path: PATHS.localCaDir, mode: 0o700, owned: true },
      { path: PATHS.backupDir, mode: 0o700, owned: true },
      { path: PATHS.dataDir, mode: 0o700, owned: true },
    ],
    files,
    meta: { node: nodeName, server, pool: pool ?? null, csr: issued.csrName, joinedAt: new Date().toISOString() },
  };
  const manifest = applyChanges(root, plan);
  const replaced = manifest.backups.map((b) => b.path);
  o.log.info('joined', { node: nodeName, server, csr: issued.csrName, replaced, releaseKeyPinned: releaseKey !== undefined });

  const next: string[] = [];
  const systemd = o.systemd ?? detectSystemd(root);
  if (systemd) {
    await systemd.systemctl(['daemon-reload']);
    const started = await systemd.systemctl(['enable', '--now', UNIT_NAME]);
    next.push(started.code === 0 ? `started ${UNIT_NAME}` : `could not start ${UNIT_NAME} (${started.output}); see journalctl -u ${UNIT_NAME}`);
    const kubelet = await systemd.systemctl(['try-restart', 'kubelet.service']);
    if (kubelet.code === 0) next.push('restarted kubelet.service if it was running');
  } else if (root === '/') {
    next.push(`start the agent: ${o.binary} run --config ${PATHS.config}`, `then (re)start the kubelet with --kubeconfig ${PATHS.kubeletKubeconfig}`);
  } else {
    next.push(`files written under ${root}; nothing was started`);
  }
  if (!releaseKey) next.push('no release key pinned: over-the-air upgrades will be refused (join with --release-key, or set releaseKey in the configuration; docs/install.md)');
  return { nodeName, server, csrName: issued.csrName, notAfter: issued.notAfter, written: manifest.files, replaced, next };
}
