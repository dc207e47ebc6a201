/**
 * Reads what the simulator needs from a kubeconfig, as the kubelet's --kubeconfig does: the current
 * context's server, its CA, and its user's client certificate and key (inline `-data` or files).
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

export interface KubeconfigCredentials {
  server: string;
  caPem?: string;
  certPem?: string;
  keyPem?: string;
}

type Named<T> = { name: string } & T;

export function readKubeconfig(path: string): KubeconfigCredentials {
  const doc = parseYaml(readFileSync(path, 'utf8')) as {
    'current-context'?: string;
    contexts?: Named<{ context: { cluster: string; user: string } }>[];
    clusters?: Named<{ cluster: Record<string, string> }>[];
    users?: Named<{ user: Record<string, string> }>[];
  };
  const ctx = doc.contexts?.find((c) => c.name === doc['current-context']) ?? doc.contexts?.[0];
  const cluster = doc.clusters?.find((c) => c.name === ctx?.context.cluster)?.cluster ?? doc.clusters?.[0]?.cluster;
  const user = doc.users?.find((u) => u.name === ctx?.context.user)?.user ?? {};
  if (!cluster?.server) throw new Error(`${path}: no cluster server`);
  const pem = (data?: string, file?: string) => (data ? Buffer.from(data, 'base64').toString('utf8') : file ? readFileSync(file, 'utf8') : undefined);
  return {
    server: cluster.server,
    caPem: pem(cluster['certificate-authority-data'], cluster['certificate-authority']),
    certPem: pem(user['client-certificate-data'], user['client-certificate']),
    keyPem: pem(user['client-key-data'], user['client-key']),
  };
}
