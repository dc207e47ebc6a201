/**
 * Installing a verified tether-edge binary and keeping a working one at the install path through
 * crashes, power loss and a new version that does not come up (README.md walks every step).
 *
 *   swapIn      the upgrader, after verification: keep the running binary, open a trial, put the
 *               new binary at the install path; the caller then exits and systemd restarts it.
 *   guard       ExecStartPre, run by the known-good binary before every start: counts starts of a
 *               trial binary, finishes a swap or a rollback a crash interrupted, rolls back after
 *               MAX_ATTEMPTS starts or past the deadline.
 *   settleTrial the agent at start: a trial of its own version is committed once healthy, rolled
 *               back when the deadline passes first.
 *
 * The rule kept at every instant: the install path holds a complete binary (old or new), and
 * state.json says which: with no trial open it is `running`; with a trial open it is, or is being
 * made, releases/<trial.version> (the guard finishes that before the next start), until a
 * rollback (decided in `trial.rollingBack` before it touches anything) puts releases/<trial.from>
 * back.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import type { UpgradeStatus } from '../../shared/upgrade/contract.ts';
import { type StepHook, moveInto, replaceWithCopy, replaceWithLink, sameContent, sameInode } from './_files.ts';
import { type InstallLayout, type InstallState, type TrialState, readState, writeState } from './state.ts';

export { markReported, readState } from './state.ts';
export type { InstallLayout, InstallState, TrialState } from './state.ts';
export type { StepHook } from './_files.ts';

/** Starts of a trial binary the guard allows before it rolls back. */
export const MAX_ATTEMPTS = 3;
const BINARY_NAME = 'tether-edge';

/** The parts of the agent's configuration the install layout comes from (read defensively: `upgrade` may be absent). */
export interface InstallConfig {
  dataDir: string;
  upgrade?: { binary?: string; dir?: string };
}

export function installLayout(config: InstallConfig): InstallLayout {
  return {
    binary: config.upgrade?.binary ?? '/usr/local/bin/tether-edge',
    dir: config.upgrade?.dir ?? join(config.dataDir, 'upgrade'),
  };
}

export const releasePath = (layout: InstallLayout, version: string) => join(layout.dir, 'releases', version, BINARY_NAME);
export const knownGoodPath = (layout: InstallLayout) => join(layout.dir, 'known-good');

export interface SwapOptions {
  /** The verified binary: a temp file inside layout.dir whose checksum was checked. */
  verified: string;
  version: string;
  /** The running version (becomes the previous release). */
  from: string;
  upgrade: string;
  uid: string;
  deadlineSeconds: number;
  now?: () => number;
  /** Called after each step (the crash test stops the process there). */
  onStep?: StepHook;
}

/** The file at `verified` becomes layout.binary; the running binary is kept as the previous release; writes trial state. */
export async function swapIn(layout: InstallLayout, o: SwapOptions): Promise<void> {
  const step = o.onStep ?? (() => {});
  const st = readState(layout);
  if (st.trial) throw new TetherError(ErrorCode.Invalid, `swap in ${o.version}: a trial of ${st.trial.version} is still open (the agent settles it at start)`);
  if (o.version === o.from) throw new TetherError(ErrorCode.Invalid, `swap in ${o.version}: that version is already running`);
  for (const v of [o.version, o.from]) if (!/^[A-Za-z0-9][A-Za-z0-9.+_-]*$/.test(v)) throw new TetherError(ErrorCode.Invalid, `swap in: ${JSON.stringify(v)} is not a version`);
  if (!existsSync(o.verified)) throw new TetherError(ErrorCode.Invalid, `swap in ${o.version}: the verified file ${o.verified} does not exist`);
  if (!existsSync(layout.binary)) throw new TetherError(ErrorCode.Invalid, `swap in ${o.version}: nothing at the install path ${layout.binary}`);
  const log = layout.log?.child({ upgrade: o.upgrade, version: o.version, from: o.from });
  try {
    // 1. The running binary is kept as releases/<from>: what a rollback puts back.
    const previous = releasePath(layout, o.from);
    mkdirSync(join(layout.dir, 'releases', o.from), { recursive: true, mode: 0o700 });
    if (!sameContent(layout.binary, previous)) await replaceWithLink(layout.binary, previous);
    await step('previous-kept');
    // 2. It is the known-good binary too: the one that runs the guard while the new one is on trial.
    if (!sameInode(previous, knownGoodPath(layout))) await replaceWithLink(previous, knownGoodPath(layout), step, 'known-good-temp');
    await step('known-good-set');
    // 3. The new binary moves into the releases, still not at the install path.
    const next = releasePath(layout, o.version);
    mkdirSync(join(layout.dir, 'releases', o.version), { recursive: true, mode: 0o700 });
    moveInto(o.verified, next);
    await step('new-moved');
    // 4. The trial is open: from here on, whoever runs next makes the install path hold the new binary.
    const startedAt = new Date((o.now ?? Date.now)()).toISOString();
    const trial: TrialState = { upgrade: o.upgrade, uid: o.uid, version: o.version, from: o.from, startedAt, deadlineSeconds: o.deadlineSeconds, attempts: 0 };
    await writeState(layout, { ...st, running: o.from, trial }, () => step('trial-temp'));
    await step('trial-written');
    // 5. The swap itself: one rename.
    await replaceWithCopy(next, layout.binary, step);
    await step('binary-swapped');
    log?.info('upgrade: new binary in place, on trial', { binary: layout.binary, deadlineSeconds: o.deadlineSeconds });
  } catch (e) {
    if (e instanceof TetherError) throw e;
    throw new TetherError(ErrorCode.Internal, `swap in ${o.version}: ${messageOf(e)}`, { cause: e });
  }
}

