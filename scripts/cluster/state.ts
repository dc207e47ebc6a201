/**
 * The on-disk layout of a cluster's state directory and `cluster.json`, the file that lets a
 * test run (or the demo) find and use a cluster another process started.
 *
 *   <dir>/.tether-cluster          marker: the directory belongs to a Tether test cluster
 *   <dir>/cluster.json             ClusterState, present while the cluster runs
 *   <dir>/pki/                     CAs, serving and client certificates, service-account keys
 *   <dir>/clients/                 client certificates issued later (tests)
 *   <dir>/etcd/                    etcd data
 *   <dir>/logs/<component>.log     stdout and stderr of each component
 *   <dir>/*.kubeconfig             admin, controller-manager, scheduler
 *   <dir>/egress-selector.yaml     only with a hub
 */
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { CertFiles } from './pki.ts';

export function clusterLayout(dir: string) {
  const pki = join(dir, 'pki');
  const pair = (name: string): CertFiles => ({ certFile: join(pki, `${name}.crt`), keyFile: join(pki, `${name}.key`) });
  return {
    dir,
    marker: join(dir, '.tether-cluster'),
    stateFile: join(dir, 'cluster.json'),
    pki,
    clients: join(dir, 'clients'),
    etcdData: join(dir, 'etcd'),
    logs: join(dir, 'logs'),
    ca: pair('ca'),
    apiserver: pair('apiserver'),
    kubeletClient: pair('apiserver-kubelet-client'),
    frontProxyCa: pair('front-proxy-ca'),
    frontProxyClient: pair('front-proxy-client'),
    admin: pair('admin'),
    controllerManager: pair('controller-manager'),
    scheduler: pair('scheduler'),
    egressClient: pair('apiserver-egress-client'),
    saKey: join(pki, 'sa.key'),
    saPub: join(pki, 'sa.pub'),
    adminKubeconfig: join(dir, 'admin.kubeconfig'),
    controllerManagerKubeconfig: join(dir, 'controller-manager.kubeconfig'),
    schedulerKubeconfig: join(dir, 'scheduler.kubeconfig'),
    egressSelector: join(dir, 'egress-selector.yaml'),
  };
}
export type ClusterLayout = ReturnType<typeof clusterLayout>;

const port = z.number().int().min(1).max(65535);

export const clusterStateSchema = z.object({
  version: z.literal(1).describe('Format version of this file'),
  dir: z.string().describe('State directory'),
  ownerPid: z.number().int().describe('Process that started the cluster and stops it'),
  startedAt: z.string().describe('ISO time the cluster became ready'),
  kubernetesVersion: z.string().describe('gitVersion reported by /version'),
  binDir: z.string().describe('Folder holding the control-plane binaries'),
  server: z.string().describe('Apiserver URL on loopback, https://127.0.0.1:<port>'),
  edgeServer: z.string().describe('Apiserver URL edge namespaces use, https://198.18.0.1:<port>'),
  edgeAddress: z.string().describe('Address of the apiserver for edge namespaces'),
  serviceCidr: z.string().describe('Service cluster IP range'),
  kubernetesServiceIp: z.string().describe('ClusterIP of default/kubernetes'),
  ports: z
    .object({ apiserver: port, etcdClient: port, etcdPeer: port, controllerManager: port, scheduler: port })
    .describe('Listening ports (apiserver on all addresses, the rest on 127.0.0.1)'),
  files: z
    .object({
      caCert: z.string(),
      caKey: z.string(),
      adminCert: z.string(),
      adminKey: z.string(),
      adminKubeconfig: z.string(),
      frontProxyCaCert: z.string(),
      saKey: z.string(),
      saPub: z.string(),
      egressSelector: z.string().optional(),
    })
    .describe('PKI and config files'),
  pids: z
    .object({ etcd: z.number(), apiserver: z.number(), controllerManager: z.number(), scheduler: z.number() })
    .describe('Process ids (each the leader of its own process group)'),
  logs: z
    .object({ etcd: z.string(), apiserver: z.string(), controllerManager: z.string(), scheduler: z.string() })
    .describe('Log file of each component'),
});
export type ClusterState = z.infer<typeof clusterStateSchema>;

export function writeClusterState(file: string, state: ClusterState): void {
  writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
}

export function readClusterState(file: string): ClusterState {
  return clusterStateSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
}
