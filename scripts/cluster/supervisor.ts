/**
 * Process supervision for the control-plane components.
 *
 * Each component runs in its own process group (a new session), writes stdout and stderr to a
 * log file, and is stopped by signalling the whole group: SIGTERM, then SIGKILL after a grace
 * period. Nothing is left behind:
 *
 * - SIGINT and SIGTERM run the registered shutdowns (graceful stops), then exit with 128 + the
 *   signal number;
 * - a normal exit of this process SIGKILLs every group still running (the `exit` event allows
 *   only synchronous work; note that `bun test` ends without emitting it);
 * - if this process dies without running any handler (SIGKILL, a crash, `bun test`), the kernel
 *   kills the components: they are started through `setpriv --pdeathsig KILL` when setpriv
 *   exists; the watchdog (watchdog.ts) does the rest of the cleanup.
 *
 * The registry of live groups is process-wide on purpose: cleanup at exit is a process matter.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import type { Logger } from '../../shared/log.ts';

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  logFile: string;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Supervised {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves when the process has exited, for whatever reason. */
  readonly exited: Promise<ExitStatus>;
  running(): boolean;
  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<Supervised>();
const shutdowns = new Set<() => Promise<void>>();
let guardInstalled = false;
let hasSetpriv: boolean | undefined;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is gone already
  }
}

function installGuard(): void {
  if (guardInstalled) return;
  guardInstalled = true;
  process.on('exit', () => {
    for (const p of live) killGroup(p.pid, 'SIGKILL');
  });
  const onSignal = (number: number) => {
    void Promise.allSettled([...shutdowns].map((s) => s())).finally(() => process.exit(128 + number));
  };
  // `once`: a second Ctrl-C while stopping gets the default action (the watchdog cleans up).
  process.once('SIGINT', () => onSignal(2));
  process.once('SIGTERM', () => onSignal(15));
}

/** Runs `shutdown` on SIGINT/SIGTERM before this process exits. Returns an unregister function. */
export function onSignal(shutdown: () => Promise<void>): () => void {
  installGuard();
  shutdowns.add(shutdown);
  return () => void shutdowns.delete(shutdown);
}

export function spawnSupervised(spec: ProcessSpec, log: Logger): Supervised {
  installGuard();
  hasSetpriv ??= spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;
  const [command, args] = hasSetpriv
    ? ['setpriv', ['--pdeathsig', 'KILL', '--', spec.command, ...spec.args]]
    : [spec.command, spec.args];
  const fd = openSync(spec.logFile, 'a');
  let child;
  try {
    child = spawn(command, args, { detached: true, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`start ${spec.name}: spawn returned no pid`);
  child.unref();
  let done = false;
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      live.delete(proc);
      // Anything else in the group (there should be nothing) goes with its leader.
      killGroup(pid, 'SIGKILL');
      resolve({ code, signal });
    });
    child.once('error', () => {
      done = true;
      live.delete(proc);
      resolve({ code: null, signal: null });
    });
  });
  const proc: Supervised = {
    name: spec.name,
    pid,
    logFile: spec.logFile,
    exited,
    running: () => !done,
    async stop(graceMs = 10_000) {
      if (done) return;
      killGroup(pid, 'SIGTERM');
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = await Promise.race([
        exited.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs))),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        log.warn('component did not stop in time, killing', { component: spec.name, pid, graceMs });
        killGroup(pid, 'SIGKILL');
        await exited;
      }
    },
  };
  live.add(proc);
  log.debug('started', { component: spec.name, pid, log: spec.logFile });
  return proc;
}

/** The last lines of a log file, for error messages. */
export function logTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
