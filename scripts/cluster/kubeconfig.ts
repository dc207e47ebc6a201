/**
 * Kubeconfig files: one cluster, one user, one context, as kubeadm writes them. Client
 * certificates are referenced by path (so a kubeconfig stays valid while its files exist);
 * the cluster-info kubeconfig embeds the CA because it travels inside a ConfigMap.
 */
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';

export interface KubeconfigSpec {
  server: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  user: string;
  clusterName?: string;
}

export function kubeconfigText(spec: KubeconfigSpec): string {
  const cluster = spec.clusterName ?? 'tether';
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: cluster, cluster: { server: spec.server, 'certificate-authority': spec.caFile } }],
    users: [{ name: spec.user, user: { 'client-certificate': spec.certFile, 'client-key': spec.keyFile } }],
    contexts: [{ name: `${spec.user}@${cluster}`, context: { cluster, user: spec.user } }],
    'current-context': `${spec.user}@${cluster}`,
    preferences: {},
  });
}

export function writeKubeconfig(file: string, spec: KubeconfigSpec): string {
  writeFileSync(file, kubeconfigText(spec), { mode: 0o600 });
  return file;
}

/**
 * The kubeconfig published in `kube-public/cluster-info`: the CA inline, the server, no user.
 * The cluster name is empty, as kubeadm publishes it (the bootstrap signer signs this text).
 */
export function clusterInfoKubeconfig(server: string, caPem: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name: '', cluster: { 'certificate-authority-data': Buffer.from(caPem).toString('base64'), server } },
    ],
    contexts: [],
    'current-context': '',
    preferences: {},
    users: [],
  });
}
