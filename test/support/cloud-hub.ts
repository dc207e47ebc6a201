/**
 * tether-hub as users deploy it: its image, built by the release build, imported into the
 * containerd of a real cloud node, and its replicas brought up as Pods by `kubectl apply -k` on an
 * overlay of deploy/. Used by test/hub-in-cluster.e2e.test.ts and by the demo (scripts/demo.ts).
 *
 *   const cloud = await createCloudSite('hub-cloud');                 // before the cluster:
 *   const cluster = await startCluster({ hub: cloud.egress });         //   its egress goes to the NodePort
 *   const image = await buildHubImage(dir);                            // npm run build's archive
 *   const node = await startCloudNode({ cluster, cloud, name: 'cloud-1', images: [image.archive] });
 *   const hub = await deployHub({ cluster, cloud, cloudNode: node, image, replicas: 2 });
 *   // edge sites: routeSites(cloud.site, edge); join with --hub hub.agentUrl, --hub-ca-file hub.hubCaFile
 *
 * Addresses: the cloud node is an edge site of test/support/netns.ts (198.18.<i>.2) that the cloud
 * may dial; kube-proxy there serves the hub's NodePorts (HUB_NODE_PORTS: the agents' wss listener
 * and the CONNECT endpoint kube-apiserver's egress selector uses). The pods' own traffic (to
 * kube-apiserver, through the `kubernetes` Service) leaves the site masqueraded behind the node's
 * address. Edge sites reach the cloud site through the root namespace: `routeSites` turns on IPv4
 * forwarding for the two sites' veth ends only (the machine's ip_forward stays as it is; the
 * setting goes with the veth when the site is destroyed).
 *
 * Certificates, as docs/tunnel.md's "High availability" asks of a Deployment:
 *   hub CA (made here, before the cluster)  signs the serving certificate: the node's address, the
 *                                           pod range (peers dial $(POD_IP):8132), the Service names;
 *                                           agents, kube-apiserver's egress and the peers trust it
 *   cluster CA                              verifies clients (clientCaFile: agents, the egress,
 *                                           peers) and signs the replicas' peer certificate (CN tether-hub)
 * They reach the Pods in the Secret tether-hub-tls, made by the overlay's secretGenerator.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { imageFile, imageRef } from '../../scripts/build/images.ts';
import { createCa, issueCert, type CertFiles } from '../../scripts/cluster/pki.ts';
import type { Cluster, HubEgress } from './cluster.ts';
import { createEdgeSite, type EdgeSite } from './netns.ts';
import { linkNames } from './netns/registry.ts';
import { realNode, type RealNode } from './real-node.ts';
import { bunBin, run } from './run.ts';
import { until } from './wait.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const deployDir = join(repo, 'deploy');

/** NodePorts of the hub on the cloud node: agents (wss) and CONNECT (kube-apiserver's egress, Prometheus). */
export const HUB_NODE_PORTS = { tunnel: 30443, connect: 30132 } as const;
/** The cloud node's label and NoSchedule taint: only the hub's Pods (the overlay tolerates it) land there. */
export const CLOUD_NODE_KEY = 'tether.test/cloud';
export const HUB_NAMESPACE = 'tether-system';
export const HUB_SELECTOR = 'app.kubernetes.io/name=tether-hub';

export interface CloudSite {
  site: EdgeSite;
  /** Where the certificates, the overlay and the image live. */
  dir: string;
  hubCa: CertFiles;
  /** The hub's serving certificate and key (signed by hubCa). */
  serving: CertFiles;
  /** wss://<node address>:<tunnel NodePort>: what agents dial (`tether-hub token create --hub`). */
  agentUrl: string;
  /** https://<node address>:<connect NodePort> */
  connectUrl: string;
  /** For `startCluster({ hub })`: kube-apiserver's `cluster` egress to the CONNECT NodePort (its client certificate is made by the cluster). */
  egress: HubEgress;
}

/**
 * The cloud node's site, the hub's CA and serving certificate, and the egress configuration that
 * points at the hub's CONNECT NodePort. Call before startCluster: kube-apiserver reads its egress
 * configuration once, at start. The caller destroys `site` and removes `dir` (the key material) when done.
 */
export async function createCloudSite(name: string, dir = mkdtempSync(join(tmpdir(), 'tether-cloud-'))): Promise<CloudSite> {
  const site = await createEdgeSite(name);
  const f = (n: string) => ({ certFile: join(dir, `${n}.crt`), keyFile: join(dir, `${n}.key`) });
  const hubCa = await createCa(f('hub-ca'), 'tether-hub-ca');
  // host-local IPAM hands out the node's pod range 198.18.<i>.129–254 (real-node.ts's podCidr).
  const podIps = Array.from({ length: 126 }, (_, k) => `198.18.${site.index}.${129 + k}`);
  const serving = await issueCert(hubCa, f('hub-serving'), {
    cn: 'tether-hub',
    usage: ['server'],
    ips: [site.address, ...podIps],
    dnsNames: ['tether-hub', `tether-hub.${HUB_NAMESPACE}`, `tether-hub.${HUB_NAMESPACE}.svc`],
  });
  const connectUrl = `https://${site.address}:${HUB_NODE_PORTS.connect}`;
  return {
    site,
    dir,
    hubCa,
    serving,
    agentUrl: `wss://${site.address}:${HUB_NODE_PORTS.tunnel}`,
    connectUrl,
    egress: { url: connectUrl, caFile: hubCa.certFile },
  };
}

