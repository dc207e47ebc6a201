/**
 * File operations of install.ts that survive a crash at any instant: a path is replaced only by
 * renaming a complete, fsynced file over it, and the directory is fsynced after, so a reader sees
 * the old file or the new one, never a part. Internal to edge/upgrade.
 */
import { chmodSync, closeSync, copyFileSync, existsSync, fsyncSync, linkSync, openSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fsyncDir } from './state.ts';

export type StepHook = (step: string) => void | Promise<void>;

/** The temp name beside `dest` that a replace writes first; one name, so a crash leaves at most one. */
export function tempBeside(dest: string): string {
  return join(dirname(dest), `.${basename(dest)}.tether-new`);
}

function fsyncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Puts a copy of `src` at `dest` (mode 0755): copy to a temp file in dest's own directory (a
 * rename is atomic only within one file system), fsync, rename over, fsync the directory.
 * `onStep(tempStep)` runs when the temp file is complete and not yet renamed.
 */
export async function replaceWithCopy(src: string, dest: string, onStep?: StepHook, tempStep = 'binary-temp'): Promise<void> {
  const tmp = tempBeside(dest);
  rmSync(tmp, { force: true });
  copyFileSync(src, tmp);
  chmodSync(tmp, 0o755);
  fsyncFile(tmp);
  await onStep?.(tempStep);
  renameSync(tmp, dest);
  fsyncDir(dirname(dest));
}

/**
 * Makes `dest` name the same file as `src` (a hard link), replacing what was there atomically; a
 * copy when they are on different file systems. For files inside the upgrade directory (a link
 * costs no space) and for keeping the running binary.
 */
export async function replaceWithLink(src: string, dest: string, onStep?: StepHook, tempStep?: string): Promise<void> {
  const tmp = tempBeside(dest);
  rmSync(tmp, { force: true });
  try {
    linkSync(src, tmp);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    copyFileSync(src, tmp);
    chmodSync(tmp, 0o755);
    fsyncFile(tmp);
  }
  if (tempStep) await onStep?.(tempStep);
  renameSync(tmp, dest);
  fsyncDir(dirname(dest));
}

/** Moves a complete file into place durably (rename; a copy across file systems). */
export function moveInto(src: string, dest: string): void {
  chmodSync(src, 0o755);
  fsyncFile(src);
  try {
    renameSync(src, dest);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    const tmp = tempBeside(dest);
    copyFileSync(src, tmp);
    chmodSync(tmp, 0o755);
    fsyncFile(tmp);
    renameSync(tmp, dest);
    rmSync(src, { force: true });
  }
  fsyncDir(dirname(dest));
}

export function sameInode(a: string, b: string): boolean {
  try {
    const sa = statSync(a);
    const sb = statSync(b);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

/** Whether two paths hold the same bytes (false when either is missing). */
export function sameContent(a: string, b: string): boolean {
  if (!existsSync(a) || !existsSync(b)) return false;
  if (sameInode(a, b)) return true;
  if (statSync(a).size !== statSync(b).size) return false;
  const fa = openSync(a, 'r');
  const fb = openSync(b, 'r');
  try {
    const ba = Buffer.alloc(1 << 20);
    const bb = Buffer.alloc(1 << 20);
    for (;;) {
      const na = readSync(fa, ba, 0, ba.length, null);
      const nb = readSync(fb, bb, 0, bb.length, null);
      if (na !== nb) return false;
      if (na === 0) return true;
      if (!ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
    }
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
}
