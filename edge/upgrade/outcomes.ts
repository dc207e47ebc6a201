/**
 * The final outcomes of upgrades on this node (`<dir>/outcomes.json`), so that a (uid, version)
 * that ended Failed or RolledBack is never tried again, even when the Node's status annotation
 * was overwritten or could not be read (offline, no recorded copy). Written as a temp file,
 * fsynced, renamed over; a corrupt file reads as empty (logged) — the status annotation read
 * back from the Node is the second line of defence.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../shared/log.ts';
import type { UpgradeStatus } from '../../shared/upgrade/contract.ts';

const FILE = 'outcomes.json';
const KEEP = 50;

export interface Outcome {
  uid: string;
  version: string;
  phase: UpgradeStatus['phase'];
  reason?: string;
  time: string;
}

export function readOutcomes(dir: string, log?: Logger): Outcome[] {
  let text: string;
  try {
    text = readFileSync(join(dir, FILE), 'utf8');
  } catch {
    return [];
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (Array.isArray(v)) return v.filter((o): o is Outcome => typeof o?.uid === 'string' && typeof o?.version === 'string' && typeof o?.phase === 'string');
  } catch {
    // fall through
  }
  log?.warn('upgrade: outcomes file is corrupt; read as empty', { file: join(dir, FILE) });
  return [];
}

export function recordOutcome(dir: string, s: UpgradeStatus, log?: Logger): void {
  const list = readOutcomes(dir, log).filter((o) => !(o.uid === s.uid && o.version === s.version));
  list.push({ uid: s.uid, version: s.version, phase: s.phase, ...(s.reason ? { reason: s.reason } : {}), time: s.time });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${FILE}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(list.slice(-KEEP), null, 1));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, FILE));
  try {
    const d = openSync(dir, 'r');
    fsyncSync(d);
    closeSync(d);
  } catch {
    // a directory fsync is not possible everywhere; the rename is still atomic
  }
}

export function endedBadly(list: readonly Outcome[], uid: string, version: string): Outcome | undefined {
  return list.find((o) => o.uid === uid && o.version === version && (o.phase === 'Failed' || o.phase === 'RolledBack'));
}
