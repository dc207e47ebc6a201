/**
 * Where the hub learns about nodes and records its leases: the apiserver (`kubeHubBackend`), or a
 * fixed list of nodes without leases or token reviews (`staticHubBackend`, for benchmarks and
 * tests of one replica without a control plane).
 */
import type { Logger } from '../../shared/log.ts';
import { loadKubeConfig, makeClients } from '../kube/client.ts';
import type { TokenReview } from './identity.ts';
import { createKubeLeaseApi, getNodeAddresses, kubeTokenReview, watchLeases, watchNodes, watchServices, type Watching } from './kube-backend.ts';
import type { LeaseApi, LeaseView } from './leases.ts';
import type { NodeDirectory } from './node-directory.ts';

export interface HubBackend {
  watchNodes(directory: NodeDirectory): Watching;
  /** Services' ClusterIPs and names, which no node's tunnel may carry (absent: none known). */
  watchServices?(directory: NodeDirectory): Watching;
  /** A node's addresses, or undefined when there is no such Node. */
  nodeAddresses(name: string): Promise<string[] | undefined>;
  /** Absent: one replica, no Leases. */
  leases?: { api: LeaseApi; watch(view: LeaseView): Watching };
  tokenReview?: (token: string) => Promise<TokenReview>;
}

export function kubeHubBackend(opts: { kubeconfig?: string; leaseNamespace: string; log: Logger }): HubBackend {
  const kc = loadKubeConfig(opts.kubeconfig);
  const clients = makeClients(kc);
  const log = opts.log.child({ part: 'kube' });
  return {
    watchNodes: (directory) => watchNodes(kc, clients, directory, log),
    watchServices: (directory) => watchServices(kc, clients, directory, log),
    nodeAddresses: (name) => getNodeAddresses(clients, name),
    leases: {
      api: createKubeLeaseApi(clients, opts.leaseNamespace, log),
      watch: (view) => watchLeases(kc, clients, opts.leaseNamespace, view, log),
    },
    tokenReview: kubeTokenReview(clients),
  };
}

export function staticHubBackend(nodes: Record<string, string[]>): HubBackend {
  const synced: Watching = { synced: Promise.resolve(), healthy: true, stop: async () => {} };
  return {
    watchNodes(directory) {
      for (const [name, addresses] of Object.entries(nodes)) directory.setNode(name, addresses);
      return synced;
    },
    nodeAddresses: async (name) => nodes[name],
  };
}
