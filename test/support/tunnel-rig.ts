/**
 * The set-up the tunnel suites share: a control plane whose `cluster` egress goes to a hub's
 * CONNECT endpoint (chosen before the cluster starts, since kube-apiserver reads its egress
 * configuration once), the hub's own PKI, hub replicas as processes, and edge nodes: a site
 * behind a one-way firewall running the kubelet simulator, the edge services and the tunnel agent.
 *
 *   hub CA (this file)     serves the hub's listeners; agents and kube-apiserver trust it
 *   cluster CA             signs node certificates, kube-apiserver's egress client certificate
 *                          (CN kube-apiserver-egress), Prometheus' (CN prometheus) and the
 *                          replicas' peer certificate (CN tether-hub): the hub's clientCaFile
 */
import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCa, issueCert } from '../../scripts/cluster/pki.ts';
import { freePorts } from '../../scripts/cluster/ports.ts';
import { startCluster, type Cluster } from './cluster.ts';
import { spawnHub, type HubProcess } from './hub-process.ts';
import { CONTROL_PLANE_ADDRESS, createEdgeSite, type EdgeSite } from './netns.ts';
import { blockInbound } from './one-way-firewall.ts';

const simMain = fileURLToPath(new URL('./kubelet-sim/main.ts', import.meta.url));
const servicesMain = fileURLToPath(new URL('./edge-services.ts', import.meta.url));
const edgeMain = fileURLToPath(new URL('../../edge/main.ts', import.meta.url));

export interface LoggedProcess {
  child: ChildProcess;
  log: string[];
  /** Parsed JSON lines whose msg contains `text`. */
  lines(text: string): Record<string, unknown>[];
  stop(): Promise<void>;
}

export function spawnLogged(site: EdgeSite, cmd: string[]): LoggedProcess {
  const child = site.spawn(cmd);
  const log: string[] = [];
  const keep = (d: Buffer) => {
    log.push(...String(d).split('\n').filter(Boolean));
    log.splice(0, Math.max(0, log.length - 5000));
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
  return {
    child,
    log,
    lines: (text) =>
      log.flatMap((l) => {
        try {
          const j = JSON.parse(l) as Record<string, unknown>;
          return String(j.msg).includes(text) ? [j] : [];
        } catch {
          return [];
        }
      }),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface EdgeNode {
  name: string;
  site: EdgeSite;
  cert: { certFile: string; keyFile: string };
  sim: LoggedProcess;
  services: LoggedProcess;
  /** Ports inside the site: 127.0.0.1:echo echoes, 127.0.0.1:source never stops sending. */
  echoPort: number;
  sourcePort: number;
  metricsPort: number;
}

export interface TunnelRig {
  cluster: Cluster;
  dir: string;
  hubCaFile: string;
  /** CONNECT ports of the replicas, in order; kube-apiserver's egress uses the first. */
  connectPorts: number[];
  startHub(index: number, extra?: Record<string, unknown>): Promise<HubProcess>;
  startEdgeNode(name: string): Promise<EdgeNode>;
  /** The tunnel agent inside a node's site. */
  startAgent(node: EdgeNode, args: { hubs: string[]; nodeName?: string; cert?: { certFile: string; keyFile: string }; extraArgs?: string[] }): LoggedProcess;
  stop(): Promise<void>;
}

export async function startTunnelRig(opts: { replicas: number }): Promise<TunnelRig> {
  const dir = mkdtempSync(join(tmpdir(), 'tether-tunnel-'));
  const f = (n: string) => ({ certFile: join(dir, `${n}.crt`), keyFile: join(dir, `${n}.key`) });
  const hubCa = await createCa(f('hub-ca'), 'tether-hub-ca');
  const serving = await issueCert(hubCa, f('hub-serving'), { cn: 'tether-hub', usage: ['server'], ips: ['127.0.0.1', CONTROL_PLANE_ADDRESS], dnsNames: ['localhost'] });
  const connectPorts = await freePorts(opts.replicas);
  const cluster = await startCluster({ hub: { url: `https://127.0.0.1:${connectPorts[0]}`, caFile: hubCa.certFile } });
  const agentPorts = await freePorts(opts.replicas, CONTROL_PLANE_ADDRESS);
  const peer = await cluster.issueClientCert('tether-hub', []);
  const hubs: HubProcess[] = [];
  const nodes: EdgeNode[] = [];
  const agents: LoggedProcess[] = [];

  return {
    cluster,
    dir,
    hubCaFile: hubCa.certFile,
    connectPorts,
    async startHub(i, extra = {}) {
      const hub = await spawnHub(dir, `hub-${i}`, {
        replicaId: `hub-${i}`,
        controllers: { enabled: false }, // the tunnel suites test the tunnel; the pools suites run the controllers
        listen: `${CONTROL_PLANE_ADDRESS}:${agentPorts[i]}`,
        connectListen: `127.0.0.1:${connectPorts[i]}`,
        adminListen: '127.0.0.1:0',
        kubeconfig: cluster.adminKubeconfig,
        tlsCertFile: serving.certFile,
        tlsKeyFile: serving.keyFile,
        clientCaFile: cluster.caFile,
        peerCertFile: peer.certFile,
        peerKeyFile: peer.keyFile,
        peerCaFile: hubCa.certFile,
        scrapeUsers: ['prometheus'],
        heartbeatSeconds: 2,
        shutdownGraceSeconds: 2,
        ...extra,
      });
      hubs.push(hub);
      return hub;
    },
    async startEdgeNode(name) {
      const site = await createEdgeSite(`tun-${process.pid % 100000}-${nodes.length}`);
      await blockInbound(site);
      const cert = await cluster.issueClientCert(`system:node:${name}`, ['system:nodes']);
      const sim = spawnLogged(site, [process.execPath, simMain, '--node-name', name, '--server', cluster.edgeServer,
        '--ca', cluster.caFile, '--cert', cert.certFile, '--key', cert.keyFile, '--address', site.address]);
      const [echoPort, sourcePort, metricsPort] = [7001, 7002, 9100];
      const services = spawnLogged(site, [process.execPath, servicesMain, '--echo', String(echoPort), '--source', String(sourcePort), '--metrics', `${site.address}:${metricsPort}`]);
      const node: EdgeNode = { name, site, cert, sim, services, echoPort, sourcePort, metricsPort };
      nodes.push(node);
      return node;
    },
    startAgent(node, args) {
      const cert = args.cert ?? node.cert;
      // The real agent, `tether-edge run`, with its tunnel to the hub(s); its proxy and admin ports are
      // picked free so that several agents (refusal cases) can run in one site.
      const agent = spawnLogged(node.site, [process.execPath, edgeMain, 'run', '--node-name', args.nodeName ?? node.name,
        '--hub-urls', args.hubs.join(','), '--hub-ca-file', hubCa.certFile, '--tunnel-ports', String(node.metricsPort),
        '--servers', cluster.edgeServer, '--ca-file', cluster.caFile, '--cert-file', cert.certFile, '--key-file', cert.keyFile,
        '--rotate-certificates', 'false', '--data-dir', join(dir, `agent-${agents.length}`), '--listen', '127.0.0.1:0',
        '--admin-listen', '127.0.0.1:0', ...(args.extraArgs ?? [])]);
      agents.push(agent);
      return agent;
    },
    async stop() {
      await Promise.all(agents.map((a) => a.stop()));
      await Promise.all(hubs.map((h) => h.stop('SIGKILL')));
      for (const n of nodes) {
        await n.sim.stop();
        await n.services.stop();
        await n.site.destroy();
      }
      await cluster.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
