/**
 * Edge sites for tests: each site is a network namespace `tether-<name>` joined to the root
 * namespace by a veth pair, so the control plane on the root side and an edge agent or kubelet
 * simulator inside the site talk over a link a test can cut, heal and degrade. Needs root.
 *
 *   root namespace                          namespace tether-<name>
 *   198.18.0.1/32 (tether-cp0, control plane)
 *   198.18.<i>.1/24 tether-<i>-h  <──veth──>  tether-<i>-n 198.18.<i>.2/24, default via 198.18.<i>.1
 *
 * Addresses stay inside 198.18.0.0/15. The index <i> (1..250) is claimed through
 * netns/registry.ts, so concurrent sites and concurrent test processes never clash.
 *
 * cut() drops every packet silently in both directions, as a lost WAN link does: a classic-BPF
 * filter returning TC_ACT_SHOT on the ingress of both veth ends (cls_bpf in direct-action mode;
 * no sch_netem or nftables needed). Where cls_bpf is missing, it falls back to setting both ends
 * down (then local senders may see errors instead of silence). wan() is netns/wan.ts.
 *
 * Teardown: destroy() kills every process inside the namespace and deletes it; every live site is
 * torn down synchronously on process exit and on SIGINT/SIGTERM/SIGHUP; a detached watchdog
 * (netns/watchdog.ts) removes them once the process is gone however it ended (`bun test` emits no
 * exit event; SIGKILL runs no handler); creating a site first removes what dead runs left behind.
 */
import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import { isAlive, must, run, type RunResult } from './netns/commands.ts';
import { claimIndex, linkNames, releaseClaim, sweepStale, teardownSync } from './netns/registry.ts';
import { createWanLink, type WanSettings } from './netns/wan.ts';

