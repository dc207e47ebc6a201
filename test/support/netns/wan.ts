/**
 * WAN conditions (delay, jitter, loss) on one site's link.
 *
 * With sch_netem in the kernel, a netem qdisc goes on both veth ends. Without it (the sandbox this
 * was written in has no netem and cannot load modules), wan-emulator.ts carries the site's traffic
 * between two TUN devices in user space: the site's default route and its route to the gateway, and
 * the root namespace's route to the site address, are pointed at the TUN pair while the WAN is on,
 * and put back when it is switched off. Both ways apply the settings per direction, so a TCP round
 * trip grows by about twice delayMs.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ErrorCode, TetherError } from '../../../shared/errors.ts';
import { must, run } from './commands.ts';
import { linkNames } from './registry.ts';

export interface WanSettings {
  delayMs?: number;
  jitterMs?: number;
  lossPct?: number;
}

export interface WanSite {
  ns: string;
  index: number;
  address: string;
  gateway: string;
}

export interface WanLink {
  apply(s: WanSettings): Promise<void>;
  /** Devices the traffic currently crosses besides the veth pair: [root-namespace, site-namespace]. */
  tunDevices(): [string, string] | null;
  close(): Promise<void>;
}

let netemSupported: boolean | undefined;

const emulatorPath = fileURLToPath(new URL('./wan-emulator.ts', import.meta.url));

export function createWanLink(site: WanSite, onDevicesUp: (root: string, inSite: string) => Promise<void>): WanLink {
  const names = linkNames(site.index);
  let emulator: { child: ChildProcessWithoutNullStreams; lines: string[]; waiters: (() => void)[] } | null = null;
  let netemOn = false;

  async function netem(s: Required<WanSettings>): Promise<boolean> {
    const args = ['netem', 'delay', `${s.delayMs}ms`, `${s.jitterMs}ms`, 'loss', `${s.lossPct}%`];
    const r = await run(['tc', 'qdisc', 'replace', 'dev', names.host, 'root', ...args]);
    if (r.code !== 0) {
      if (/unknown|not supported|No such file/i.test(r.stderr)) return false;
      throw new TetherError(ErrorCode.Internal, `wan: tc netem on ${names.host}: ${r.stderr.trim()}`);
    }
    await must('wan: tc netem', ['tc', '-n', site.ns, 'qdisc', 'replace', 'dev', names.site, 'root', ...args]);
    netemOn = true;
    return true;
  }

  async function nextLine(step: string): Promise<string> {
    const em = emulator!;
    const deadline = Date.now() + 10_000;
    while (em.lines.length === 0) {
      if (em.child.exitCode !== null || Date.now() > deadline) {
        throw new TetherError(ErrorCode.Internal, `wan: ${step}: emulator gave no answer`);
      }
      await new Promise<void>((r) => {
        em.waiters.push(r);
        setTimeout(r, 200);
      });
    }
    return em.lines.shift()!;
  }

  async function startEmulator(): Promise<void> {
    const bun = process.versions.bun ? process.execPath : 'bun';
    const child = spawn(bun, [emulatorPath, names.wanRoot, names.wanSite], { stdio: ['pipe', 'pipe', 'pipe'] });
    emulator = { child, lines: [], waiters: [] };
    const em = emulator;
    let rest = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      rest += d;
      const parts = rest.split('\n');
      rest = parts.pop() ?? '';
      em.lines.push(...parts.filter(Boolean));
      em.waiters.splice(0).forEach((w) => w());
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const first = await nextLine('start').catch((e: unknown) => {
      throw new TetherError(ErrorCode.Internal, `wan: start emulator: ${stderr.trim()}`, { cause: e });
    });
    if (first !== 'ready') throw new TetherError(ErrorCode.Internal, `wan: start emulator: said ${first}`);
    const step = 'wan: route through emulator';
    await must(step, ['ip', 'link', 'set', names.wanSite, 'netns', site.ns]);
    await must(step, ['ip', 'link', 'set', names.wanRoot, 'up']);
    await must(step, ['ip', '-n', site.ns, 'link', 'set', names.wanSite, 'up']);
    await onDevicesUp(names.wanRoot, names.wanSite);
    await must(step, ['ip', 'route', 'replace', `${site.address}/32`, 'dev', names.wanRoot, 'src', site.gateway]);
    for (const dst of ['default', `${site.gateway}/32`]) {
      await must(step, ['ip', '-n', site.ns, 'route', 'replace', dst, 'dev', names.wanSite, 'src', site.address]);
    }
  }

  async function stopEmulator(): Promise<void> {
    const em = emulator;
    if (!em) return;
    emulator = null;
    const exited = new Promise<void>((r) => (em.child.exitCode !== null ? r() : em.child.once('exit', () => r())));
    em.child.stdin.end();
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    em.child.kill('SIGKILL');
    // The TUN devices (and the routes through them) went with the process; restore the veth path.
    await run(['ip', 'route', 'del', `${site.address}/32`, 'dev', names.wanRoot]);
    await run(['ip', '-n', site.ns, 'route', 'del', `${site.gateway}/32`, 'dev', names.wanSite]);
    await must('wan: restore default route', [
      'ip', '-n', site.ns, 'route', 'replace', 'default', 'via', site.gateway, 'dev', names.site,
    ]);
  }

  return {
    async apply(settings) {
      const s = { delayMs: 0, jitterMs: 0, lossPct: 0, ...settings };
      const off = s.delayMs === 0 && s.jitterMs === 0 && s.lossPct === 0;
      if (off) {
        if (netemOn) {
          await run(['tc', 'qdisc', 'del', 'dev', names.host, 'root']);
          await run(['tc', '-n', site.ns, 'qdisc', 'del', 'dev', names.site, 'root']);
          netemOn = false;
        }
        return stopEmulator();
      }
      if (netemSupported !== false && !emulator) {
        netemSupported = await netem(s);
        if (netemSupported) return;
      }
      if (!emulator) await startEmulator();
      emulator!.child.stdin.write(JSON.stringify(s) + '\n');
      const answer = await nextLine('apply');
      if (answer !== 'applied') throw new TetherError(ErrorCode.Internal, `wan: apply: emulator said ${answer}`);
    },
    tunDevices: () => (emulator ? [names.wanRoot, names.wanSite] : null),
    close: stopEmulator,
  };
}
