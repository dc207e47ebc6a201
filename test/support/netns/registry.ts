/**
 * Which process owns which edge-site index, across concurrent test processes.
 *
 * A site's index (1..250) is claimed by creating /run/tether-sites/<index> with O_EXCL; the file
 * holds `{ pid, ns, name }`. The claim is made before any link or namespace exists and dropped
 * after they are gone, so:
 *   - a `tether-<i>-*` link with no claim file belongs to a run that died half-way: stale;
 *   - a claim whose pid is dead is stale: its namespace and links are removed and the file freed;
 *   - a namespace `tether-<name>` is in use only while a live claim names it.
 * Links are listed before claims are read, so a concurrent creator's fresh link is never mistaken
 * for an orphan (its claim file existed before its link).
 */
import { mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs';
import { ErrorCode, TetherError } from '../../../shared/errors.ts';
import { isAlive, runSync } from './commands.ts';

export const CLAIM_DIR = '/run/tether-sites';
export const MAX_INDEX = 250;

export interface Claim {
  index: number;
  pid: number;
  ns: string;
  name: string;
}

export const linkNames = (index: number) => ({
  host: `tether-${index}-h`, // root-namespace end of the veth pair
  site: `tether-${index}-n`, // namespace end
  wanRoot: `tether-${index}-wr`, // user-space WAN TUN devices (only while wan() is active)
  wanSite: `tether-${index}-ws`,
});

export function readClaims(): Claim[] {
  let files: string[];
  try {
    files = readdirSync(CLAIM_DIR);
  } catch {
    return [];
  }
  const claims: Claim[] = [];
  for (const f of files) {
    if (!/^\d+$/.test(f)) continue;
    try {
      const c = JSON.parse(readFileSync(`${CLAIM_DIR}/${f}`, 'utf8')) as Omit<Claim, 'index'>;
      claims.push({ ...c, index: Number(f) });
    } catch {
      // Being written right now, or torn by a crash: treated as live until it can be read.
      claims.push({ index: Number(f), pid: process.pid, ns: '', name: '' });
    }
  }
  return claims;
}

/** Kills every process in the namespace, deletes it and the site's links. Never throws. */
export function teardownSync(index: number, ns: string): void {
  if (ns) {
    const pids = runSync(['ip', 'netns', 'pids', ns]).stdout.split(/\s+/).filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    runSync(['ip', 'netns', 'del', ns]);
  }
  const names = linkNames(index);
  runSync(['ip', 'link', 'del', names.host]);
  runSync(['ip', 'link', 'del', names.site]);
}

export function releaseClaim(index: number): void {
  rmSync(`${CLAIM_DIR}/${index}`, { force: true });
}

/**
 * Removes what dead runs left behind, and the namespace `ns` if no live run owns it.
 * Throws when a live process owns `ns`.
 */
export function sweepStale(ns: string): void {
  const links = JSON.parse(runSync(['ip', '-j', 'link', 'show']).stdout || '[]') as { ifname: string }[];
  const claims = readClaims();
  for (const c of claims) {
    if (c.ns === ns && c.pid !== process.pid && isAlive(c.pid)) {
      throw new TetherError(ErrorCode.BadConfig, `create edge site: namespace ${ns} is in use by pid ${c.pid}`);
    }
  }
  for (const c of claims) {
    if (c.pid === process.pid || isAlive(c.pid)) continue;
    teardownSync(c.index, c.ns);
    releaseClaim(c.index);
  }
  const claimed = new Set(claims.map((c) => c.index));
  for (const l of links) {
    const m = /^tether-(\d+)-(h|n)$/.exec(l.ifname);
    if (m && !claimed.has(Number(m[1]))) runSync(['ip', 'link', 'del', l.ifname]);
  }
  if (!claims.some((c) => c.ns === ns && (c.pid === process.pid || isAlive(c.pid)))) {
    if (runSync(['ip', 'netns', 'list']).stdout.split('\n').some((l) => l.split(' ')[0] === ns)) teardownSync(0, ns);
  }
}

/** Claims the lowest free index for `ns`; the caller must releaseClaim it after teardown. */
export function claimIndex(ns: string, name: string): number {
  mkdirSync(CLAIM_DIR, { recursive: true });
  for (let index = 1; index <= MAX_INDEX; index++) {
    let fd: number;
    try {
      fd = openSync(`${CLAIM_DIR}/${index}`, 'wx');
    } catch {
      continue;
    }
    writeSync(fd, JSON.stringify({ pid: process.pid, ns, name }));
    closeSync(fd);
    return index;
  }
  throw new TetherError(ErrorCode.Internal, `create edge site: all ${MAX_INDEX} site indexes are in use`);
}
