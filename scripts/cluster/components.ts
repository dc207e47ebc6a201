/**
 * Command lines of etcd, kube-apiserver, kube-controller-manager and kube-scheduler, close to
 * what kubeadm writes into its static pod manifests. Extra arguments come last: for repeated
 * scalar flags the last one wins, so callers can override any default here.
 */
import { join } from 'node:path';
import type { ProcessSpec } from './supervisor.ts';
import type { ClusterLayout } from './state.ts';

export interface ComponentPorts {
  apiserver: number;
  etcdClient: number;
  etcdPeer: number;
  controllerManager: number;
  scheduler: number;
}

export interface ComponentConfig {
  binDir: string;
  layout: ClusterLayout;
  ports: ComponentPorts;
  /** Address the apiserver advertises (the kubernetes Service endpoint), reachable from edge namespaces. */
  advertiseAddress: string;
  serviceCidr: string;
  withEgressSelector: boolean;
  nodeMonitorGracePeriod: string;
  clusterSigningDuration: string;
  apiserverArgs: string[];
  controllerManagerArgs: string[];
  schedulerArgs: string[];
}

const loop = '127.0.0.1';

export function etcdSpec(c: ComponentConfig): ProcessSpec {
  const client = `http://${loop}:${c.ports.etcdClient}`;
  const peer = `http://${loop}:${c.ports.etcdPeer}`;
  return {
    name: 'etcd',
    command: join(c.binDir, 'etcd'),
    logFile: join(c.layout.logs, 'etcd.log'),
    args: [
      '--name=default',
      `--data-dir=${c.layout.etcdData}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=default=${peer}`,
      '--initial-cluster-state=new',
      // Throwaway data: skipping fsync makes a test cluster much faster on slow disks.
      '--unsafe-no-fsync',
    ],
  };
}

export function apiserverSpec(c: ComponentConfig): ProcessSpec {
  const l = c.layout;
  return {
    name: 'kube-apiserver',
    command: join(c.binDir, 'kube-apiserver'),
    logFile: join(l.logs, 'kube-apiserver.log'),
    args: [
      `--etcd-servers=http://${loop}:${c.ports.etcdClient}`,
      '--bind-address=0.0.0.0',
      `--secure-port=${c.ports.apiserver}`,
      `--advertise-address=${c.advertiseAddress}`,
      `--tls-cert-file=${l.apiserver.certFile}`,
      `--tls-private-key-file=${l.apiserver.keyFile}`,
      `--client-ca-file=${l.ca.certFile}`,
      '--enable-bootstrap-token-auth=true',
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      '--allow-privileged=true',
      `--service-cluster-ip-range=${c.serviceCidr}`,
      `--kubelet-client-certificate=${l.kubeletClient.certFile}`,
      `--kubelet-client-key=${l.kubeletClient.keyFile}`,
      '--kubelet-preferred-address-types=InternalIP,Hostname',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${l.saPub}`,
      `--service-account-signing-key-file=${l.saKey}`,
      `--proxy-client-cert-file=${l.frontProxyClient.certFile}`,
      `--proxy-client-key-file=${l.frontProxyClient.keyFile}`,
      `--requestheader-client-ca-file=${l.frontProxyCa.certFile}`,
      '--requestheader-allowed-names=front-proxy-client',
      '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      '--requestheader-group-headers=X-Remote-Group',
      '--requestheader-username-headers=X-Remote-User',
      ...(c.withEgressSelector ? [`--egress-selector-config-file=${l.egressSelector}`] : []),
      ...c.apiserverArgs,
    ],
  };
}

export function controllerManagerSpec(c: ComponentConfig): ProcessSpec {
  const l = c.layout;
  return {
    name: 'kube-controller-manager',
    command: join(c.binDir, 'kube-controller-manager'),
    logFile: join(l.logs, 'kube-controller-manager.log'),
    args: [
      `--kubeconfig=${l.controllerManagerKubeconfig}`,
      `--authentication-kubeconfig=${l.controllerManagerKubeconfig}`,
      `--authorization-kubeconfig=${l.controllerManagerKubeconfig}`,
      `--bind-address=${loop}`,
      `--secure-port=${c.ports.controllerManager}`,
      '--leader-elect=false',
      '--controllers=*,bootstrapsigner,tokencleaner',
      '--use-service-account-credentials=true',
      `--root-ca-file=${l.ca.certFile}`,
      `--service-account-private-key-file=${l.saKey}`,
      `--cluster-signing-cert-file=${l.ca.certFile}`,
      `--cluster-signing-key-file=${l.ca.keyFile}`,
      `--cluster-signing-duration=${c.clusterSigningDuration}`,
      `--requestheader-client-ca-file=${l.frontProxyCa.certFile}`,
      `--service-cluster-ip-range=${c.serviceCidr}`,
      `--node-monitor-grace-period=${c.nodeMonitorGracePeriod}`,
      // Each controller gets its own service-account credentials at start; the default client
      // rate limit (20 qps) spreads that over ~5 s. A test cluster wants its controllers now.
      '--kube-api-qps=200',
      '--kube-api-burst=400',
      ...c.controllerManagerArgs,
    ],
  };
}

export function schedulerSpec(c: ComponentConfig): ProcessSpec {
  const l = c.layout;
  return {
    name: 'kube-scheduler',
    command: join(c.binDir, 'kube-scheduler'),
    logFile: join(l.logs, 'kube-scheduler.log'),
    args: [
      `--kubeconfig=${l.schedulerKubeconfig}`,
      `--authentication-kubeconfig=${l.schedulerKubeconfig}`,
      `--authorization-kubeconfig=${l.schedulerKubeconfig}`,
      `--bind-address=${loop}`,
      `--secure-port=${c.ports.scheduler}`,
      '--leader-elect=false',
      ...c.schedulerArgs,
    ],
  };
}
