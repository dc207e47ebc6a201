/**
 * The address edge network namespaces use to reach the apiserver (198.18.0.1), held by an
 * interface `tether-cp0` in the root namespace. The apiserver listens on 0.0.0.0, so it answers
 * on that address as well as on 127.0.0.1.
 *
 * Sharing: several clusters (a demo and a test run) may run at once and all use the one address.
 * Each user leaves a file `<pid>.<random>` in /run/tether/tether-cp0.users; releasing removes it,
 * drops files of dead processes, and deletes the interface when no user is left and Tether
 * created it (a marker file says so). An address that exists already (on any interface) is
 * reused and never deleted. A lock directory serialises acquire and release.
 *
 * The interface is a `dummy` link; on kernels without the dummy driver it is an empty `bridge`,
 * which holds a local address just as well.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';

export interface EdgeAddressOptions {
  address?: string;
  iface?: string;
  runDir?: string;
}

export interface EdgeAddressLease {
  address: string;
  iface: string;
  /** This user's file; the watchdog releases it if this process dies. */
  user: EdgeAddressUser;
  release(): void;
}

export interface EdgeAddressUser {
  iface: string;
  runDir: string;
  userFile: string;
}

function ip(args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function withLock<T>(lockDir: string, fn: () => T): T {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let owner = 0;
      try {
        owner = Number(readFileSync(join(lockDir, 'pid'), 'utf8'));
      } catch {
        // the owner is between mkdir and writing its pid
      }
      if (owner && !alive(owner)) rmSync(lockDir, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new TetherError(ErrorCode.Internal, `lock ${lockDir}: held by pid ${owner}`);
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

function addressPresent(address: string): boolean {
  return ip(['-o', 'addr', 'show', 'to', `${address}/32`]).out.length > 0;
}

export function acquireEdgeAddress(log: Logger, opts: EdgeAddressOptions = {}): EdgeAddressLease {
  const address = opts.address ?? '198.18.0.1';
  const iface = opts.iface ?? 'tether-cp0';
  const runDir = opts.runDir ?? '/run/tether';
  const usersDir = join(runDir, `${iface}.users`);
  const marker = join(runDir, `${iface}.created`);
  const lockDir = join(runDir, `${iface}.lock`);
  const me = join(usersDir, `${process.pid}.${randomBytes(4).toString('hex')}`);

  try {
    mkdirSync(usersDir, { recursive: true });
  } catch (e) {
    throw new TetherError(ErrorCode.BadConfig, `edge address: create ${usersDir} (needs root): ${(e as Error).message}`, { cause: e });
  }

  withLock(lockDir, () => {
    writeFileSync(me, '');
    if (addressPresent(address)) return;
    let created = false;
    if (!ip(['link', 'show', iface]).ok) {
      const dummy = ip(['link', 'add', iface, 'type', 'dummy']);
      if (!dummy.ok) {
        const bridge = ip(['link', 'add', iface, 'type', 'bridge']);
        if (!bridge.ok) {
          rmSync(me, { force: true });
          throw new TetherError(
            ErrorCode.BadConfig,
            `edge address: create interface ${iface} (needs root or CAP_NET_ADMIN): ${dummy.out}; ${bridge.out}`,
          );
        }
        log.debug('no dummy driver, using an empty bridge', { iface });
      }
      created = true;
      writeFileSync(marker, String(process.pid));
    }
    const add = ip(['addr', 'add', `${address}/32`, 'dev', iface]);
    const up = ip(['link', 'set', iface, 'up']);
    if (!add.ok || !up.ok) {
      rmSync(me, { force: true });
      throw new TetherError(ErrorCode.BadConfig, `edge address: add ${address} to ${iface}: ${add.out} ${up.out}`);
    }
    log.info('edge address ready', { iface, address, created });
  });

  const user = { iface, runDir, userFile: me };
  let released = false;
  return {
    address,
    iface,
    user,
    release() {
      if (released) return;
      released = true;
      releaseEdgeAddressUser(user, log);
    },
  };
}

/**
 * Drops one user of the interface (and users whose process is gone); deletes the interface when
 * nobody uses it and Tether created it. Synchronous, so that it runs anywhere.
 */
export function releaseEdgeAddressUser(user: EdgeAddressUser, log?: Logger): void {
  const { iface, runDir, userFile } = user;
  const usersDir = join(runDir, `${iface}.users`);
  const marker = join(runDir, `${iface}.created`);
  withLock(join(runDir, `${iface}.lock`), () => {
    rmSync(userFile, { force: true });
    let users = 0;
    for (const f of existsSync(usersDir) ? readdirSync(usersDir) : []) {
      if (alive(Number(f.split('.')[0]))) users++;
      else rmSync(join(usersDir, f), { force: true });
    }
    if (users === 0 && existsSync(marker)) {
      ip(['link', 'del', iface]);
      rmSync(marker, { force: true });
      log?.info('edge address removed', { iface });
    }
  });
}
