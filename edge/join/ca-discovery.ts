/**
 * Discovery: learning the cluster CA from `kube-public/cluster-info` without trusting anything
 * yet, as kubeadm's token discovery does.
 *
 *   1. GET cluster-info anonymously, without verifying the server (the CA is not known yet).
 *   2. Its `jws-kubeconfig-<token id>` entry must be a valid detached JWS (HS256, keyed with the
 *      token secret; kube-controller-manager's bootstrap signer writes it) over the `kubeconfig`
 *      entry: proves the ConfigMap comes from a cluster that knows the token.
 *   3. The CA in that kubeconfig must match the pinned hash: proves it is the cluster the operator
 *      meant (the token alone could have leaked).
 *   4. GET cluster-info again, now verifying the server with that CA, and expect the same content.
 *
 * Any mismatch refuses at once. A missing signature and an unreachable server are retried until
 * the timeout (the signer needs a moment for a new token; edge links drop), then refused.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { ErrorCode, TetherError, isTetherError, messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { type KubeEndpoint, type KubeReply, kubeRequest } from '../certs/kube-https.ts';
import { splitPem } from '../certs/request-cert.ts';
import { type BootstrapToken, caCertHash, sameDigest } from './token.ts';

const CLUSTER_INFO = '/api/v1/namespaces/kube-public/configmaps/cluster-info';

export interface DiscoveryOptions {
  server: string;
  token: BootstrapToken;
  /** Pinned hash, hex (from parseCaCertHash). */
  caCertHash: string;
  timeoutMs: number;
  pollMs?: number;
  log: Logger;
}

export interface DiscoveredCluster {
  /** The CA bundle, trusted from here on. */
  caPem: string;
  /** The server cluster-info advertises (informational: join keeps using --server). */
  advertisedServer?: string;
}