export interface EdgeSite {
  name: string;
  ns: string;
  index: number;
  /** 198.18.<index>.2, inside the namespace. */
  address: string;
  /** 198.18.<index>.1, the root side of the veth pair. */
  gateway: string;
  exec(cmd: string[], opts?: { input?: string; timeoutMs?: number }): Promise<RunResult>;
  /** Starts a process inside the namespace; it is killed on destroy(). */
  spawn(cmd: string[], opts?: { env?: Record<string, string>; cwd?: string }): ChildProcess;
  cut(): Promise<void>;
  heal(): Promise<void>;
  /** One-way delay, jitter and loss per direction; all zero switches the WAN off. */
  wan(opts: WanSettings): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * The address the control plane listens on, reachable from every site. The cluster script puts it
 * on `tether-cp0` (scripts/cluster/edge-address.ts); tests without a cluster acquire it there too.
 */
export const CONTROL_PLANE_ADDRESS = '198.18.0.1';

const live = new Map<number, { ns: string; children: Set<ChildProcess>; destroy?: () => Promise<void> }>();
let counter = 0;

export async function createEdgeSite(name?: string): Promise<EdgeSite> {
  if (process.getuid?.() !== 0) throw new TetherError(ErrorCode.BadConfig, 'create edge site: needs root');
  const siteName = name ?? `site-${process.pid}-${++counter}`;
  if (!/^[a-z0-9][a-z0-9-]{0,40}$/.test(siteName)) {
    throw new TetherError(ErrorCode.BadConfig, `create edge site: bad name ${siteName}`);
  }
  const ns = `tether-${siteName}`;
  hookExit();
  sweepStale(ns);
  const index = claimIndex(ns, siteName);
  const names = linkNames(index);
  const address = `198.18.${index}.2`;
  const gateway = `198.18.${index}.1`;
  const children = new Set<ChildProcess>();
  live.set(index, { ns, children });
  const step = `create edge site ${siteName}`;
  try {
    await must(step, ['ip', 'link', 'add', names.host, 'type', 'veth', 'peer', 'name', names.site]);
    await must(step, ['ip', 'netns', 'add', ns]);
    await must(step, ['ip', 'link', 'set', names.site, 'netns', ns]);
    await must(step, ['ip', 'addr', 'add', `${gateway}/24`, 'dev', names.host]);
    await must(step, ['ip', 'link', 'set', names.host, 'up']);
    await must(step, ['ip', '-n', ns, 'addr', 'add', `${address}/24`, 'dev', names.site]);
    await must(step, ['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    await must(step, ['ip', '-n', ns, 'link', 'set', names.site, 'up']);
    await must(step, ['ip', '-n', ns, 'route', 'add', 'default', 'via', gateway, 'dev', names.site]);
  } catch (e) {
    teardownSync(index, ns);
    live.delete(index);
    releaseClaim(index);
    throw e;
  }

  let isCut = false;
  let dropMode: 'bpf' | 'down' | undefined;
  /** [device, namespace or '' for root] pairs the site's traffic can cross. */
  const devices = (): [string, string][] => {
    const tun = wanLink.tunDevices();
    return [[names.host, ''], [names.site, ns], ...(tun ? ([[tun[0], ''], [tun[1], ns]] as [string, string][]) : [])];
  };
  const tc = (dev: [string, string], args: string[]) => ['tc', ...(dev[1] ? ['-n', dev[1]] : []), ...args];
  const ipLink = (dev: [string, string], state: 'up' | 'down') =>
    ['ip', ...(dev[1] ? ['-n', dev[1]] : []), 'link', 'set', dev[0], state];

  async function drop(dev: [string, string]): Promise<void> {
    if (dropMode !== 'down') {
      await run(tc(dev, ['qdisc', 'replace', 'dev', dev[0], 'clsact']));
      // cBPF program of one instruction: `ret #2` (TC_ACT_SHOT).
      const filter = ['filter', 'replace', 'dev', dev[0], 'ingress', 'pref', '1', 'handle', '1'];
      const r = await run(tc(dev, [...filter, 'bpf', 'bytecode', '1,6 0 0 2,', 'da']));
      if (r.code === 0) {
        dropMode = 'bpf';
        return;
      }
      if (dropMode === 'bpf') throw new TetherError(ErrorCode.Internal, `cut ${siteName}: ${r.stderr.trim()}`);
      dropMode = 'down';
    }
    await must(`cut ${siteName}`, ipLink(dev, 'down'));
  }

  async function undrop(dev: [string, string]): Promise<void> {
    if (dropMode === 'down') await must(`heal ${siteName}`, ipLink(dev, 'up'));
    else await run(tc(dev, ['qdisc', 'del', 'dev', dev[0], 'clsact']));
  }

  const wanLink = createWanLink({ ns, index, address, gateway }, async (root, inSite) => {
    if (isCut) for (const d of [[root, ''], [inSite, ns]] as [string, string][]) await drop(d);
  });

  let destroyed = false;
  const site: EdgeSite = {
    name: siteName,
    ns,
    index,
    address,
    gateway,
    exec: (cmd, opts) => run(['ip', 'netns', 'exec', ns, ...cmd], opts),
    spawn(cmd, opts = {}) {
      if (destroyed) throw new TetherError(ErrorCode.BadRequest, `spawn in ${siteName}: site destroyed`);
      const child = spawnChild('ip', ['netns', 'exec', ns, ...cmd], {
        env: { ...process.env, ...opts.env },
        cwd: opts.cwd,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    },
    async cut() {
      isCut = true;
      for (const d of devices()) await drop(d);
    },
    async heal() {
      isCut = false;
      for (const d of devices()) await undrop(d);
      // After link down/up the kernel forgets routes through the device; put the default back.
      if (dropMode === 'down' && !wanLink.tunDevices()) {
        await run(['ip', '-n', ns, 'route', 'replace', 'default', 'via', gateway, 'dev', names.site]);
      }
    },
    wan: (opts) => wanLink.apply(opts),
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await wanLink.close().catch(() => {});
      await stopProcesses(ns);
      teardownSync(index, ns);
      live.delete(index);
      releaseClaim(index);
    },
  };
  live.get(index)!.destroy = site.destroy;
  return site;
}

/** SIGTERM every process in the namespace, then SIGKILL what is left after a grace period. */
async function stopProcesses(ns: string): Promise<void> {
  const pids = async () =>
    (await run(['ip', 'netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean).map(Number);
  const signal = (list: number[], sig: NodeJS.Signals) =>
    list.forEach((p) => {
      try {
        process.kill(p, sig);
      } catch {
        // gone already
      }
    });
  signal(await pids(), 'SIGTERM');
  const deadline = Date.now() + 3000;
  for (let left = await pids(); left.length > 0; left = await pids()) {
    if (Date.now() > deadline) return signal(left, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function destroyAllSites(): Promise<void> {
  await Promise.all([...live.values()].map((s) => s.destroy?.()));
}

function destroyAllSitesSync(): void {
  for (const [index, s] of live) {
    for (const c of s.children) if (c.pid && isAlive(c.pid)) c.kill('SIGKILL');
    teardownSync(index, s.ns);
    releaseClaim(index);
  }
  live.clear();
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const bun = process.versions.bun ? process.execPath : 'bun';
  const watchdog = fileURLToPath(new URL('./netns/watchdog.ts', import.meta.url));
  spawnChild(bun, [watchdog, String(process.pid)], { detached: true, stdio: 'ignore' }).unref();
  process.on('exit', destroyAllSitesSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      destroyAllSitesSync();
      // Alone on this signal: restore its default action (ending the process) and re-raise it.
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}
