/**
 * The hub's tunnel parts meet the apiserver here, through cloud/kube/client.ts only:
 * - a Node informer feeding the node directory (addresses of every node);
 * - a Service informer feeding it the Services' ClusterIPs and names, which no node may claim;
 * - a Lease informer (label tether.dev/role=tunnel, one namespace) feeding the lease view;
 * - the LeaseApi the keeper writes with (creating the namespace when it is missing);
 * - TokenReview for bearer tokens; a direct Node GET for a node the informer has not seen yet;
 * - for api streams, Services and NodePools feeding the topology filter (`watchTopology`).
 *
 * Informers that fail (a watch error, the apiserver away) are restarted with a growing delay
 * (1 s doubling to 30 s); the directory and view keep their last state meanwhile.
 */
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import {
  type Informer,
  type KubeClients,
  type KubeConfig,
  type KubernetesObject,
  type V1Lease,
  type V1Node,
  kube,
  makeClients,
  makeInformer,
  statusCodeOf,
} from '../kube/client.ts';
import type { TokenReview } from './identity.ts';
import { ADDRESS_ANNOTATION, CREDENTIAL_ANNOTATION, LEASE_ROLE, LEASE_ROLE_LABEL, type LeaseApi, type LeaseState, type LeaseView, NODE_ANNOTATION } from './leases.ts';
import type { NodeDirectory } from './node-directory.ts';

export interface Watching {
  /** Resolves after the first list. */
  synced: Promise<void>;
  readonly healthy: boolean;
  stop(): Promise<void>;
}

function run<T extends KubernetesObject>(what: string, informer: Informer<T>, log: Logger): Watching {
  let stopped = false;
  let healthy = false;
  let delay = 1000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let markSynced!: () => void;
  const synced = new Promise<void>((r) => (markSynced = r));
  const start = () =>
    informer.start().then(
      () => {
        healthy = true;
        delay = 1000;
        markSynced();
      },
      () => {}, // the 'error' handler restarts
    );
  informer.on('error', (e) => {
    healthy = false;
    if (stopped) return;
    log.warn(`${what} informer failed; restarting`, { error: messageOf(e), inMs: delay });
    clearTimeout(timer);
    timer = setTimeout(() => void start(), delay);
    delay = Math.min(delay * 2, 30_000);
  });
  void start();
  return {
    synced,
    get healthy() {
      return healthy;
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await informer.stop().catch(() => {});
    },
  };
}

const addressesOf = (n: V1Node) => (n.status?.addresses ?? []).map((a) => a.address).filter(Boolean);

export function watchNodes(kc: KubeConfig, clients: KubeClients, directory: NodeDirectory, log: Logger): Watching {
  const informer = makeInformer<V1Node>(kc, '/api/v1/nodes', () => clients.core.listNode());
  const put = (n: V1Node) => n.metadata?.name && directory.setNode(n.metadata.name, addressesOf(n), n.spec?.podCIDRs ?? (n.spec?.podCIDR ? [n.spec.podCIDR] : []));
  informer.on('add', put);
  informer.on('update', put);
  informer.on('delete', (n) => n.metadata?.name && directory.deleteNode(n.metadata.name));
  return run('Node', informer, log);
}

type V1Service = kube.V1Service;

/** The addresses a Service is reached at: its ClusterIPs and the names cluster DNS gives it. */
export function serviceAddressesOf(s: V1Service): string[] {
  const name = s.metadata?.name;
  const ns = s.metadata?.namespace;
  if (!name || !ns) return [];
  const ips = [s.spec?.clusterIP, ...(s.spec?.clusterIPs ?? []), ...(s.spec?.externalIPs ?? [])].filter((ip): ip is string => !!ip && ip !== 'None');
  return [...new Set([...ips, `${name}.${ns}`, `${name}.${ns}.svc`])];
}