/** Verifies a detached JWS (`<header>..<signature>`) over `content`, kubeadm style. */
export function verifyDetachedJws(jws: string, content: string, token: BootstrapToken): boolean {
  const parts = jws.split('.');
  if (parts.length !== 3 || parts[1] !== '') return false;
  let header: { alg?: unknown; kid?: unknown };
  try {
    header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
  } catch {
    return false;
  }
  if (header.alg !== 'HS256' || header.kid !== token.id) return false;
  const expected = createHmac('sha256', token.secret)
    .update(`${parts[0]}.${Buffer.from(content, 'utf8').toString('base64url')}`)
    .digest();
  const given = Buffer.from(parts[2]!, 'base64url');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function kubeconfigOf(r: KubeReply): string {
  const k = r.body?.data?.kubeconfig;
  if (typeof k !== 'string') throw new TetherError(ErrorCode.BadConfig, 'discovery: cluster-info has no kubeconfig entry; is this a kubeadm-style cluster?');
  return k;
}

function caFromKubeconfig(text: string): { caPem: string; server?: string } {
  let cluster: Record<string, unknown> | undefined;
  try {
    const doc = parseYaml(text) as { clusters?: { cluster?: Record<string, unknown> }[] };
    cluster = doc.clusters?.[0]?.cluster;
  } catch (e) {
    throw new TetherError(ErrorCode.BadConfig, `discovery: the kubeconfig in cluster-info does not parse: ${messageOf(e)}`, { cause: e });
  }
  const data = cluster?.['certificate-authority-data'];
  if (typeof data !== 'string') throw new TetherError(ErrorCode.BadConfig, 'discovery: the kubeconfig in cluster-info holds no certificate-authority-data');
  const caPem = Buffer.from(data, 'base64').toString('utf8');
  if (splitPem(caPem).length === 0) throw new TetherError(ErrorCode.BadConfig, 'discovery: the CA in cluster-info is not a PEM certificate');
  return { caPem, server: typeof cluster?.server === 'string' ? cluster.server : undefined };
}

export async function discoverCluster(o: DiscoveryOptions): Promise<DiscoveredCluster> {
  const insecure: KubeEndpoint = { server: o.server, insecure: true };
  const deadline = Date.now() + o.timeoutMs;
  let waitingFor: TetherError | undefined;
  for (;;) {
    let r: KubeReply | undefined;
    try {
      r = await kubeRequest(insecure, 'GET', CLUSTER_INFO, undefined, Math.max(1000, Math.min(10_000, deadline - Date.now())));
    } catch (e) {
      if (!isTetherError(e, ErrorCode.UpstreamUnavailable)) throw e;
      waitingFor = new TetherError(
        ErrorCode.UpstreamUnavailable,
        `discovery: cannot reach ${o.server} (${messageOf(e)}); check --server (the kube-apiserver address as this node reaches it, https://<host>:6443) and the network between this node and the cluster`,
        { cause: e },
      );
    }
    if (r) {
      if (r.status === 404) throw new TetherError(ErrorCode.BadConfig, `discovery: ${o.server} has no kube-public/cluster-info ConfigMap; is --server a kube-apiserver of a cluster prepared for joining (kubeadm creates it)?`);
      if (r.status === 401 || r.status === 403) throw new TetherError(ErrorCode.BadConfig, `discovery: ${o.server} does not let anonymous clients read kube-public/cluster-info (HTTP ${r.status})`);
      if (r.status !== 200) throw new TetherError(ErrorCode.BadConfig, `discovery: GET cluster-info from ${o.server}: HTTP ${r.status}`);
      const kubeconfig = kubeconfigOf(r);
      const jws = r.body?.data?.[`jws-kubeconfig-${o.token.id}`];
      if (typeof jws !== 'string') {
        waitingFor = new TetherError(
          ErrorCode.BadConfig,
          `discovery: the cluster does not know token id ${o.token.id} (cluster-info has no signature for it): the token is mistyped, expired or deleted; create a fresh one on the hub with \`tether-hub token create\``,
        );
      } else {
        return verified(o, kubeconfig, jws);
      }
    }
    if (Date.now() >= deadline) throw waitingFor!;
    o.log.debug('discovery: retrying', { reason: waitingFor?.message });
    await new Promise((res) => setTimeout(res, Math.min(o.pollMs ?? 1000, Math.max(0, deadline - Date.now()))));
  }
}

async function verified(o: DiscoveryOptions, kubeconfig: string, jws: string): Promise<DiscoveredCluster> {
  if (!verifyDetachedJws(jws, kubeconfig, o.token)) {
    throw new TetherError(
      ErrorCode.BadConfig,
      `discovery: token ${o.token.id}.… does not match the cluster's signature of cluster-info: the secret part of --token (after the dot) is wrong; copy the join command again from \`tether-hub token create\``,
    );
  }
  const { caPem, server } = caFromKubeconfig(kubeconfig);
  const hashes = splitPem(caPem).map(caCertHash);
  if (!hashes.some((h) => sameDigest(h.slice('sha256:'.length), o.caCertHash))) {
    throw new TetherError(
      ErrorCode.BadConfig,
      `discovery: the cluster's CA does not match --ca-cert-hash sha256:${o.caCertHash} (its CA is ${hashes.join(', ')}); check the hash against \`tether-hub token create\` on the hub; if --server is not the cluster you meant, do not join it`,
    );
  }
  // The CA is trusted now: the same content must come over a verified connection.
  let again: KubeReply;
  try {
    again = await kubeRequest({ server: o.server, ca: caPem }, 'GET', CLUSTER_INFO);
  } catch (e) {
    throw new TetherError(ErrorCode.BadConfig, `discovery: ${o.server} does not present a certificate of the pinned CA: ${messageOf(e)}`, { cause: e });
  }
  if (again.status !== 200 || kubeconfigOf(again) !== kubeconfig) {
    throw new TetherError(ErrorCode.BadConfig, `discovery: cluster-info read over the verified connection differs (HTTP ${again.status}); retry the join`);
  }
  o.log.info('discovery: cluster CA verified', { server: o.server, advertised: server });
  return { caPem, advertisedServer: server };
}
