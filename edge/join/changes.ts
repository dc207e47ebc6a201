/**
 * What join changes on disk, applied as one undoable change set, and undone by reset.
 *
 * Apply (nothing is touched before every network step of join has succeeded):
 *   1. refuse if a manifest exists (already joined);
 *   2. create the missing directories (parents first), then write the manifest: every directory
 *      created, every file to be written, and a backup entry for each file that exists already;
 *   3. copy each existing file to <backupDir>/<its path> (content, mode and mtime kept);
 *   4. write each file to a temporary name and rename it into place.
 * Any failure undoes what was done and rethrows: nothing is left half-written.
 *
 * Undo (reset, and rollback of a failed apply): restore every backup that exists, remove every
 * written file that had no original, remove the manifest, then remove created directories in
 * reverse order: Tether's own (pki, backup, data) with their contents, others only when empty.
 * A crash in the middle of apply leaves a manifest that undo can still follow (missing backups
 * mean the original was never touched).
 *
 * Every path is absolute as on the node; `root` ("/" or a directory standing for it) is prefixed
 * when touching the disk.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, rmdirSync, statSync, chmodSync, utimesSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import { writeSecretFile } from '../certs/cert-files.ts';

export interface PlannedFile {
  path: string;
  content: string | Buffer;
  mode: number;
}

export interface PlannedDir {
  path: string;
  mode: number;
  /** Tether's own: removed with its contents on undo (when join created it). */
  owned: boolean;
}

export interface ChangePlan {
  manifestPath: string;
  backupDir: string;
  /** Directories to create when missing (their parents are created too, mode 0755). */
  dirs: PlannedDir[];
  files: PlannedFile[];
  /** Kept in the manifest for reset (node name, server, what systemd should do…). */
  meta: Record<string, unknown>;
}

export interface Manifest {
  version: 1;
  meta: Record<string, unknown>;
  dirs: { path: string; owned: boolean }[];
  files: string[];
  backups: { path: string; backup: string; mode: number; mtimeMs: number }[];
}

export interface UndoResult {
  restored: string[];
  removed: string[];
  /** Directories join created that still hold something not Tether's; left in place. */
  kept: string[];
}

const at = (root: string, p: string) => join(root, p);
const isFile = (p: string) => existsSync(p) && statSync(p).isFile();

export function readManifest(root: string, manifestPath: string): Manifest | undefined {
  const file = at(root, manifestPath);
  if (!existsSync(file)) return undefined;
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
    if (m.version !== 1) throw new Error(`unknown version ${String(m.version)}`);
    return m;
  } catch (e) {
    throw new TetherError(ErrorCode.BadConfig, `read ${file}: ${messageOf(e)}`, { cause: e });
  }
}

/** The directories that do not exist yet, parents first, each once. */
function missingDirs(root: string, plan: ChangePlan): { path: string; mode: number; owned: boolean }[] {
  const wanted = new Map<string, PlannedDir>();
  const add = (d: PlannedDir) => {
    for (let p = d.path; p !== '/' && p !== '.'; p = dirname(p)) {
      if (!wanted.has(p)) wanted.set(p, p === d.path ? d : { path: p, mode: 0o755, owned: false });
    }
  };
  for (const d of plan.dirs) add(d);
  for (const f of plan.files) add({ path: dirname(f.path), mode: 0o755, owned: false });
  for (const f of plan.files) if (existsSync(at(root, f.path))) add({ path: dirname(join(plan.backupDir, f.path)), mode: 0o700, owned: false });
  // Explicitly planned entries win over implied parents.
  for (const d of plan.dirs) wanted.set(d.path, d);
  return [...wanted.values()].filter((d) => !existsSync(at(root, d.path))).sort((a, b) => a.path.split('/').length - b.path.split('/').length);
}