export function watchServices(kc: KubeConfig, clients: KubeClients, directory: NodeDirectory, log: Logger): Watching {
  const informer = makeInformer<V1Service>(kc, '/api/v1/services', () => clients.core.listServiceForAllNamespaces());
  const key = (s: V1Service) => `${s.metadata?.namespace}/${s.metadata?.name}`;
  const put = (s: V1Service) => directory.setService(key(s), serviceAddressesOf(s));
  informer.on('add', put);
  informer.on('update', put);
  informer.on('delete', (s) => directory.deleteService(key(s)));
  return run('Service', informer, log);
}

/** Whether the Node exists, asking the apiserver (for nodes the informer has not delivered yet). */
export async function getNodeAddresses(clients: KubeClients, name: string): Promise<string[] | undefined> {
  try {
    return addressesOf(await clients.core.readNode({ name }));
  } catch (e) {
    if (statusCodeOf(e) === 404) return undefined;
    throw new TetherError(ErrorCode.UpstreamUnavailable, `get node ${name}: ${messageOf(e)}`, { cause: e });
  }
}

const ms = (d: unknown) => (d instanceof Date ? d.getTime() : typeof d === 'string' ? Date.parse(d) : 0);

export function leaseStateOf(l: V1Lease): LeaseState | undefined {
  const name = l.metadata?.name;
  const node = l.metadata?.annotations?.[NODE_ANNOTATION];
  if (!name || !node) return undefined;
  return {
    name,
    node,
    holder: l.spec?.holderIdentity ?? '',
    address: l.metadata?.annotations?.[ADDRESS_ANNOTATION] ?? '',
    renewMs: ms(l.spec?.renewTime),
    acquireMs: ms(l.spec?.acquireTime),
    durationSeconds: l.spec?.leaseDurationSeconds ?? 0,
    transitions: l.spec?.leaseTransitions ?? 0,
    credential: l.metadata?.annotations?.[CREDENTIAL_ANNOTATION] ?? '',
    resourceVersion: l.metadata?.resourceVersion,
  };
}

function leaseOf(s: LeaseState, namespace: string): V1Lease {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name: s.name,
      namespace,
      labels: { [LEASE_ROLE_LABEL]: LEASE_ROLE },
      annotations: { [NODE_ANNOTATION]: s.node, [ADDRESS_ANNOTATION]: s.address, [CREDENTIAL_ANNOTATION]: s.credential ?? '' },
      ...(s.resourceVersion ? { resourceVersion: s.resourceVersion } : {}),
    },
    spec: {
      holderIdentity: s.holder,
      leaseDurationSeconds: s.durationSeconds,
      // MicroTime fields must be written with microseconds, which V1MicroTime does.
      renewTime: new kube.V1MicroTime(s.renewMs),
      acquireTime: new kube.V1MicroTime(s.acquireMs),
      leaseTransitions: s.transitions,
    },
  };
}

export function createKubeLeaseApi(clients: KubeClients, namespace: string, log: Logger): LeaseApi {
  const api = clients.coordination;
  const fail = (step: string, e: unknown): never => {
    const code = statusCodeOf(e);
    throw new TetherError(code === 409 ? ErrorCode.StoreConflict : ErrorCode.UpstreamUnavailable, `${step}: ${code ?? ''} ${messageOf(e).split('\n')[0]}`.replace('  ', ' '), { cause: e });
  };
  const parse = (l: V1Lease, step: string): LeaseState => leaseStateOf(l) ?? fail(step, new Error('the answer is not a tunnel lease'));
  return {
    async get(name) {
      try {
        const l = await api.readNamespacedLease({ name, namespace });
        return leaseStateOf(l);
      } catch (e) {
        if (statusCodeOf(e) === 404) return undefined;
        return fail(`get lease ${namespace}/${name}`, e);
      }
    },
    async create(s) {
      const step = `create lease ${namespace}/${s.name}`;
      const body = leaseOf(s, namespace);
      try {
        return parse(await api.createNamespacedLease({ namespace, body }), step);
      } catch (e) {
        if (statusCodeOf(e) !== 404) return fail(step, e);
      }
      // The namespace is missing: create it once (needs the RBAC rule in docs/tunnel.md).
      try {
        await clients.core.createNamespace({ body: { metadata: { name: namespace } } });
        log.info('created the namespace for tunnel leases', { namespace });
      } catch (e) {
        if (statusCodeOf(e) !== 409) return fail(`${step}: create namespace`, e);
      }
      try {
        return parse(await api.createNamespacedLease({ namespace, body }), step);
      } catch (e) {
        return fail(step, e);
      }
    },
    async update(s) {
      const step = `update lease ${namespace}/${s.name}`;
      try {
        return parse(await api.replaceNamespacedLease({ name: s.name, namespace, body: leaseOf(s, namespace) }), step);
      } catch (e) {
        return fail(step, e);
      }
    },
  };
}

