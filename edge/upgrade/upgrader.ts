/**
 * The agent's side of an over-the-air upgrade: reads the hub's target from its own Node, refuses
 * what it must, downloads and verifies the release, hands the verified binary to swapIn and asks
 * to be restarted; after a restart settles the trial (commit or roll back) and reports the
 * outcome. Every phase is reported in the Node's status annotation (report.ts).
 *
 * Guards, in order, before anything is fetched:
 *   - no fresh view of the Node, or the agent is offline → wait (an upgrade never starts offline);
 *   - the target version is the running one → nothing (Healthy, when its status was left unfinished);
 *   - (uid, version) already ended Failed or RolledBack here (outcomes.ts, or the status annotation
 *     read back) → never tried again: the hub's answer to that is a new EdgeUpgrade;
 *   - no pinned release key → Failed; not a compiled binary (from source, the Node bundle) → Failed;
 *   - an older version, unless upgrade.allowDowngrade → Failed "downgrade refused".
 *
 * Steps: Downloading (SHA256SUMS, SHA256SUMS.sig and VERSION, checked at once — a bad signature
 * costs the link three small files, not the binary — then the binary of this build's target),
 * Verifying (the binary's sha256 against its signed line), Restarting (swapIn, then a clean stop:
 * exit code 0, systemd starts the new binary). A download error while offline waits for the link
 * (the download resumes); three errors while online end in Failed.
 */
