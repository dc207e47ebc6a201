/**
 * A real edge node inside an edge site: containerd (Debian's, with runc and the CNI plugins), the
 * upstream kubelet and kube-proxy (built from the same module as the control plane by
 * scripts/kube/build.sh) and tether-edge, joined with `tether-edge join` and a bootstrap token as
 * an operator would. Everything the node writes lives under one directory standing for the node's
 * `/` (`root`): /etc, /var/lib (disk: survives a reboot) and /run (tmpfs: a power cut empties it).
 *
 *   const node = await realNode({ cluster, site, name, join: ['--server', …, '--token', …, '--ca-cert-hash', …] });
 *   await node.powerCut();  // SIGKILL to everything, containers included; /run emptied
 *   await node.boot();      // containerd, tether-edge, the kubelet and kube-proxy start again
 *   await node.destroy();   // containers killed, mounts and cgroups removed, the directory deleted
 *
 * Why `nsenter --net` and not `ip netns exec` (which site.spawn uses): `ip netns exec` runs its
 * command in a new mount namespace with a fresh /sys, which hides the cgroup mounts under
 * /sys/fs/cgroup; runc then fails with "no cgroup mount found in mountinfo". nsenter changes only
 * the network namespace.
 *
 * Each component's whole log goes to .tether/test/real-node/<node>/<component>.log.
 *
 * A node of `role: 'cloud'` stands for a machine in the cloud (the one tether-hub's Pods run on:
 * test/support/cloud-hub.ts): no tether-edge and no join; its kubelet and kube-proxy talk to
 * kube-apiserver directly with certificates signed by the cluster CA (system:node:<name>,
 * system:kube-proxy), as on a kubeadm node. Extra images (OCI archives) are imported at its first start.
 *
 * This machine's cgroups are v1 (hybrid): the kubelet runs with `failCgroupV1: false` and the
 * cgroupfs driver (containerd 1.6 has no CRI RuntimeConfig call, so the kubelet uses its own
 * setting), under a cgroup root of the node's own (`/tether-<name>`) so that two nodes on one machine
 * never share /kubepods, and so that every container process of a node can be found and killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { testImagesArchive, PAUSE_IMAGE } from '../../scripts/images/test-images.ts';
import type { Cluster } from './cluster.ts';
import type { EdgeSite } from './netns.ts';
import { isAlive } from './netns/commands.ts';
import { run, type RunResult } from './run.ts';
import { until } from './wait.ts';

const edgeMain = fileURLToPath(new URL('../../edge/main.ts', import.meta.url));
const CGROUP_FS = '/sys/fs/cgroup';

export interface RealNodeOptions {
  cluster: Cluster;
  site: EdgeSite;
  name: string;
  /**
   * 'edge' (default): tether-edge in front of the kubelet, joined with `join`. 'cloud': the kubelet
   * and kube-proxy talk to kube-apiserver directly, with client certificates of the cluster CA.
   */
  role?: 'edge' | 'cloud';
  /** `tether-edge join` flags as `tether-hub token create` prints them (--server, --token, --ca-cert-hash, --hub …); edge nodes only. */
  join?: string[];
  /** OCI image archives imported into containerd (namespace k8s.io, all platforms) besides the test images. */
  images?: string[];
  /**
   * Masquerade pods' traffic leaving the site behind the node's address (the CNI bridge's ipMasq), so
   * pods reach the control plane although the root namespace has no route back to the pod range.
   */
  podMasquerade?: boolean;
  pool?: string;
  /** Extra `tether-edge run` flags (hub CA, tunnel ports, …); paths in the written configuration are rewritten under root. */
  agentArgs?: string[];
  /** Extra kubelet flags. */
  kubeletArgs?: string[];
}

export interface NodeProcess {
  name: string;
  child: ChildProcess;
  log: string[];
  exited: Promise<void>;
}

export interface RealNode {
  name: string;
  site: EdgeSite;
  /** The node's "/" */
  root: string;
  /** 198.18.<i>.128/25: the node's pod addresses (the bridge cni0 in the site, host-local IPAM). */
  podCidr: string;
  processes(): Record<'containerd' | 'agent' | 'kubelet' | 'kube-proxy', NodeProcess | undefined>;
  /** `ctr` against the node's containerd, namespace k8s.io. */
  ctr(args: string[]): Promise<RunResult>;
  /** Runs a command in the site's network namespace (nsenter, host mounts). */
  exec(cmd: string[], opts?: { timeoutMs?: number; input?: string }): Promise<RunResult>;
  /** Process ids of every container process of this node (from its cgroup tree). */
  containerPids(): number[];
  /** Kills every component and container with SIGKILL and empties /run, as a power cut does. */
  powerCut(): Promise<void>;
  /** Starts containerd, tether-edge, the kubelet and kube-proxy (as the node's boot does). */
  boot(): Promise<void>;
  /** Stops one component (SIGTERM, or the signal given) and waits for it. */
  stopComponent(which: 'agent' | 'kubelet' | 'kube-proxy' | 'containerd', signal?: NodeJS.Signals): Promise<void>;
  /** Starts one component again. */
  startComponent(which: 'agent' | 'kubelet' | 'kube-proxy' | 'containerd'): Promise<void>;
  destroy(): Promise<void>;
}