/**
 * Lets two sites reach each other through the root namespace: IPv4 forwarding on the root ends of
 * their veth pairs only (a packet is forwarded when its incoming interface allows it).
 */
export async function routeSites(...sites: EdgeSite[]): Promise<void> {
  for (const s of sites) {
    const r = await run(['sysctl', '-qw', `net.ipv4.conf.${linkNames(s.index).host}.forwarding=1`]);
    if (r.code !== 0) throw new Error(`forwarding on ${linkNames(s.index).host}: ${r.stderr}`);
  }
}

export interface HubImage {
  /** The OCI archive (dist/tether-hub-<version>.oci.tar of the build). */
  archive: string;
  /** tether.local/tether-hub:<version>, the name ctr gives it. */
  ref: string;
  version: string;
}

/**
 * The hub's release image, as `npm run build` writes it (scripts/build.ts: the linux-x64 binary and
 * its OCI archive only, into `outDir`).
 */
export async function buildHubImage(outDir: string): Promise<HubImage> {
  const r = await run([bunBin, join(repo, 'scripts/build.ts'), '--only', 'tether-hub', '--target', 'bun-linux-x64', '--no-xz', '--no-gz', '--out', outDir], {
    timeoutMs: 600_000,
  });
  if (r.code !== 0) throw new Error(`build the hub image: ${r.stderr || r.stdout}`);
  const version = readFileSync(join(outDir, 'VERSION'), 'utf8').trim();
  return { archive: join(outDir, imageFile('tether-hub', version)), ref: imageRef('tether-hub', version), version };
}

/**
 * A real cloud node in the cloud site: containerd, the kubelet and kube-proxy straight to
 * kube-apiserver (no tether-edge), the given image archives imported, labelled and tainted
 * `tether.test/cloud` so that only what tolerates it (the hub) is scheduled there.
 */
export function startCloudNode(o: { cluster: Cluster; cloud: CloudSite; name: string; images: string[] }): Promise<RealNode> {
  return realNode({
    cluster: o.cluster,
    site: o.cloud.site,
    name: o.name,
    role: 'cloud',
    images: o.images,
    podMasquerade: true,
    kubeletArgs: [`--node-labels=${CLOUD_NODE_KEY}=true`, `--register-with-taints=${CLOUD_NODE_KEY}=true:NoSchedule`],
  });
}

export interface HubPod {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  spec: { nodeName?: string; containers: { image: string }[] };
  status: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { name: string; ready: boolean; restartCount: number; containerID?: string; image: string }[];
  };
}

export interface DeployedHub {
  /** The overlay directory `kubectl apply -k` was run on. */
  overlay: string;
  /** What `kubectl apply -k` printed. */
  applied: string;
  agentUrl: string;
  connectUrl: string;
  /** The CA agents pin (`--hub-ca-file`). */
  hubCaFile: string;
  /** The hub's Pods now (terminating ones included). */
  pods(): Promise<HubPod[]>;
  /** Waits until `count` Pods are Running and Ready, none terminating; returns them. */
  ready(count: number, timeoutMs?: number): Promise<HubPod[]>;
  /** `kubectl delete -k` of the overlay (namespace, RBAC, CRDs), not waiting for the namespace to go. */
  remove(): Promise<void>;
}

export const isReady = (p: HubPod) =>
  !p.metadata.deletionTimestamp && p.status.phase === 'Running' && !!p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');

/**
 * Writes an overlay of deploy/ (the image, the replicas on the cloud node, the TLS Secret, the
 * NodePort Service, the peer certificates) and applies it with `kubectl apply -k`; resolves once
 * `replicas` Pods are Ready.
 */
