/**
 * createKubeletSim: wires the simulator's parts together, in the order the kubelet starts them.
 * Everything runs at once, as in the kubelet: the HTTPS server (exec, attach and port-forward
 * upgrades go to ./streams/ with the runtime of runtime.ts), the list-watches (its pods, its
 * Node, all Services), node registration (retried 100 ms doubling to 7 s until it succeeds, then
 * the node status heartbeat), the Lease renewer, and the log ticker. A link that is down at
 * start is fine: each loop keeps retrying on its own.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { messageOf } from '../../../shared/errors.ts';
import { createLogger, type Logger } from '../../../shared/log.ts';
import { createApiClient } from './api-client.ts';
import { createEventRecorder, nodeRef } from './events.ts';
import { createLeaseRenewer } from './lease.ts';
import { createLogStore } from './logs.ts';
import { createMetrics } from './metrics.ts';
import { postNodeStatus, registerNode, type NodeIdentity } from './node.ts';
import { createPodManager, type PodInfo, type PodManager } from './pods.ts';
import { createReferencedObjects } from './referenced-objects.ts';
import { createSimRuntime } from './runtime.ts';
import { createKubeletServer } from './server.ts';
import { selfSignedServingCert } from './serving-cert.ts';
import { handleStreamUpgrade } from './streams/index.ts';
import { createObjectStore, createReflector, type Reflector } from './watch.ts';

export interface KubeletSimOptions {
  nodeName: string;
  /** https://… (kube-apiserver, with certPem/keyPem) or http://127.0.0.1:10261 (the edge agent). */
  server: string;
  caPem?: string;
  certPem?: string;
  keyPem?: string;
  /** The node's InternalIP; the HTTPS server listens there too. */
  address: string;
  /** Default 10250; 0 picks a free port (then reported as the node's kubelet port). */
  port?: number;
  servingCertPem?: string;
  servingKeyPem?: string;
  log?: Logger;
  leaseIntervalMs?: number;
  statusIntervalMs?: number;
  logIntervalMs?: number;
}

export interface KubeletSim {
  nodeName: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  pods(): PodInfo[];
  /** The HTTPS port, once started. */
  port(): number;
  /** Resolves once the Node is registered. */
  registered: Promise<void>;
  services(): any[];
  /** "configmaps/<ns>/<name>", "secrets/<ns>/<name>" currently watched. */
  watchedObjects(): string[];
}

/** Reads PEM files given as paths (the CLI's --ca/--cert/--key). */
export const readPemFile = (path?: string) => (path ? readFileSync(path, 'utf8') : undefined);

export function createKubeletSim(o: KubeletSimOptions): KubeletSim {
  const log = o.log ?? createLogger().child({ node: o.nodeName });
  const metrics = createMetrics(o.nodeName, new URL(o.server).host);
  const client = createApiClient({ ...o, onResult: (m, code) => metrics.request(m, code) });
  const recordEvent = createEventRecorder(client, o.nodeName, log);
  const logs = createLogStore();
  const refs = createReferencedObjects(client, log);
  const services = createObjectStore();
  const nodes = createObjectStore();
  const pods: PodManager = createPodManager({
    client, nodeName: o.nodeName, hostIP: o.address, log: log.child({ of: 'pods' }), logs, refs, recordEvent,
    onPodStarted: () => metrics.podStarted(),
  });
  const runtime = createSimRuntime(pods);
  const reflectors: Reflector[] = [
    createReflector({ client, path: '/api/v1/pods', fieldSelector: `spec.nodeName=${o.nodeName}`, log,
      replace: (items) => pods.replace(items), event: (t, p) => pods.event(t, p) }),
    createReflector({ client, path: '/api/v1/nodes', fieldSelector: `metadata.name=${o.nodeName}`, log,
      replace: (items) => nodes.replace(items), event: (t, n) => nodes.apply(t, n) }),
    createReflector({ client, path: '/api/v1/services', log,
      replace: (items) => services.replace(items), event: (t, s) => services.apply(t, s) }),
  ];
  let nodeUid: string | undefined;
  const lease = createLeaseRenewer({
    client, nodeName: o.nodeName, log: log.child({ of: 'lease' }), intervalMs: o.leaseIntervalMs,
    nodeUid: () => nodes.get('', o.nodeName)?.metadata?.uid ?? nodeUid,
  });
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => (timers.delete(t), fn()), ms);
    timers.add(t);
  };
  let stopped = false;
  let port = o.port ?? 10250;
  let markRegistered: () => void = () => {};
  const registered = new Promise<void>((r) => (markRegistered = r));
  let server: ReturnType<typeof createKubeletServer> | undefined;
  let ticker: ReturnType<typeof setInterval> | undefined;

  const identity = (): NodeIdentity => ({ nodeName: o.nodeName, address: o.address, port });

  function register(attempt = 0): void {
    if (stopped) return;
    registerNode(client, identity(), new Date())
      .then((node) => {
        nodeUid = node?.metadata?.uid;
        log.info('node registered', { uid: nodeUid });
        recordEvent(nodeRef(o.nodeName), 'Starting', 'Starting kubelet.');
        markRegistered();
        heartbeat(true);
      })
      .catch((e: unknown) => {
        log.warn('register node failed', { error: messageOf(e), attempt });
        later(Math.min(7000, 100 * 2 ** attempt), () => register(attempt + 1));
      });
  }

  /** Node status every statusIntervalMs; a full status after start and after a failure. */
  function heartbeat(full: boolean): void {
    if (stopped) return;
    postNodeStatus(client, identity(), new Date(), full)
      .then((node) => {
        const ready = node?.status?.conditions?.find((c: any) => c.type === 'Ready');
        if (full) recordEvent(nodeRef(o.nodeName), 'NodeReady', `Node ${o.nodeName} status is now: NodeReady`);
        log.debug('node status posted', { ready: ready?.status });
        later(o.statusIntervalMs ?? 10_000, () => heartbeat(false));
      })
      .catch((e: unknown) => {
        log.warn('node status failed', { error: messageOf(e) });
        later(o.statusIntervalMs ?? 10_000, () => heartbeat(true));
      });
  }

  return {
    nodeName: o.nodeName,
    registered,
    async start() {
      const cert = o.servingCertPem && o.servingKeyPem
        ? { certPem: o.servingCertPem, keyPem: o.servingKeyPem }
        : selfSignedServingCert(o.nodeName, o.address);
      const streamLog = log.child({ of: 'streams' });
      const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => handleStreamUpgrade(req, socket, head, runtime, streamLog);
      server = createKubeletServer({
        address: o.address, port, ...cert, log: log.child({ of: 'server' }), logs, upgrade,
        apiPods: () => pods.apiPods(),
        metrics: () => metrics.render({ runningPods: pods.pods().length, runningContainers: logs.runningContainers() }),
      });
      port = await server.listen();
      log.info('kubelet simulator serving', { address: o.address, port, apiserver: o.server });
      for (const r of reflectors) r.start();
      register();
      lease.start();
      ticker = setInterval(() => logs.tick(), o.logIntervalMs ?? 1000);
    },
    async stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      clearInterval(ticker);
      lease.stop();
      pods.stop();
      runtime.close();
      await Promise.all([...reflectors.map((r) => r.stop()), refs.stop(), server?.close()]);
      log.info('kubelet simulator stopped');
    },
    pods: () => pods.pods(),
    port: () => port,
    services: () => services.list(),
    watchedObjects: () => refs.watched(),
  };
}