/** The kubelet and kube-proxy binaries, from the same cached build as the control plane. */
function nodeBinary(cluster: Cluster, name: 'kubelet' | 'kube-proxy'): string {
  const file = join(cluster.binDir, name);
  if (!existsSync(file)) throw new Error(`${file} is missing: scripts/kube/build.sh builds it beside the control plane`);
  return file;
}

const HIERARCHIES = () =>
  readdirSync(CGROUP_FS).filter((d) => d !== 'unified' && existsSync(join(CGROUP_FS, d, 'cgroup.procs')));

/** Every directory of a cgroup subtree, deepest first. */
function cgroupDirs(top: string): string[] {
  if (!existsSync(top)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    out.push(d);
  };
  walk(top);
  return out;
}

function pidsOf(top: string): number[] {
  const pids = new Set<number>();
  for (const d of cgroupDirs(top)) {
    try {
      for (const p of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (p) pids.add(Number(p));
    } catch {
      // removed meanwhile
    }
  }
  return [...pids];
}

/** Where each live node records its test process and directory, so that a later run can clean up after a killed one. */
const CLAIMS = '/run/tether-nodes';

/** Containers, mounts and cgroups of nodes whose test process died without destroy() (kill -9, a crashed run). */
async function sweepStaleNodes(): Promise<void> {
  if (!existsSync(CLAIMS)) return;
  for (const claim of readdirSync(CLAIMS)) {
    let owner: { pid: number; base: string; cgroupRoot: string };
    try {
      owner = JSON.parse(readFileSync(join(CLAIMS, claim), 'utf8'));
    } catch {
      continue;
    }
    if (isAlive(owner.pid)) continue;
    await teardown(owner.base, owner.cgroupRoot);
    rmSync(join(CLAIMS, claim), { force: true });
  }
}

function sigkill(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** SIGKILL to every process of a node's cgroup tree until none is left; false if some survive. */
async function killCgroup(cgroupRoot: string): Promise<boolean> {
  const top = join(CGROUP_FS, 'pids', cgroupRoot);
  for (let i = 0; i < 50; i++) {
    const pids = pidsOf(top);
    if (pids.length === 0) return true;
    sigkill(pids);
    await new Promise((r) => setTimeout(r, 100));
  }
  return pidsOf(top).length === 0;
}

/** The shims (containerd-shim-runc-v2) and anything else left in the site's network namespace. */
async function killSite(ns: string): Promise<void> {
  sigkill((await run(['ip', 'netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean).map(Number));
}

/** Kills every process of a node's cgroup tree, unmounts everything under its directory, removes both. */
async function teardown(base: string, cgroupRoot: string): Promise<void> {
  await killCgroup(cgroupRoot);
  await unmountUnder(base);
  for (const h of HIERARCHIES()) {
    for (const d of cgroupDirs(join(CGROUP_FS, h, cgroupRoot))) {
      try {
        rmdirSync(d);
      } catch {
        // busy: a process the kernel has not reaped yet; the next sweep retries
      }
    }
  }
  rmSync(base, { recursive: true, force: true });
}

/** Unmounts everything under a directory, deepest first (overlay rootfs, shm, volumes, netns). */
async function unmountUnder(base: string): Promise<void> {
  for (let i = 0; i < 5; i++) {
    const mounts = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
      .filter((m): m is string => !!m && m.startsWith(`${base}/`))
      .sort((a, b) => b.length - a.length);
    if (mounts.length === 0) return;
    for (const m of mounts) await run(['umount', '-l', m]);
  }
}

export async function realNode(o: RealNodeOptions): Promise<RealNode> {
  const { cluster, site, name } = o;
  const role = o.role ?? 'edge';
  if (role === 'edge' && !o.join) throw new Error(`node ${name}: an edge node needs the join flags`);
  await sweepStaleNodes();
  const base = mkdtempSync(join(tmpdir(), `tether-node-${name}-`));
  const root = join(base, 'root');
  const p = (rel: string) => join(root, rel);
  const dirs = {
    containerdRoot: p('var/lib/containerd'),
    containerdState: p('run/containerd'),
    kubeletRoot: p('var/lib/kubelet'),
    podLogs: p('var/log/pods'),
    cniConf: p('etc/cni/net.d'),
    cniData: p('var/lib/cni'),
    run: p('run'),
  };
  const sock = join(dirs.containerdState, 'containerd.sock');
  const cgroupRoot = `/tether-${name}`;
  mkdirSync(CLAIMS, { recursive: true });
  writeFileSync(join(CLAIMS, name), JSON.stringify({ pid: process.pid, base, cgroupRoot }));
  const podCidr = `198.18.${site.index}.128/25`;
  const netns = `/run/netns/${site.ns}`;
  const procs: Record<string, NodeProcess | undefined> = {};
  // Whole logs of every component, kept after the run for a look (the test prints their tails).
  const logDir = join(fileURLToPath(new URL('../../.tether/test/real-node/', import.meta.url)), name);
  rmSync(logDir, { recursive: true, force: true });
  mkdirSync(logDir, { recursive: true });

  const spawnIn = (label: string, cmd: string[], env: Record<string, string> = {}): NodeProcess => {
    const child = spawn('nsenter', [`--net=${netns}`, '--', ...cmd], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const log: string[] = [];
    const file = join(logDir, `${label}.log`);
    const keep = (d: Buffer) => {
      appendFileSync(file, d);
      log.push(...String(d).split('\n').filter(Boolean));
      log.splice(0, Math.max(0, log.length - 3000));
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    return { name: label, child, log, exited };
  };
  const exec = (cmd: string[], opts: { timeoutMs?: number; input?: string } = {}) =>
    run(['nsenter', `--net=${netns}`, '--', ...cmd], { timeoutMs: opts.timeoutMs ?? 60_000, input: opts.input });
  const ctr = (args: string[]) => run(['ctr', '--address', sock, '--namespace', 'k8s.io', ...args], { timeoutMs: 120_000 });

  // --- files written once: what a node's package installation and `tether-edge join` leave on disk
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  mkdirSync(p('etc/tether'), { recursive: true });
  writeFileSync(p('etc/resolv.conf'), 'nameserver 127.0.0.1\n');
  const containerdConfig = p('etc/containerd/config.toml');
  mkdirSync(p('etc/containerd'), { recursive: true });
  writeFileSync(
    containerdConfig,
    [
      'version = 2',
      `root = "${dirs.containerdRoot}"`,
      `state = "${dirs.containerdState}"`,
      '[grpc]',
      `  address = "${sock}"`,
      '[ttrpc]',
      `  address = "${sock}.ttrpc"`,
      '[plugins."io.containerd.grpc.v1.cri"]',
      `  sandbox_image = "${PAUSE_IMAGE}"`,
      // Pod network namespaces under /run/containerd, not the machine's /run/netns: a power cut
      // (which empties the node's /run) removes them as a reboot would.
      '  netns_mounts_under_state_dir = true',
      // No CAP_SYS_RESOURCE here (nor in many containers and VMs that run CI): an OOM score below
      // containerd's own cannot be set, so keep the kubelet's scores (-998 for sandboxes) from going lower.
      '  restrict_oom_score_adj = true',
      '  [plugins."io.containerd.grpc.v1.cri".containerd]',
      '    snapshotter = "overlayfs"',
      '    default_runtime_name = "runc"',
      '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
      '      runtime_type = "io.containerd.runc.v2"',
      '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
      '        SystemdCgroup = false',
      ...(process.env.TETHER_TEST_RUNC ? [`        BinaryName = "${process.env.TETHER_TEST_RUNC}"`] : []),
      '  [plugins."io.containerd.grpc.v1.cri".cni]',
      '    bin_dir = "/usr/lib/cni"',
      `    conf_dir = "${dirs.cniConf}"`,
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dirs.cniConf, '10-tether.conflist'),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'tether',
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          ipMasq: !!o.podMasquerade,
          hairpinMode: true,
          ipam: { type: 'host-local', ranges: [[{ subnet: podCidr }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(dirs.cniData, 'networks') },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    }),
  );
  const kubeletConfig = p('var/lib/kubelet/config.yaml');
  writeFileSync(
    kubeletConfig,
    stringify({
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      failCgroupV1: false,
      cgroupDriver: 'cgroupfs',
      cgroupRoot,
      failSwapOn: false,
      address: site.address,
      port: 10250,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort: 10248,
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: cluster.caFile } },
      authorization: { mode: 'Webhook' },
      containerRuntimeEndpoint: `unix://${sock}`,
      podLogsDir: dirs.podLogs,
      resolvConf: p('etc/resolv.conf'),
      clusterDomain: 'cluster.local',
      // Nothing can be pulled here: the images were imported, and must never be collected.
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
      // The machine's own settings are not the test's to change.
      protectKernelDefaults: false,
      makeIPTablesUtilChains: false,
      localStorageCapacityIsolation: false,
      serializeImagePulls: false,
    }),
  );
  const kubeProxyConfig = p('var/lib/kube-proxy/config.yaml');
  mkdirSync(p('var/lib/kube-proxy'), { recursive: true });
  writeFileSync(
    kubeProxyConfig,
    stringify({
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      mode: 'iptables',
      hostnameOverride: name,
      bindAddress: site.address,
      healthzBindAddress: '127.0.0.1:10256',
      metricsBindAddress: '127.0.0.1:10249',
      clientConnection: { kubeconfig: p('etc/tether/kube-proxy.conf') },
      // conntrack limits are the machine's; a test does not set them.
      conntrack: { maxPerCore: 0, min: 0 },
    }),
  );

  // Each hierarchy gets the node's cgroup root (the kubelet requires it to exist); cpuset needs
  // its cpus and mems filled before a task can join.
  const makeCgroupRoot = () => {
    for (const h of HIERARCHIES()) {
      const d = join(CGROUP_FS, h, cgroupRoot);
      mkdirSync(d, { recursive: true });
      if (h === 'cpuset') {
        for (const f of ['cpuset.cpus', 'cpuset.mems']) {
          if (!readFileSync(join(d, f), 'utf8').trim()) writeFileSync(join(d, f), readFileSync(join(CGROUP_FS, h, f)));
        }
      }
    }
  };
  const containerPids = () => pidsOf(join(CGROUP_FS, 'pids', cgroupRoot));
  const killContainers = async () => {
    if (!(await killCgroup(cgroupRoot))) throw new Error(`node ${name}: container processes survive SIGKILL: ${containerPids().join(' ')}`);
  };
  const unmountAll = () => unmountUnder(base);
  const stopProc = async (which: string, signal: NodeJS.Signals) => {
    const pr = procs[which];
    if (!pr) return;
    if (pr.child.exitCode === null && pr.child.signalCode === null) {
      pr.child.kill(signal);
      const t = setTimeout(() => pr.child.kill('SIGKILL'), 15_000);
      await pr.exited;
      clearTimeout(t);
    }
    procs[which] = undefined;
  };

  // --- components
  let imagesImported = false;
  const startContainerd = async () => {
    mkdirSync(dirs.containerdState, { recursive: true });
    procs.containerd = spawnIn('containerd', ['containerd', '--config', containerdConfig]);
    await until('containerd serving', async () => (await ctr(['version'])).code, (c) => c === 0, 60_000).catch((e) => {
      throw new Error(`${(e as Error).message}\n${procs.containerd?.log.slice(-20).join('\n')}`);
    });
    if (!imagesImported) {
      const archive = join(base, 'test-images.oci.tar');
      writeFileSync(archive, testImagesArchive().archive);
      const r = await ctr(['images', 'import', archive]);
      if (r.code !== 0) throw new Error(`ctr images import: ${r.stderr}`);
      for (const extra of o.images ?? []) {
        const x = await ctr(['images', 'import', '--all-platforms', extra]);
        if (x.code !== 0) throw new Error(`ctr images import ${extra}: ${x.stderr}`);
      }
      imagesImported = true;
    }
  };

  const joined = join(root, 'etc/tether/edge.yaml');
  const doJoin = async () => {
    const r = await run(
      ['ip', 'netns', 'exec', site.ns, process.execPath, edgeMain, 'join', ...(o.join ?? []), '--node-name', name, '--root', root, ...(o.pool ? ['--pool', o.pool] : [])],
      { timeoutMs: 180_000 },
    );
    if (r.code !== 0) throw new Error(`tether-edge join: ${r.stderr || r.stdout}`);
  };
  const startAgent = async () => {
    const flags = [
      '--config', joined,
      '--ca-file', p('etc/tether/pki/ca.crt'), '--cert-file', p('etc/tether/pki/node.crt'), '--key-file', p('etc/tether/pki/node.key'),
      '--data-dir', p('var/lib/tether'), '--local-ca-dir', p('etc/tether/pki/local'), '--log-format', 'json',
      // Every request of the kubelet and kube-proxy in agent.log (docs/offline.md's table is read off it).
      '--log-level', 'debug',
      ...(o.agentArgs ?? []),
    ];
    procs.agent = spawnIn('agent', [process.execPath, edgeMain, 'run', ...flags]);
    await until('tether-edge listening', async () => procs.agent!.log.join('\n'), (l) => l.includes('tether-edge started') || l.includes('proxy on https://127.0.0.1:10261'), 60_000).catch((e) => {
      throw new Error(`${(e as Error).message}\n${procs.agent?.log.slice(-20).join('\n')}`);
    });
  };
  const kubeletExtra = () => {
    const env = p('etc/tether/kubelet.env');
    if (!existsSync(env)) return [];
    const m = /KUBELET_EXTRA_ARGS="([^"]*)"/.exec(readFileSync(env, 'utf8'));
    return m?.[1] ? m[1].split(/\s+/).filter(Boolean) : [];
  };
  const startKubelet = async () => {
    makeCgroupRoot();
    procs.kubelet = spawnIn('kubelet', [
      nodeBinary(cluster, 'kubelet'),
      `--config=${kubeletConfig}`,
      `--kubeconfig=${p('etc/kubernetes/kubelet.conf')}`,
      `--root-dir=${dirs.kubeletRoot}`,
      `--cert-dir=${p('var/lib/kubelet/pki')}`,
      `--hostname-override=${name}`,
      `--node-ip=${site.address}`,
      '--v=2',
      ...kubeletExtra(),
      ...(o.kubeletArgs ?? []),
    ]);
  };
  const startKubeProxy = async () => {
    procs['kube-proxy'] = spawnIn('kube-proxy', [nodeBinary(cluster, 'kube-proxy'), `--config=${kubeProxyConfig}`, '--v=2']);
  };
  /** A cloud node's kubeconfigs, as a kubeadm node has them: straight to kube-apiserver, certificates of the cluster CA. */
  const writeCloudKubeconfigs = async () => {
    const kubeconfig = (file: string, pair: { certFile: string; keyFile: string }) => {
      mkdirSync(join(file, '..'), { recursive: true });
      writeFileSync(
        file,
        stringify({
          apiVersion: 'v1', kind: 'Config',
          clusters: [{ name: 'c', cluster: { server: cluster.edgeServer, 'certificate-authority': cluster.caFile } }],
          users: [{ name: 'u', user: { 'client-certificate': pair.certFile, 'client-key': pair.keyFile } }],
          contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
          'current-context': 'c',
        }),
        { mode: 0o600 },
      );
    };
    kubeconfig(p('etc/kubernetes/kubelet.conf'), await cluster.issueClientCert(`system:node:${name}`, ['system:nodes']));
    // The bootstrap policy's system:node-proxier ClusterRoleBinding names the user system:kube-proxy.
    kubeconfig(p('etc/tether/kube-proxy.conf'), await cluster.issueClientCert('system:kube-proxy', []));
  };
  const starters = {
    containerd: startContainerd,
    agent: role === 'edge' ? startAgent : async () => { throw new Error(`node ${name}: a cloud node runs no tether-edge`); },
    kubelet: startKubelet,
    'kube-proxy': startKubeProxy,
  };

  await exec(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  await startContainerd();
  if (role === 'edge') {
    await doJoin();
    await startAgent();
  } else {
    await writeCloudKubeconfigs();
  }
  await startKubelet();
  await startKubeProxy();

  const node: RealNode = {
    name,
    site,
    root,
    podCidr,
    processes: () => ({ containerd: procs.containerd, agent: procs.agent, kubelet: procs.kubelet, 'kube-proxy': procs['kube-proxy'] }),
    ctr,
    exec,
    containerPids,
    async powerCut() {
      await Promise.all(['agent', 'kubelet', 'kube-proxy', 'containerd'].map((w) => stopProc(w, 'SIGKILL')));
      // The shims (in the site's namespace) and the containers.
      await killSite(site.ns);
      await killContainers();
      await unmountAll();
      rmSync(dirs.run, { recursive: true, force: true });
      mkdirSync(dirs.run, { recursive: true });
    },
    async boot() {
      await startContainerd();
      if (role === 'edge') await startAgent();
      await startKubelet();
      await startKubeProxy();
    },
    stopComponent: (which, signal = 'SIGTERM') => stopProc(which, signal),
    startComponent: (which) => starters[which](),
    async destroy() {
      await Promise.all(['kube-proxy', 'kubelet', 'agent'].map((w) => stopProc(w, 'SIGTERM')));
      await stopProc('containerd', 'SIGTERM');
      await killSite(site.ns);
      await teardown(base, cgroupRoot);
      rmSync(join(CLAIMS, name), { force: true });
    },
  };
  return node;
}
