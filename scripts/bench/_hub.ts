/**
 * tether-hub for a benchmark run: its own serving PKI in `work`, the tether-hub ServiceAccount with
 * deploy/'s RBAC, api streams on and unregistered nodes admitted (via-hub nodes register through their
 * tunnel). Killed when the benchmark process exits, however it ends.
 */
import { join } from 'node:path';
import { createCa, issueCert } from '../cluster/pki.ts';
import { freePorts } from '../cluster/ports.ts';
import { hubKubeconfig, type Cluster } from '../../test/support/cluster.ts';
import { spawnHub, type HubProcess } from '../../test/support/hub-process.ts';
import { CONTROL_PLANE_ADDRESS } from '../../test/support/netns.ts';

export interface BenchHub {
  hub: HubProcess;
  /** The agent port on CONTROL_PLANE_ADDRESS (what a via-hub site's firewall lets through). */
  port: number;
  caFile: string;
}

export async function startBenchHub(cluster: Cluster, work: string, name: string): Promise<BenchHub> {
  const ca = await createCa({ certFile: join(work, 'hub-ca.crt'), keyFile: join(work, 'hub-ca.key') }, 'tether-hub-ca');
  const serving = await issueCert(ca, { certFile: join(work, 'hub.crt'), keyFile: join(work, 'hub.key') }, { cn: 'tether-hub', usage: ['server'], ips: ['127.0.0.1', CONTROL_PLANE_ADDRESS] });
  const [port, connectPort] = [(await freePorts(1, CONTROL_PLANE_ADDRESS))[0]!, (await freePorts(1))[0]!];
  const hub = await spawnHub(work, name, {
    replicaId: name, controllers: { enabled: false }, logLevel: 'warn', admitUnregisteredNodes: true,
    listen: `${CONTROL_PLANE_ADDRESS}:${port}`, connectListen: `127.0.0.1:${connectPort}`, adminListen: '127.0.0.1:0',
    kubeconfig: await hubKubeconfig(cluster), tlsCertFile: serving.certFile, tlsKeyFile: serving.keyFile, clientCaFile: cluster.caFile,
  });
  process.on('exit', () => hub.child.kill('SIGKILL'));
  return { hub, port, caFile: ca.certFile };
}
