/**
 * The full set of certificates a fresh cluster needs, with kubeadm's names and subjects:
 *
 *   ca                        cluster CA: client certificates, kubelet CSR signing, serving cert
 *   apiserver                 serving; SANs 127.0.0.1, the edge address, the kubernetes service IP,
 *                             localhost and the kubernetes.default.svc names
 *   apiserver-kubelet-client  the apiserver's client certificate towards kubelets (system:masters)
 *   front-proxy-ca/-client    request-header authentication for aggregated APIs
 *   admin                     kubernetes-admin in system:masters
 *   controller-manager        system:kube-controller-manager
 *   scheduler                 system:kube-scheduler
 *   apiserver-egress-client   the apiserver's client certificate towards the hub (only on request)
 *   sa.key / sa.pub           service-account token signing
 */
import { createCa, createRsaKeyPair, issueCert } from './pki.ts';
import type { ClusterLayout } from './state.ts';

export interface ClusterPkiOptions {
  edgeAddress: string;
  kubernetesServiceIp: string;
  /** Also issue `apiserver-egress-client` (CN kube-apiserver-egress) for an https hub without its own. */
  egressClient: boolean;
}

export async function createClusterPki(l: ClusterLayout, opts: ClusterPkiOptions): Promise<void> {
  await Promise.all([
    createCa(l.ca, 'kubernetes'),
    createCa(l.frontProxyCa, 'front-proxy-ca'),
    createRsaKeyPair(l.saKey, l.saPub),
  ]);
  const client = (cn: string, orgs: string[] = []) => ({ cn, orgs, usage: ['client' as const], days: 365 });
  await Promise.all([
    issueCert(l.ca, l.apiserver, {
      cn: 'kube-apiserver',
      usage: ['server'],
      ips: ['127.0.0.1', opts.edgeAddress, opts.kubernetesServiceIp],
      dnsNames: ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', 'localhost'],
      days: 365,
    }),
    issueCert(l.ca, l.kubeletClient, client('kube-apiserver-kubelet-client', ['system:masters'])),
    issueCert(l.frontProxyCa, l.frontProxyClient, client('front-proxy-client')),
    issueCert(l.ca, l.admin, client('kubernetes-admin', ['system:masters'])),
    issueCert(l.ca, l.controllerManager, client('system:kube-controller-manager')),
    issueCert(l.ca, l.scheduler, client('system:kube-scheduler')),
    ...(opts.egressClient ? [issueCert(l.ca, l.egressClient, client('kube-apiserver-egress'))] : []),
  ]);
}