export interface SettleOptions {
  now?: () => number;
  /** How often healthy() is asked while the trial is open (default 1 s). */
  pollMs?: number;
  onStep?: StepHook;
}

/**
 * At start of every run. 'committed': a trial of `runningVersion` passed healthy() before its
 * deadline. 'rolledBack': it did not, the previous binary is back at the install path, and the
 * caller must exit so that systemd starts it. 'none': nothing to do for this process (no trial;
 * or a trial of another version, which is closed as interrupted, leaving the running binary).
 */
export async function settleTrial(
  layout: InstallLayout,
  runningVersion: string,
  healthy: () => Promise<boolean>,
  o: SettleOptions = {},
): Promise<'none' | 'committed' | 'rolledBack'> {
  const now = o.now ?? Date.now;
  const step = o.onStep ?? (() => {});
  const st = readState(layout);
  const trial = st.trial;
  if (!trial) return 'none';
  if (trial.rollingBack !== undefined || runningVersion !== trial.version) {
    // A rollback a crash interrupted, or the trial binary is not what runs (a swap interrupted
    // before its rename, with no guard to finish it; or a binary installed by hand).
    const reason = trial.rollingBack ?? (runningVersion === trial.from
      ? `the swap to ${trial.version} did not complete: ${trial.from} started again`
      : `tether-edge ${runningVersion} runs instead of ${trial.version} (installed by hand?)`);
    const restore = runningVersion === trial.from || trial.rollingBack !== undefined;
    await rollBack(layout, st, trial, reason, step, restore);
    // The caller exits only when the install path now holds another binary than the one running.
    return restore && runningVersion !== trial.from ? 'rolledBack' : 'none';
  }
  const deadline = Date.parse(trial.startedAt) + trial.deadlineSeconds * 1000;
  const pollMs = o.pollMs ?? 1000;
  for (;;) {
    const left = deadline - now();
    if (left > 0 && (await healthyWithin(healthy, left))) {
      await commit(layout, st, trial, step);
      return 'committed';
    }
    if (now() >= deadline) {
      await rollBack(layout, st, trial, `tether-edge ${trial.version} did not become healthy within ${trial.deadlineSeconds}s of the swap`, step, true);
      return 'rolledBack';
    }
    await new Promise((r) => setTimeout(r, Math.max(1, Math.min(pollMs, deadline - now()))));
  }
}

export interface GuardOptions {
  now?: () => number;
  onStep?: StepHook;
}

