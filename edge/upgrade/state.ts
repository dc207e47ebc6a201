/**
 * The install state of over-the-air upgrades: one small JSON file, `<dir>/state.json`, that says
 * which binary is at the install path and whether a trial of a new one is open. It is written
 * only whole (temp file, fsync, rename, fsync of the directory), so after a crash or a power loss
 * it holds either the old or the new content, never a mix. See README.md for how install.ts uses it.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { upgradeStatusSchema } from '../../shared/upgrade/contract.ts';
import type { Logger } from '../../shared/log.ts';
import { messageOf } from '../../shared/errors.ts';

export interface InstallLayout {
  /** The install path systemd starts, e.g. /usr/local/bin/tether-edge. */
  binary: string;
  /** <dataDir>/upgrade: releases/, known-good, state.json. */
  dir: string;
  /** Where corrupt state and the steps of a swap or rollback are logged (none: silent). */
  log?: Logger;
}

const trialSchema = z.object({
  upgrade: z.string().min(1),
  uid: z.string().min(1),
  /** The version swapped in and on trial. */
  version: z.string().min(1),
  /** The version that ran before the swap (kept in releases/<from>/). */
  from: z.string().min(1),
  /** RFC 3339 time of the swap; the deadline counts from here. */
  startedAt: z.string(),
  deadlineSeconds: z.number().positive(),
  /** Starts of the trial binary counted by the guard (ExecStartPre). */
  attempts: z.number().int().min(0),
  /**
   * Set before a rollback touches anything: the decision to roll back, and why. A crash in the
   * middle of a rollback is finished by whoever runs next, instead of being decided again.
   */
  rollingBack: z.string().optional(),
});

const stateSchema = z.object({
  running: z.string().min(1).optional(),
  previous: z.string().min(1).optional(),
  trial: trialSchema.optional(),
  pendingReport: upgradeStatusSchema.optional(),
  /** The last final status delivered to the Node: `tether-edge status` shows it across restarts. */
  lastReport: upgradeStatusSchema.optional(),
});

export type TrialState = z.infer<typeof trialSchema>;
export type InstallState = z.infer<typeof stateSchema>;

export const STATE_FILE = 'state.json';

export function statePath(layout: InstallLayout): string {
  return join(layout.dir, STATE_FILE);
}

/** The state; a missing file is {}, and so is a corrupt one (logged): never throws. */
export function readState(layout: InstallLayout): InstallState {
  let text: string;
  try {
    text = readFileSync(statePath(layout), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') layout.log?.warn('upgrade state unreadable, taken as empty', { path: statePath(layout), error: messageOf(e) });
    return {};
  }
  try {
    const r = stateSchema.safeParse(JSON.parse(text));
    if (r.success) return r.data;
    layout.log?.warn('upgrade state malformed, taken as empty', { path: statePath(layout), error: r.error.message });
  } catch (e) {
    layout.log?.warn('upgrade state is not JSON, taken as empty', { path: statePath(layout), error: messageOf(e) });
  }
  return {};
}

/** Replaces the state whole and durably. `onWritten` runs between the temp file and the rename (the crash test stops there). */
export async function writeState(layout: InstallLayout, state: InstallState, onWritten?: () => void | Promise<void>): Promise<void> {
  mkdirSync(layout.dir, { recursive: true, mode: 0o700 });
  const path = statePath(layout);
  const tmp = `${path}.tmp`;
  writeDurable(tmp, `${JSON.stringify(stateSchema.parse(state), null, 2)}\n`, 0o600);
  await onWritten?.();
  renameSync(tmp, path);
  fsyncDir(layout.dir);
}

/** Clears pendingReport once the agent has written it to its Node (kept as lastReport). */
export async function markReported(layout: InstallLayout): Promise<void> {
  const st = readState(layout);
  if (st.pendingReport === undefined) return;
  st.lastReport = st.pendingReport;
  delete st.pendingReport;
  await writeState(layout, st);
}

export function writeDurable(path: string, text: string, mode: number): void {
  const fd = openSync(path, 'w', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsync of a directory makes a rename or a new link in it durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
