/**
 * A watchdog that cleans up after a control plane whose owner died without stopping it: killed
 * by SIGKILL, crashed, or ended by a runner that skips `exit` handlers (`bun test` does).
 *
 * Protocol: the owner starts `bun watchdog.ts` in a session of its own and keeps the write end
 * of its stdin. It sends one JSON line per fact:
 *
 *   {"pid": N}                          a component's process group to stop
 *   {"lease": {iface, runDir, userFile}} an edge-address user to release
 *   {"remove": "/path"}                 a file or directory to delete once the components are gone
 *   {"disarm": true}                    the owner stopped everything itself; exit quietly
 *
 * End of input without "disarm" means the owner is gone: the watchdog sends SIGTERM to every
 * group, SIGKILL after 5 s, releases the leases, deletes the paths and exits. Components also
 * run under `setpriv --pdeathsig KILL`, so they usually are gone already.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { releaseEdgeAddressUser, type EdgeAddressUser } from './edge-address.ts';

export interface Watchdog {
  watch(pid: number): void;
  releaseOnDeath(lease: EdgeAddressUser): void;
  removeOnDeath(path: string): void;
  /** The owner stopped the cluster itself: the watchdog exits without doing anything. */
  disarm(): void;
}

export function startWatchdog(): Watchdog {
  const child = spawn(process.execPath, [import.meta.path], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  child.unref();
  child.stdin.on('error', () => {}); // a dead watchdog must not crash its owner
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  let open = true;
  const send = (msg: unknown) => {
    if (open) child.stdin.write(JSON.stringify(msg) + '\n');
  };
  return {
    watch: (pid) => send({ pid }),
    releaseOnDeath: (lease) => send({ lease }),
    removeOnDeath: (path) => send({ remove: path }),
    disarm() {
      send({ disarm: true });
      open = false;
      child.stdin.end();
    },
  };
}

/** The group leader still runs (a zombie waiting for init to reap it does not count). */
function groupAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function runWatchdog(): Promise<void> {
  const pids: number[] = [];
  const leases: EdgeAddressUser[] = [];
  const removals: string[] = [];
  let disarmed = false;
  for await (const line of createInterface({ input: process.stdin })) {
    try {
      const msg = JSON.parse(line) as { pid?: number; lease?: EdgeAddressUser; remove?: string; disarm?: boolean };
      if (msg.pid) pids.push(msg.pid);
      if (msg.lease) leases.push(msg.lease);
      if (msg.remove) removals.push(msg.remove);
      if (msg.disarm) disarmed = true;
    } catch {
      // ignore a torn last line
    }
  }
  if (disarmed) return;
  const signal = (pid: number, sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      // gone meanwhile
    }
  };
  for (const pid of pids) if (groupAlive(pid)) signal(pid, 'SIGTERM');
  const deadline = Date.now() + 5000;
  while (pids.some(groupAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const pid of pids) if (groupAlive(pid)) signal(pid, 'SIGKILL');
  for (const lease of leases) releaseEdgeAddressUser(lease);
  for (const path of removals) rmSync(path, { recursive: true, force: true, maxRetries: 3 });
}

if (import.meta.main) {
  // Stay out of the owner's terminal signals: only end of input ends the watch.
  process.on('SIGINT', () => {});
  process.on('SIGHUP', () => {});
  void runWatchdog().then(() => process.exit(0));
}