function writeAtomically(file: string, content: string | Buffer, mode: number): void {
  const tmp = `${file}.tether-tmp`;
  writeSecretFile(tmp, content, mode);
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

export function applyChanges(root: string, plan: ChangePlan): Manifest {
  if (readManifest(root, plan.manifestPath)) {
    throw new TetherError(ErrorCode.BadConfig, `join: this node has joined already (${plan.manifestPath} exists); run \`tether-edge reset\` first`);
  }
  const dirs = missingDirs(root, plan);
  const manifest: Manifest = {
    version: 1,
    meta: plan.meta,
    dirs: dirs.map((d) => ({ path: d.path, owned: d.owned })),
    files: plan.files.map((f) => f.path),
    backups: [],
  };
  for (const f of plan.files) {
    const file = at(root, f.path);
    if (!existsSync(file)) continue;
    const st = statSync(file);
    if (!st.isFile()) throw new TetherError(ErrorCode.BadConfig, `join: ${file} exists and is not a regular file`);
    manifest.backups.push({ path: f.path, backup: join(plan.backupDir, f.path), mode: st.mode & 0o7777, mtimeMs: st.mtimeMs });
  }
  const made: typeof dirs = [];
  let manifestWritten = false;
  let step = 'create directories';
  try {
    for (const d of dirs) {
      step = `create ${at(root, d.path)}`;
      mkdirSync(at(root, d.path), { mode: d.mode });
      chmodSync(at(root, d.path), d.mode);
      made.push(d);
    }
    step = `write ${at(root, plan.manifestPath)}`;
    writeAtomically(at(root, plan.manifestPath), `${JSON.stringify(manifest, null, 2)}\n`, 0o600);
    manifestWritten = true;
    for (const b of manifest.backups) {
      step = `back up ${at(root, b.path)}`;
      copyFileSync(at(root, b.path), at(root, b.backup));
      chmodSync(at(root, b.backup), b.mode);
      utimesSync(at(root, b.backup), new Date(), new Date(b.mtimeMs));
    }
    for (const f of plan.files) {
      step = `write ${at(root, f.path)}`;
      writeAtomically(at(root, f.path), f.content, f.mode);
    }
  } catch (e) {
    if (manifestWritten) undoChanges(root, plan.manifestPath, manifest);
    else for (const d of [...made].reverse()) rmSync(at(root, d.path), { recursive: true, force: true });
    throw new TetherError(ErrorCode.Internal, `join: ${step}: ${messageOf(e)} (every change was undone)`, { cause: e });
  }
  return manifest;
}

export function undoChanges(root: string, manifestPath: string, manifest: Manifest): UndoResult {
  const result: UndoResult = { restored: [], removed: [], kept: [] };
  const backedUp = new Set(manifest.backups.map((b) => b.path));
  for (const b of manifest.backups) {
    const backup = at(root, b.backup);
    if (!existsSync(backup)) continue; // the original was never replaced
    writeAtomically(at(root, b.path), readFileSync(backup), b.mode);
    utimesSync(at(root, b.path), new Date(), new Date(b.mtimeMs));
    rmSync(backup);
    result.restored.push(b.path);
  }
  for (const f of manifest.files) {
    if (backedUp.has(f)) continue;
    for (const p of [f, `${f}.tether-tmp`]) {
      if (isFile(at(root, p))) {
        rmSync(at(root, p));
        if (p === f) result.removed.push(f);
      }
    }
  }
  for (const p of [manifestPath, `${manifestPath}.tether-tmp`]) if (isFile(at(root, p))) rmSync(at(root, p));
  for (const d of [...manifest.dirs].reverse()) {
    const dir = at(root, d.path);
    if (!existsSync(dir)) continue;
    if (d.owned) rmSync(dir, { recursive: true, force: true });
    else if (readdirSync(dir).length === 0) rmdirSync(dir);
    else {
      result.kept.push(d.path);
      continue;
    }
    result.removed.push(`${d.path}/`);
  }
  return result;
}