import { rmSync } from 'node:fs';
import { messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import {
  EDGE_VERSION_ANNOTATION,
  FINAL_PHASES,
  RELEASE_FILES,
  UPGRADE_STATUS_ANNOTATION,
  UPGRADE_TARGET_ANNOTATION,
  edgeArtifactName,
  parseAnnotation,
  upgradeStatusSchema,
  upgradeTargetSchema,
  type UpgradePhase,
  type UpgradeStatus,
  type UpgradeTarget,
} from '../../shared/upgrade/contract.ts';
import { endedBadly, readOutcomes, recordOutcome } from './outcomes.ts';
import type { DownloadPort, HubFetch, InstallLayout, InstallPort, InstallState } from './ports.ts';
import type { Reporter } from './report.ts';
import { compareVersions } from './semver.ts';
import type { NodeView } from './target.ts';
import { ReleaseRefused, checkArtifact, parseSums, verifyRelease } from './verify.ts';
import { inflateTo } from './inflate.ts';

export const NO_RELEASE_KEY = 'no release key pinned (tether-edge join --release-key)';

export interface UpgraderOptions {
  running: { version: string; target: string };
  releaseKey?: string;
  allowDowngrade: boolean;
  deadlineSeconds: number;
  layout: InstallLayout;
  install: InstallPort;
  download: DownloadPort;
  /** The release files through the hub, for a node that cannot reach baseURL itself. */
  hub?: HubFetch;
  caFile?: string;
  report: Reporter;
  online: () => boolean;
  healthy: () => Promise<boolean>;
  /** Stop the agent cleanly and exit 0 (systemd starts the binary now at layout.binary). */
  restart: (reason: string) => void;
  log: Logger;
  now?: () => Date;
  /** Wait before a report or a download is tried again (default 30 s). */
  retryMs?: number;
  /** Download attempts while online before Failed (default 3). */
  attempts?: number;
}

/** What `tether-edge status` shows of upgrades. */
export interface UpgradeSummary {
  running: string;
  previous?: string;
  /** The last status this agent reported or is about to (in progress or final). */
  last?: UpgradeStatus;
  /** Why a target is not being acted on right now (offline, trial open…). */
  waiting?: string;
}

export interface Upgrader {
  /** Settles an open trial and delivers a pending report; resolves when done (or rolled back). */
  start(): Promise<'none' | 'committed' | 'rolledBack'>;
  /** A view of the Node (target.ts). */
  nodeSeen(v: NodeView): void;
  /** The link went up or down. */
  linkChanged(): void;
  summary(): UpgradeSummary;
  /** Resolves when the current evaluation (and its steps) finished; for tests. */
  idle(): Promise<void>;
  stop(): void;
}

/** A failed step that is the link's fault: wait for it to come back and go on. */
class Offline extends Error {}

export function createUpgrader(o: UpgraderOptions): Upgrader {
  const { log, layout } = o;
  const now = o.now ?? (() => new Date());
  const retryMs = o.retryMs ?? 30_000;
  const maxAttempts = o.attempts ?? 3;
  const artifact = edgeArtifactName(o.running.target);
  let stopped = false;
  let settled = false;
  let restarting = false;
  let state: InstallState = {};
  let pending: UpgradeStatus | undefined; // a final status to deliver (from the install state or from here)
  let pendingFromState = false;
  let last: UpgradeStatus | undefined;
  let view: NodeView | undefined;
  let versionWritten = false;
  let waiting: string | undefined;
  let busy: Promise<void> | undefined;
  let current: { target: UpgradeTarget; abort: AbortController; swapped: boolean } | undefined;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let warnedMalformed: string | undefined;

  const status = (t: Pick<UpgradeTarget, 'upgrade' | 'uid' | 'version'>, phase: UpgradePhase, extra: { reason?: string; previous?: string } = {}): UpgradeStatus => ({
    upgrade: t.upgrade,
    uid: t.uid,
    version: t.version,
    phase,
    ...(extra.reason ? { reason: extra.reason } : {}),
    ...(extra.previous ? { previous: extra.previous } : {}),
    time: now().toISOString(),
  });

  const later = () => {
    if (stopped || retryTimer) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      kick();
    }, retryMs);
  };

  const report = async (s: UpgradeStatus): Promise<boolean> => {
    last = s;
    return o.report.status(s);
  };

  /** Delivers the pending final report; the install state's is cleared only once the apiserver took it. */
  const flushPending = async () => {
    if (!pending || !o.online()) return;
    const p = pending;
    if (!(await report(p))) return later();
    if (pending !== p) return;
    pending = undefined;
    if (pendingFromState) {
      pendingFromState = false;
      try {
        await o.install.markReported(layout);
      } catch (e) {
        log.warn('upgrade: clearing the delivered report failed', { error: e });
      }
    }
    log.info('upgrade: reported', { phase: p.phase, version: p.version, ...(p.reason ? { reason: p.reason } : {}) });
  };

  const writeVersion = async () => {
    if (versionWritten || !view || !o.online()) return;
    if (view.annotations[EDGE_VERSION_ANNOTATION] === o.running.version) return void (versionWritten = true);
    if (await o.report.version(o.running.version)) versionWritten = true;
    else later();
  };

  /**
   * Clears what downloads left (a refused release, an abandoned target), but a partial download of
   * `keep`: after a cut or a power loss that one resumes instead of costing the link again.
   */
  const clearDownloads = async (keep?: string) => {
    try {
      await o.download.removeDownloads?.(layout.dir, keep);
    } catch (e) {
      log.warn('upgrade: removing old downloads failed', { error: e });
    }
  };

  const fail = async (t: UpgradeTarget, reason: string) => {
    const s = status(t, 'Failed', { reason });
    await clearDownloads();
    log.warn('upgrade refused', { upgrade: t.upgrade, version: t.version, reason });
    try {
      recordOutcome(layout.dir, s, log);
    } catch (e) {
      log.warn('upgrade: recording the outcome failed', { error: e });
    }
    pending = s;
    pendingFromState = false;
    await flushPending();
  };

  const targetOf = (v: NodeView): UpgradeTarget | undefined => {
    const raw = v.annotations[UPGRADE_TARGET_ANNOTATION];
    const t = parseAnnotation(upgradeTargetSchema, raw);
    if (raw !== undefined && !t && warnedMalformed !== raw) {
      warnedMalformed = raw;
      log.warn('upgrade: the target annotation is malformed; ignored', { value: raw.slice(0, 200) });
    }
    return t;
  };

  /** Runs `f` up to maxAttempts times while online; throws Offline when the link is the cause. */
  const withRetries = async <T>(what: string, signal: AbortSignal, f: () => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await f();
      } catch (e) {
        if (signal.aborted) throw e;
        if (!o.online()) throw new Offline(`${what}: ${messageOf(e)}`);
        if (e instanceof ReleaseRefused || attempt >= maxAttempts) throw new ReleaseRefused(`${what} failed after ${attempt} attempt(s): ${messageOf(e)}`);
        log.warn('upgrade: download failed; trying again', { what, attempt, error: e });
        await new Promise((r) => setTimeout(r, Math.min(retryMs, 1000 * 2 ** attempt)));
      }
    }
  };

  const steps = async (t: UpgradeTarget, abort: AbortController) => {
    const signal = abort.signal;
    const common = { baseURL: t.baseURL, upgrade: t.upgrade, hub: o.hub, caFile: o.caFile, signal };
    if (!(await report(status(t, 'Downloading')))) throw new Offline('report Downloading');
    const small = (file: string, maxBytes: number) => withRetries(file, signal, () => o.download.fetchSmall({ ...common, file, maxBytes }).then((r) => r.body));
    const sums = await small(RELEASE_FILES.sums, 64 * 1024);
    const signature = await small(RELEASE_FILES.signature, 1024);
    const version = await small(RELEASE_FILES.version, 256);
    const expected = verifyRelease({ sums, signature, version }, { releaseKey: o.releaseKey!, version: t.version, artifact });
    // The signed SHA256SUMS may list the binary gzipped too: half the bytes over the link. The .gz is
    // checked against its own line before it is inflated, the binary it inflates to against its own.
    const gzName = `${artifact}.gz`;
    const gzSum = parseSums(sums.toString('utf8')).get(gzName);
    const MAX = 512 * 1024 * 1024;
    const fetched = await withRetries(gzSum ? gzName : artifact, signal, () => o.download.download({ ...common, file: gzSum ? gzName : artifact, dir: layout.dir, maxBytes: MAX }));
    let got = fetched;
    try {
      if (!(await report(status(t, 'Verifying')))) throw new Offline('report Verifying');
      if (gzSum) {
        checkArtifact(gzName, gzSum, fetched.sha256);
        const inflated = await inflateTo(fetched.path, `${fetched.path}.bin`, MAX, signal).catch((e: unknown) => {
          throw new ReleaseRefused(`${gzName}: ${messageOf(e)}`);
        });
        rmSync(fetched.path, { force: true });
        got = { ...fetched, ...inflated };
      }
      checkArtifact(artifact, expected, got.sha256);
      if (signal.aborted) throw signal.reason;
      current!.swapped = true; // from here on a changed target no longer stops us
      await o.install.swapIn(layout, { verified: got.path, version: t.version, from: o.running.version, upgrade: t.upgrade, uid: t.uid, deadlineSeconds: o.deadlineSeconds });
    } catch (e) {
      rmSync(got.path, { force: true });
      rmSync(fetched.path, { force: true });
      if (current?.swapped) throw new ReleaseRefused(`install failed: ${messageOf(e)}`);
      throw e;
    }
    log.info('upgrade: swapped in; restarting', { version: t.version, from: o.running.version, via: got.via });
    restarting = true;
    // Best effort: the new binary reports Healthy (or the old one RolledBack) either way.
    await Promise.race([report(status(t, 'Restarting', { previous: o.running.version })), new Promise((r) => setTimeout(r, 5000))]);
    o.restart(`upgrade ${t.upgrade} to ${t.version}`);
  };

  const run = async (t: UpgradeTarget) => {
    const abort = new AbortController();
    current = { target: t, abort, swapped: false };
    try {
      await steps(t, abort);
    } catch (e) {
      if (abort.signal.aborted) log.info('upgrade: target changed; stopped', { version: t.version });
      else if (e instanceof Offline) {
        waiting = 'offline';
        log.info('upgrade: the link is down; waiting', { version: t.version, step: e.message });
        later();
      } else await fail(t, e instanceof ReleaseRefused ? e.message : `unexpected: ${messageOf(e)}`);
    } finally {
      current = undefined;
    }
  };

  const evaluate = async () => {
    if (!view?.fresh) return;
    const t = targetOf(view);
    if (!t) {
      waiting = undefined;
      return clearDownloads();
    }
    if (!o.online()) return void (waiting = 'offline: an upgrade never starts without the link');
    waiting = undefined;
    const shown = parseAnnotation(upgradeStatusSchema, view.annotations[UPGRADE_STATUS_ANNOTATION]);
    const mine = shown && shown.uid === t.uid && shown.version === t.version ? shown : undefined;
    if (t.version === o.running.version) {
      await clearDownloads();
      // Committed, but the Healthy report was lost (or never written): say it now.
      const said = last && last.uid === t.uid && last.version === t.version && FINAL_PHASES.has(last.phase);
      if (mine && !FINAL_PHASES.has(mine.phase) && !pending && !said) {
        pending = status(t, 'Healthy', { previous: state.previous ?? mine.previous });
        await flushPending();
      }
      return;
    }
    if (endedBadly(readOutcomes(layout.dir, log), t.uid, t.version) || (mine && (mine.phase === 'Failed' || mine.phase === 'RolledBack'))) {
      log.debug('upgrade: this target already ended here; not retried', { upgrade: t.upgrade, version: t.version });
      return clearDownloads();
    }
    if (!o.releaseKey) return fail(t, NO_RELEASE_KEY);
    // Only the compiled binaries (bun-linux-*) are release artifacts; from source or the Node bundle there is nothing to swap.
    if (!o.running.target.startsWith('bun-')) return fail(t, `this tether-edge (${o.running.target}) is not a compiled release binary; it cannot upgrade itself (upgrade it by hand)`);
    const order = compareVersions(t.version, o.running.version);
    if (!o.allowDowngrade) {
      if (order === undefined) return fail(t, `downgrade refused: ${t.version} cannot be ordered against the running ${o.running.version} (not semver; upgrade.allowDowngrade allows it)`);
      if (order < 0) return fail(t, `downgrade refused: ${t.version} is older than the running ${o.running.version} (upgrade.allowDowngrade allows it)`);
    }
    await clearDownloads(t.upgrade);
    await run(t);
  };

  /** One evaluation at a time; a view that arrives meanwhile is evaluated after it. */
  let again = false;
  const kick = () => {
    if (stopped || !settled || restarting) return;
    if (busy) {
      again = true;
      return;
    }
    busy = (async () => {
      do {
        again = false;
        try {
          await flushPending();
          await writeVersion();
          await evaluate();
        } catch (e) {
          log.warn('upgrade: evaluation failed', { error: e });
        }
      } while (again && !stopped && !restarting);
    })().finally(() => (busy = undefined));
  };

  return {
    async start() {
      let r: 'none' | 'committed' | 'rolledBack' = 'none';
      try {
        r = await o.install.settleTrial(layout, o.running.version, o.healthy);
      } catch (e) {
        log.error('upgrade: settling the trial failed', { error: e });
      }
      if (r === 'rolledBack') {
        restarting = true;
        log.warn('upgrade: this version did not become healthy; the previous binary is back, restarting into it', { version: o.running.version });
        if (!stopped) o.restart(`rolled back from ${o.running.version}`);
        return r;
      }
      try {
        state = o.install.readState(layout);
      } catch (e) {
        log.warn('upgrade: reading the install state failed', { error: e });
      }
      // What a previous run of this agent delivered: shown by `tether-edge status`, and not sent again.
      if (state.lastReport) last = state.lastReport;
      if (state.pendingReport) {
        pending = state.pendingReport;
        pendingFromState = true;
        last = pending;
        if (pending.phase === 'Failed' || pending.phase === 'RolledBack') {
          try {
            recordOutcome(layout.dir, pending, log);
          } catch (e) {
            log.warn('upgrade: recording the outcome failed', { error: e });
          }
        }
      }
      if (r === 'committed') log.info('upgrade: committed', { version: o.running.version });
      settled = true;
      kick();
      return r;
    },
    nodeSeen(v) {
      view = v;
      const t = targetOf(v);
      const c = current;
      // The hub no longer wants what is being fetched (removed or replaced): stop before the swap.
      if (c && !c.swapped && (!t || t.uid !== c.target.uid || t.version !== c.target.version)) c.abort.abort(new Error('target changed'));
      kick();
    },
    linkChanged() {
      // Going offline needs nothing here: a download that fails meanwhile waits for the link (Offline).
      kick();
    },
    summary() {
      return {
        running: o.running.version,
        ...(state.previous ? { previous: state.previous } : {}),
        ...(last ? { last } : {}),
        ...(waiting ? { waiting } : !settled ? { waiting: 'settling the trial of this version' } : {}),
      };
    },
    async idle() {
      while (busy) await busy;
    },
    stop() {
      stopped = true;
      clearTimeout(retryTimer);
      current?.abort.abort(new Error('agent stopping'));
    },
  };
}