export function watchLeases(kc: KubeConfig, clients: KubeClients, namespace: string, view: LeaseView, log: Logger): Watching {
  const selector = `${LEASE_ROLE_LABEL}=${LEASE_ROLE}`;
  const informer = makeInformer<V1Lease>(
    kc,
    `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
    () => clients.coordination.listNamespacedLease({ namespace, labelSelector: selector }),
    selector,
  );
  const put = (l: V1Lease) => {
    const s = leaseStateOf(l);
    if (s) view.apply(s);
  };
  informer.on('add', put);
  informer.on('update', put);
  informer.on('delete', (l) => l.metadata?.name && view.remove(l.metadata.name));
  return run('Lease', informer, log);
}

export function kubeTokenReview(clients: KubeClients): (token: string) => Promise<TokenReview> {
  return async (token) => {
    const r = await clients.authentication.createTokenReview({ body: { spec: { token } } });
    const st = r.status;
    if (!st?.authenticated || !st.user?.username) return { error: st?.error || 'not authenticated' };
    return { user: st.user.username, groups: st.user.groups ?? [] };
  };
}

/** What the api streams' topology filter is fed (api-topology.ts HubTopology). */
export interface TopologySink {
  observeService(type: 'ADDED' | 'MODIFIED' | 'DELETED', service: KubernetesObject): void;
  observeNodePool(type: 'ADDED' | 'MODIFIED' | 'DELETED', pool: KubernetesObject & { status?: { nodes?: string[] | null } | null }): void;
  markSynced(what: 'services' | 'nodepools'): void;
}

/**
 * Services (their topology annotation) and NodePools (status.nodes) for the filter the hub applies
 * to api streams' EndpointSlices (RBAC: the tunnel's services list/watch, the controllers'
 * nodepools get/list/watch). A missing NodePool CRD keeps the NodePool informer retrying; until
 * both have listed once, answers pass unfiltered.
 */
export function watchTopology(kc: KubeConfig, topology: TopologySink, log: Logger): Watching[] {
  const clients = makeClients(kc);
  const services = makeInformer<V1Service>(kc, '/api/v1/services', () => clients.core.listServiceForAllNamespaces());
  services.on('add', (s) => topology.observeService('ADDED', s));
  services.on('update', (s) => topology.observeService('MODIFIED', s));
  services.on('delete', (s) => topology.observeService('DELETED', s));
  type Pool = KubernetesObject & { status?: { nodes?: string[] | null } | null };
  const pools = makeInformer<Pool>(
    kc,
    '/apis/apps.tether.dev/v1alpha1/nodepools',
    () => clients.custom.listClusterCustomObject({ group: 'apps.tether.dev', version: 'v1alpha1', plural: 'nodepools' }) as Promise<kube.KubernetesListObject<Pool>>,
  );
  pools.on('add', (p) => topology.observeNodePool('ADDED', p));
  pools.on('update', (p) => topology.observeNodePool('MODIFIED', p));
  pools.on('delete', (p) => topology.observeNodePool('DELETED', p));
  const s = run('Service (topology)', services, log);
  const p = run('NodePool (topology)', pools, log);
  void s.synced.then(() => topology.markSynced('services'));
  void p.synced.then(() => topology.markSynced('nodepools'));
  return [s, p];
}