/** ExecStartPre, run by the known-good binary before every start of the agent. */
export async function guard(layout: InstallLayout, o: GuardOptions = {}): Promise<'none' | 'counted' | 'rolledBack'> {
  const now = o.now ?? Date.now;
  const step = o.onStep ?? (() => {});
  const st = readState(layout);
  const trial = st.trial;
  if (!trial) return 'none';
  const next = releasePath(layout, trial.version);
  const deadline = Date.parse(trial.startedAt) + trial.deadlineSeconds * 1000;
  const reason =
    trial.rollingBack ??
    (trial.attempts >= MAX_ATTEMPTS
      ? `tether-edge ${trial.version} did not become healthy in ${trial.attempts} starts`
      : now() >= deadline
        ? `tether-edge ${trial.version} did not become healthy within ${trial.deadlineSeconds}s of the swap`
        : !existsSync(next)
          ? `the release ${trial.version} is missing from ${join(layout.dir, 'releases')}`
          : undefined);
  if (reason !== undefined) {
    await rollBack(layout, st, trial, reason, step, true);
    return 'rolledBack';
  }
  // A swap interrupted before its rename: finish it, so that the trial binary is what starts.
  if (!sameContent(layout.binary, next)) {
    await replaceWithCopy(next, layout.binary, step);
    await step('binary-swapped');
  }
  await writeState(layout, { ...st, trial: { ...trial, attempts: trial.attempts + 1 } }, () => step('count-temp'));
  await step('counted');
  return 'counted';
}

/** healthy(), false when it throws or has not answered within `ms`. */
async function healthyWithin(healthy: () => Promise<boolean>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      healthy().then((v) => v === true, () => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function report(trial: TrialState, phase: 'Healthy' | 'RolledBack', reason?: string): UpgradeStatus {
  return { upgrade: trial.upgrade, uid: trial.uid, version: trial.version, phase, previous: trial.from, time: new Date().toISOString(), ...(reason ? { reason } : {}) };
}

/** The trial binary is healthy: it becomes the known-good binary and the running version. */
async function commit(layout: InstallLayout, st: InstallState, trial: TrialState, step: StepHook): Promise<void> {
  await replaceWithLink(releasePath(layout, trial.version), knownGoodPath(layout), step, 'known-good-temp');
  await step('known-good-set');
  await writeState(layout, { running: trial.version, previous: trial.from, pendingReport: report(trial, 'Healthy') }, () => step('commit-temp'));
  await step('committed');
  prune(layout, [trial.version, trial.from]);
  layout.log?.info('upgrade: committed', { version: trial.version, previous: trial.from });
}

/**
 * Puts releases/<from> back at the install path. The decision is written first (trial.rollingBack),
 * so a crash part-way is finished by the next guard or start rather than decided again.
 * `restoreBinary` false leaves the install path alone (a binary installed by hand runs).
 */
async function rollBack(layout: InstallLayout, st: InstallState, trial: TrialState, reason: string, step: StepHook, restoreBinary: boolean): Promise<void> {
  if (trial.rollingBack === undefined) {
    await writeState(layout, { ...st, trial: { ...trial, rollingBack: reason } }, () => step('rollback-temp'));
    await step('rollback-decided');
  }
  const previous = releasePath(layout, trial.from);
  if (restoreBinary) {
    const source = existsSync(previous) ? previous : knownGoodPath(layout);
    if (!existsSync(source)) throw new TetherError(ErrorCode.Internal, `roll back to ${trial.from}: neither ${previous} nor ${knownGoodPath(layout)} exists`);
    if (!sameContent(layout.binary, source)) {
      await replaceWithCopy(source, layout.binary, step);
      await step('binary-restored');
    }
    if (existsSync(previous) && !sameInode(previous, knownGoodPath(layout))) {
      await replaceWithLink(previous, knownGoodPath(layout), step, 'known-good-temp');
      await step('known-good-restored');
    }
  }
  await writeState(layout, { running: restoreBinary ? trial.from : st.running, previous: st.previous, pendingReport: report(trial, 'RolledBack', reason) }, () => step('rolled-back-temp'));
  await step('rolled-back');
  prune(layout, [trial.from, ...(st.previous ? [st.previous] : [])]);
  layout.log?.warn('upgrade: rolled back', { version: trial.version, to: trial.from, reason });
}

/** Removes releases no state names any more (a failed or superseded one); never needed for safety. */
function prune(layout: InstallLayout, keep: string[]): void {
  const dir = join(layout.dir, 'releases');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    if (keep.includes(n)) continue;
    try {
      rmSync(join(dir, n), { recursive: true, force: true });
    } catch (e) {
      layout.log?.warn('upgrade: could not remove an old release', { release: n, error: messageOf(e) });
    }
  }
}