export async function deployHub(o: { cluster: Cluster; cloud: CloudSite; cloudNode: RealNode; image: HubImage; replicas: number; timeoutMs?: number }): Promise<DeployedHub> {
  const { cluster, cloud } = o;
  const overlay = join(cloud.dir, 'overlay');
  mkdirSync(overlay, { recursive: true });
  const peer = await cluster.issueClientCert('tether-hub', []);
  const files: Record<string, string> = {
    'tls.crt': cloud.serving.certFile,
    'tls.key': cloud.serving.keyFile,
    'ca.crt': cluster.caFile,
    'peer.crt': peer.certFile,
    'peer.key': peer.keyFile,
    'peer-ca.crt': cloud.hubCa.certFile,
  };
  for (const [name, from] of Object.entries(files)) writeFileSync(join(overlay, name), readFileSync(from), { mode: 0o600 });
  // The overlay renames what deploy/ names the image (its own `images:` entry for tether-hub, if any).
  const base = parse(readFileSync(join(deployDir, 'kustomization.yaml'), 'utf8')) as { images?: { name: string; newName?: string }[] };
  const baseName = base.images?.find((i) => i.name === 'tether-hub')?.newName ?? 'tether-hub';
  const newName = o.image.ref.slice(0, o.image.ref.lastIndexOf(':'));
  const yaml = (name: string, docs: unknown[]) => writeFileSync(join(overlay, name), docs.map((d) => stringify(d)).join('---\n'));
  yaml('kustomization.yaml', [
    {
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      resources: [relative(overlay, deployDir), 'nodeport.yaml'],
      images: [{ name: baseName, newName, newTag: o.image.version }],
      secretGenerator: [{ name: 'tether-hub-tls', namespace: HUB_NAMESPACE, files: Object.keys(files) }],
      patches: [{ path: 'hub-patch.yaml' }],
    },
  ]);
  yaml('hub-patch.yaml', [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'tether-hub', namespace: HUB_NAMESPACE },
      spec: {
        replicas: o.replicas,
        template: {
          spec: {
            nodeSelector: { [CLOUD_NODE_KEY]: 'true' },
            tolerations: [{ key: CLOUD_NODE_KEY, operator: 'Exists', effect: 'NoSchedule' }],
            containers: [
              {
                name: 'hub',
                // Imported into the node's containerd; nothing can be pulled here.
                imagePullPolicy: 'Never',
                env: [
                  // Peers: a client certificate of the cluster CA (clientCaFile verifies it), and the
                  // hub CA to verify the other replicas' serving certificates.
                  { name: 'TETHER_HUB_PEER_CERT_FILE', value: '/etc/tether/tls/peer.crt' },
                  { name: 'TETHER_HUB_PEER_KEY_FILE', value: '/etc/tether/tls/peer.key' },
                  { name: 'TETHER_HUB_PEER_CA_FILE', value: '/etc/tether/tls/peer-ca.crt' },
                ],
              },
            ],
          },
        },
      },
    },
  ]);
  yaml('nodeport.yaml', [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'tether-hub-nodeport', namespace: HUB_NAMESPACE, labels: { 'app.kubernetes.io/name': 'tether-hub', 'app.kubernetes.io/part-of': 'tether' } },
      spec: {
        type: 'NodePort',
        selector: { 'app.kubernetes.io/name': 'tether-hub' },
        ports: [
          { name: 'tunnel', port: 8443, targetPort: 'tunnel', nodePort: HUB_NODE_PORTS.tunnel },
          { name: 'connect', port: 8132, targetPort: 'connect', nodePort: HUB_NODE_PORTS.connect },
        ],
      },
    },
  ]);

  const kubectl = async (args: string[], timeoutMs = 120_000) => {
    const r = await cluster.kubectl(args, { timeoutMs });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr || r.stdout}`);
    return r.stdout;
  };
  // The CRDs and the namespace come in the same apply; kubectl applies CRDs and namespaces first.
  const applied = await kubectl(['apply', '-k', overlay]);
  const pods = async () => (JSON.parse(await kubectl(['get', 'pods', '-n', HUB_NAMESPACE, '-l', HUB_SELECTOR, '-o', 'json'])).items as HubPod[]);
  const ready = (count: number, timeoutMs = 240_000) =>
    until(`${count} hub Pods Ready`, pods, (ps) => ps.length === count && ps.every(isReady), timeoutMs).catch(async (e) => {
      const events = (await cluster.kubectl(['get', 'events', '-n', HUB_NAMESPACE, '--sort-by=.lastTimestamp'], { timeoutMs: 20_000 })).stdout;
      const logs = (await cluster.kubectl(['logs', '-n', HUB_NAMESPACE, '-l', HUB_SELECTOR, '--tail=20', '--prefix'], { timeoutMs: 20_000 })).stdout;
      throw new Error(`${(e as Error).message}\n--- events ---\n${events.split('\n').slice(-20).join('\n')}\n--- logs ---\n${logs}\n--- kubelet ---\n${o.cloudNode.processes().kubelet?.log.filter((l) => /^[EW]\d{4}/.test(l)).slice(-20).join('\n')}`);
    });
  await ready(o.replicas, o.timeoutMs);
  return {
    overlay,
    applied,
    agentUrl: cloud.agentUrl,
    connectUrl: cloud.connectUrl,
    hubCaFile: cloud.hubCa.certFile,
    pods,
    ready,
    async remove() {
      await kubectl(['delete', '-k', overlay, '--ignore-not-found', '--wait=false']);
    },
  };
}
