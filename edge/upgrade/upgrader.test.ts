/**
 * The upgrader's guards and steps with a fake Node API (merge patches applied to an in-memory
 * Node), fake download and install functions (the real ones are tested in download.test.ts and
 * install.test.ts) and a real signed release (node:crypto Ed25519).
 */
import { afterEach, describe, expect, test } from 'bun:test';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryLogger } from '../../shared/log.ts';
import {
  EDGE_VERSION_ANNOTATION,
  UPGRADE_STATUS_ANNOTATION,
  UPGRADE_TARGET_ANNOTATION,
  type UpgradeStatus,
  type UpgradeTarget,
} from '../../shared/upgrade/contract.ts';
import type { DownloadPort, InstallPort, InstallState, SwapInOptions } from './ports.ts';
import { createReporter } from './report.ts';
import { NO_RELEASE_KEY, type Upgrader, createUpgrader } from './upgrader.ts';
import { sha256Hex } from './verify.ts';

const ARTIFACT = 'tether-edge-linux-x64';
const keys = generateKeyPairSync('ed25519');
const otherKeys = generateKeyPairSync('ed25519');
const releaseKey = keys.publicKey.export({ type: 'spki', format: 'pem' }).toString();

interface Release {
  files: Record<string, Buffer>;
}

function makeRelease(version: string, o: { signer?: typeof keys.privateKey; versionFile?: string; binary?: Buffer; gz?: Buffer } = {}): Release {
  const good = Buffer.from(`binary ${version}`);
  const versionBytes = Buffer.from(`${version}\n`);
  // With `gz`: the release also lists <artifact>.gz (what scripts/build.ts writes), signed like the rest.
  const gzLine = o.gz ? `${sha256Hex(o.gz)}  ${ARTIFACT}.gz\n` : '';
  const sums = Buffer.from(`${sha256Hex(good)}  ${ARTIFACT}\n${gzLine}${sha256Hex(versionBytes)}  VERSION\n`);
  return {
    files: {
      SHA256SUMS: sums,
      'SHA256SUMS.sig': sign(null, sums, o.signer ?? keys.privateKey),
      VERSION: o.versionFile !== undefined ? Buffer.from(o.versionFile) : versionBytes,
      [ARTIFACT]: o.binary ?? good,
      ...(o.gz ? { [`${ARTIFACT}.gz`]: o.gz } : {}),
    },
  };
}

const target = (version: string, uid = 'uid-1'): UpgradeTarget => ({ upgrade: 'fleet', uid, version, baseURL: `https://releases.test/tether/${version}` });

const dirs: string[] = [];
const upgraders: Upgrader[] = [];
afterEach(() => {
  for (const u of upgraders.splice(0)) u.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function rig(o: { running?: string; releaseKey?: string | null; allowDowngrade?: boolean; state?: InstallState; settle?: 'none' | 'committed' | 'rolledBack'; online?: boolean; dir?: string; release?: Release; failDownloads?: number; target?: string } = {}) {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'tether-upgrader-'));
  if (!o.dir) dirs.push(dir);
  const running = o.running ?? '0.1.0';
  const annotations: Record<string, string> = {};
  const patches: Record<string, string>[] = [];
  let online = o.online ?? true;
  let patchWorks = true;
  const fetched: string[] = [];
  const swaps: SwapInOptions[] = [];
  const swapped: Buffer[] = [];
  const restarts: string[] = [];
  const cleared: (string | undefined)[] = [];
  let reported = 0;
  let state: InstallState = o.state ?? {};
  let release = o.release ?? makeRelease('0.2.0');
  let failDownloads = o.failDownloads ?? 0;
  let downloadGate: Promise<void> | undefined;
  const serve = (file: string) => {
    fetched.push(file);
    if (!online) throw Object.assign(new Error('connect ENETUNREACH'), { code: 'ENETUNREACH' });
    if (failDownloads > 0) {
      failDownloads--;
      throw new Error(`GET ${file}: HTTP 503`);
    }
    const b = release.files[file];
    if (!b) throw new Error(`GET ${file}: HTTP 404`);
    return b;
  };
  const download: DownloadPort = {
    async fetchSmall(f) {
      return { body: serve(f.file), via: 'direct' };
    },
    async download(f) {
      await downloadGate;
      if (f.signal?.aborted) throw f.signal.reason;
      const body = serve(f.file);
      const path = join(f.dir, `${f.file}.download`);
      writeFileSync(path, body);
      return { path, bytes: body.length, sha256: sha256Hex(body), via: 'direct' };
    },
    async removeDownloads(d, keep) {
      expect(d).toBe(dir);
      cleared.push(keep);
    },
  };
  const install: InstallPort = {
    readState: () => state,
    async markReported() {
      reported++;
      state = { ...state, pendingReport: undefined };
    },
    async swapIn(_layout, s) {
      swaps.push(s);
      swapped.push(readFileSync(s.verified));
      rmSync(s.verified);
    },
    settleTrial: async () => o.settle ?? 'none',
  };
  const reporter = createReporter({
    patch: async (body) => {
      if (!online || !patchWorks) throw new Error('PATCH: connect ENETUNREACH');
      const p = (JSON.parse(body) as { metadata: { annotations: Record<string, string> } }).metadata.annotations;
      patches.push(p);
      Object.assign(annotations, p);
      return { status: 200, body: '{}' };
    },
  });
  const u = createUpgrader({
    running: { version: running, target: o.target ?? 'bun-linux-x64' },
    releaseKey: o.releaseKey === null ? undefined : (o.releaseKey ?? releaseKey),
    allowDowngrade: o.allowDowngrade ?? false,
    deadlineSeconds: 120,
    layout: { binary: join(dir, 'bin', 'tether-edge'), dir },
    install,
    download,
    report: reporter,
    online: () => online,
    healthy: async () => true,
    restart: (r) => void restarts.push(r),
    log: createMemoryLogger('error'),
    retryMs: 5,
  });
  upgraders.push(u);
  const r = {
    u,
    dir,
    annotations,
    patches,
    fetched,
    swaps,
    swapped,
    restarts,
    cleared,
    get reported() {
      return reported;
    },
    /** The phases of the status annotation, in the order they were written. */
    phases: () => patches.filter((p) => p[UPGRADE_STATUS_ANNOTATION]).map((p) => JSON.parse(p[UPGRADE_STATUS_ANNOTATION]!) as UpgradeStatus),
    setOnline(v: boolean) {
      online = v;
      u.linkChanged();
    },
    breakPatches(v: boolean) {
      patchWorks = !v;
    },
    setRelease(rel: Release) {
      release = rel;
    },
    hold() {
      let open = () => {};
      downloadGate = new Promise<void>((res) => (open = res));
      return () => {
        downloadGate = undefined;
        open();
      };
    },
    /** The hub sets (or removes) the target; the Node is seen fresh, as a recorded watch event brings it. */
    async see(t: UpgradeTarget | undefined, extra: Record<string, string> = {}, fresh = true) {
      if (t) annotations[UPGRADE_TARGET_ANNOTATION] = JSON.stringify(t);
      else delete annotations[UPGRADE_TARGET_ANNOTATION];
      Object.assign(annotations, extra);
      u.nodeSeen({ annotations: { ...annotations }, fresh });
      await u.idle();
    },
  };
  return r;
}

/** Waits (up to 2 s) for a condition while the upgrader works; `idle` too when nothing holds it. */
const settleSteps = async (u: Upgrader, until: () => boolean, idle = true) => {
  for (let i = 0; i < 400 && !until(); i++) {
    await new Promise((r) => setTimeout(r, 5));
    if (idle) await u.idle();
  }
};

describe('steps', () => {
  test('a release that lists the binary gzipped: the .gz is fetched, checked, inflated, and the binary it gives checked and swapped in', async () => {
    const r = rig({ release: makeRelease('0.2.0', { gz: gzipSync(Buffer.from('binary 0.2.0')) }) });
    expect(await r.u.start()).toBe('none');
    await r.see(target('0.2.0'));
    expect(r.phases().map((s) => s.phase)).toEqual(['Downloading', 'Verifying', 'Restarting']);
    expect(r.fetched).toEqual(['SHA256SUMS', 'SHA256SUMS.sig', 'VERSION', `${ARTIFACT}.gz`]);
    expect(r.swapped.map((b) => b.toString())).toEqual(['binary 0.2.0']);
    expect(readdirSync(r.dir).filter((f) => f.startsWith(ARTIFACT))).toEqual([]);
  });

  test('a signed .gz that inflates to another binary is refused on the binary\'s own line; nothing is swapped', async () => {
    const r = rig({ release: makeRelease('0.2.0', { gz: gzipSync(Buffer.from('not the released binary')) }) });
    expect(await r.u.start()).toBe('none');
    await r.see(target('0.2.0'));
    expect(r.phases().at(-1)).toMatchObject({ phase: 'Failed' });
    expect(r.phases().at(-1)!.reason).toStartWith(`${ARTIFACT}: sha256 ${sha256Hex(Buffer.from('not the released binary'))} does not match SHA256SUMS`);
    expect(r.swaps).toEqual([]);
    expect(readdirSync(r.dir).filter((f) => f.startsWith(ARTIFACT))).toEqual([]);
  });

  test('a good release: Downloading, Verifying, swapIn with the verified file, Restarting, then the restart', async () => {
    const r = rig();
    expect(await r.u.start()).toBe('none');
    await r.see(target('0.2.0'));
    expect(r.phases().map((s) => s.phase)).toEqual(['Downloading', 'Verifying', 'Restarting']);
    expect(r.phases()[2]).toMatchObject({ upgrade: 'fleet', uid: 'uid-1', version: '0.2.0', previous: '0.1.0' });
    expect(r.fetched).toEqual(['SHA256SUMS', 'SHA256SUMS.sig', 'VERSION', ARTIFACT]);
    expect(r.swaps).toEqual([{ verified: join(r.dir, `${ARTIFACT}.download`), version: '0.2.0', from: '0.1.0', upgrade: 'fleet', uid: 'uid-1', deadlineSeconds: 120 }]);
    expect(r.restarts).toEqual(['upgrade fleet to 0.2.0']);
  });

  test('a bad signature: Failed with the reason, the binary never downloaded, nothing swapped', async () => {
    const r = rig({ release: makeRelease('0.2.0', { signer: otherKeys.privateKey }) });
    await r.u.start();
    await r.see(target('0.2.0'));
    const last = r.phases().at(-1)!;
    expect(last).toMatchObject({ phase: 'Failed', reason: 'SHA256SUMS.sig does not verify with the pinned release key' });
    expect(r.fetched).not.toContain(ARTIFACT);
    expect(r.swaps).toEqual([]);
    expect(r.restarts).toEqual([]);
  });

  test('VERSION not the target (an old signed release replayed): Failed, nothing swapped', async () => {
    const r = rig({ release: makeRelease('0.1.5') });
    await r.u.start();
    await r.see(target('0.2.0'));
    expect(r.phases().at(-1)).toMatchObject({ phase: 'Failed', reason: 'VERSION says "0.1.5", the target is 0.2.0' });
    expect(r.swaps).toEqual([]);
  });

  test('a binary whose checksum does not match: Failed after Verifying, the download removed, nothing swapped', async () => {
    const r = rig({ release: makeRelease('0.2.0', { binary: Buffer.from('tampered binary') }) });
    await r.u.start();
    await r.see(target('0.2.0'));
    expect(r.phases().map((s) => s.phase)).toEqual(['Downloading', 'Verifying', 'Failed']);
    expect(r.phases().at(-1)!.reason).toStartWith(`${ARTIFACT}: sha256 ${sha256Hex(Buffer.from('tampered binary'))} does not match SHA256SUMS`);
    expect(r.swaps).toEqual([]);
    expect(readdirSync(r.dir).filter((f) => f.endsWith('.download'))).toEqual([]);
    // Other upgrades' leftovers cleared before the download (this one's kept to resume), all of them after the failure.
    expect(r.cleared).toEqual(['fleet', undefined]);
  });

  test("with no target, or the running version as target, what downloads left is cleared", async () => {
    const r = rig({ running: '0.2.0' });
    await r.u.start();
    await r.see(undefined, { [EDGE_VERSION_ANNOTATION]: '0.2.0' });
    await r.see(target('0.2.0'));
    expect(r.cleared).toEqual([undefined, undefined]);
  });

  test('a download that keeps failing online: Failed after 3 attempts; one that recovers goes on', async () => {
    const bad = rig({ failDownloads: 10 });
    await bad.u.start();
    await bad.see(target('0.2.0'));
    expect(bad.phases().at(-1)).toMatchObject({ phase: 'Failed', reason: 'SHA256SUMS failed after 3 attempt(s): GET SHA256SUMS: HTTP 503' });
    expect(bad.fetched).toEqual(['SHA256SUMS', 'SHA256SUMS', 'SHA256SUMS']);
    const flaky = rig({ failDownloads: 2 });
    await flaky.u.start();
    await flaky.see(target('0.2.0'));
    expect(flaky.swaps.length).toBe(1);
  });

  test('a target removed during the download stops the upgrade before the swap', async () => {
    const r = rig();
    await r.u.start();
    const open = r.hold();
    r.u.nodeSeen({ annotations: { [UPGRADE_TARGET_ANNOTATION]: JSON.stringify(target('0.2.0')) }, fresh: true });
    await settleSteps(r.u, () => r.fetched.includes('VERSION'), false);
    r.u.nodeSeen({ annotations: {}, fresh: true });
    open();
    await r.u.idle();
    expect(r.swaps).toEqual([]);
    expect(r.restarts).toEqual([]);
    expect(r.phases().map((s) => s.phase)).toEqual(['Downloading']);
  });
});

describe('guards', () => {
  test('offline: no step runs (no report, no fetch); back online, the upgrade starts', async () => {
    const r = rig({ online: false });
    await r.u.start();
    await r.see(target('0.2.0'));
    expect(r.patches).toEqual([]);
    expect(r.fetched).toEqual([]);
    expect(r.u.summary().waiting).toStartWith('offline');
    r.setOnline(true);
    await r.u.idle();
    expect(r.swaps.length).toBe(1);
  });

  test('the link lost during the download: not Failed; the upgrade goes on when it is back', async () => {
    const r = rig();
    await r.u.start();
    const open = r.hold();
    r.u.nodeSeen({ annotations: { [UPGRADE_TARGET_ANNOTATION]: JSON.stringify(target('0.2.0')) }, fresh: true });
    await settleSteps(r.u, () => r.fetched.includes('VERSION'), false);
    r.setOnline(false);
    open();
    await r.u.idle();
    expect(r.phases().map((s) => s.phase)).toEqual(['Downloading']);
    expect(r.swaps).toEqual([]);
    r.setOnline(true);
    await settleSteps(r.u, () => r.swaps.length > 0);
    expect(r.swaps.length).toBe(1);
    expect(r.phases().map((s) => s.phase)).toEqual(['Downloading', 'Downloading', 'Verifying', 'Restarting']);
  });

  test('no pinned release key: Failed "no release key pinned", nothing fetched', async () => {
    const r = rig({ releaseKey: null });
    await r.u.start();
    await r.see(target('0.2.0'));
    expect(r.phases()).toEqual([expect.objectContaining({ phase: 'Failed', reason: NO_RELEASE_KEY })]);
    expect(NO_RELEASE_KEY).toBe('no release key pinned (tether-edge join --release-key)');
    expect(r.fetched).toEqual([]);
  });

  test('an older version is refused unless upgrade.allowDowngrade', async () => {
    const r = rig({ running: '0.3.0' });
    await r.u.start();
    await r.see(target('0.2.0'));
    expect(r.phases()).toEqual([expect.objectContaining({ phase: 'Failed', reason: 'downgrade refused: 0.2.0 is older than the running 0.3.0 (upgrade.allowDowngrade allows it)' })]);
    expect(r.fetched).toEqual([]);
    const allowed = rig({ running: '0.3.0', allowDowngrade: true });
    await allowed.u.start();
    await allowed.see(target('0.2.0'));
    expect(allowed.swaps.map((s) => s.version)).toEqual(['0.2.0']);
  });

  test('the running version as target: nothing fetched, nothing reported', async () => {
    const r = rig({ running: '0.2.0' });
    await r.u.start();
    await r.see(target('0.2.0'), { [EDGE_VERSION_ANNOTATION]: '0.2.0' });
    expect(r.patches).toEqual([]);
    expect(r.fetched).toEqual([]);
  });

  test('a (uid, version) that ended Failed is not tried again, not even by the next process', async () => {
    const r = rig({ release: makeRelease('0.2.0', { signer: otherKeys.privateKey }) });
    await r.u.start();
    await r.see(target('0.2.0'));
    const fetchedOnce = [...r.fetched];
    // A good release at the same place now: the hub's answer to a failure is a new EdgeUpgrade.
    r.setRelease(makeRelease('0.2.0'));
    await r.see(target('0.2.0'), { [UPGRADE_STATUS_ANNOTATION]: 'removed by someone' });
    expect(r.fetched).toEqual(fetchedOnce);
    const next = rig({ dir: r.dir });
    await next.u.start();
    await next.see(target('0.2.0'));
    expect(next.fetched).toEqual([]);
    expect(next.phases()).toEqual([]);
    // A new rollout (new uid) is tried.
    await next.see(target('0.2.0', 'uid-2'));
    expect(next.swaps.map((s) => s.uid)).toEqual(['uid-2']);
  });

  test('a (uid, version) the status annotation says RolledBack is not tried again', async () => {
    const r = rig();
    await r.u.start();
    const rolledBack: UpgradeStatus = { upgrade: 'fleet', uid: 'uid-1', version: '0.2.0', phase: 'RolledBack', reason: 'did not become healthy', time: new Date().toISOString() };
    await r.see(target('0.2.0'), { [UPGRADE_STATUS_ANNOTATION]: JSON.stringify(rolledBack) });
    expect(r.fetched).toEqual([]);
    expect(r.swaps).toEqual([]);
  });

  test('a copy of the Node from before the restart (not fresh) is never acted on', async () => {
    const r = rig();
    await r.u.start();
    await r.see(target('0.2.0'), {}, false);
    expect(r.fetched).toEqual([]);
    await r.see(target('0.2.0'));
    expect(r.swaps.length).toBe(1);
  });

  test('a build run from source, or the Node bundle, refuses: there is no release binary to replace', async () => {
    for (const t of ['source-linux-x64', 'node-linux']) {
      const r = rig({ target: t });
      await r.u.start();
      await r.see(target('0.2.0'));
      expect(r.phases().at(-1)!.reason).toBe(`this tether-edge (${t}) is not a compiled release binary; it cannot upgrade itself (upgrade it by hand)`);
      expect(r.fetched).toEqual([]);
    }
  });

  test('a malformed target annotation is ignored', async () => {
    const r = rig();
    await r.u.start();
    r.u.nodeSeen({ annotations: { [UPGRADE_TARGET_ANNOTATION]: '{"version":"0.2.0"}' }, fresh: true });
    await r.u.idle();
    expect(r.phases()).toEqual([]);
    expect(r.fetched).toEqual([]);
  });
});

describe('after a restart', () => {
  const healthy = (phase: 'Healthy' | 'RolledBack'): UpgradeStatus => ({
    upgrade: 'fleet', uid: 'uid-1', version: '0.2.0', phase, previous: '0.1.0', ...(phase === 'RolledBack' ? { reason: 'tether-edge 0.2.0 did not become healthy within 120s of the swap' } : {}), time: new Date().toISOString(),
  });

  test('a committed trial reports Healthy, then clears the pending report', async () => {
    const r = rig({ running: '0.2.0', settle: 'committed', state: { running: '0.2.0', previous: '0.1.0', pendingReport: healthy('Healthy') } });
    expect(await r.u.start()).toBe('committed');
    await r.u.idle();
    expect(r.phases().map((s) => s.phase)).toEqual(['Healthy']);
    expect(r.reported).toBe(1);
    expect(r.u.summary()).toMatchObject({ running: '0.2.0', previous: '0.1.0', last: { phase: 'Healthy' } });
  });

  test('offline, the report waits (pending kept) and goes out when the link is back', async () => {
    const r = rig({ running: '0.2.0', settle: 'committed', online: false, state: { running: '0.2.0', previous: '0.1.0', pendingReport: healthy('Healthy') } });
    await r.u.start();
    await r.u.idle();
    expect(r.patches).toEqual([]);
    expect(r.reported).toBe(0);
    r.setOnline(true);
    await settleSteps(r.u, () => r.reported > 0);
    expect(r.phases().map((s) => s.phase)).toEqual(['Healthy']);
    expect(r.reported).toBe(1);
  });

  test('a failed patch keeps the report pending and tries again', async () => {
    const r = rig({ running: '0.2.0', settle: 'committed', state: { pendingReport: healthy('Healthy') } });
    r.breakPatches(true);
    await r.u.start();
    await r.u.idle();
    expect(r.reported).toBe(0);
    r.breakPatches(false);
    await settleSteps(r.u, () => r.reported > 0);
    expect(r.reported).toBe(1);
  });

  test('a trial that did not become healthy: restart into the previous binary, nothing else', async () => {
    const r = rig({ running: '0.2.0', settle: 'rolledBack' });
    expect(await r.u.start()).toBe('rolledBack');
    await r.see(target('0.3.0'));
    expect(r.restarts).toEqual(['rolled back from 0.2.0']);
    expect(r.patches).toEqual([]);
    expect(r.fetched).toEqual([]);
  });

  test('the previous binary reports RolledBack with the reason, and never retries that target', async () => {
    const r = rig({ running: '0.1.0', state: { running: '0.1.0', pendingReport: healthy('RolledBack') } });
    await r.u.start();
    await r.see(target('0.2.0'));
    expect(r.phases()).toEqual([expect.objectContaining({ phase: 'RolledBack', reason: 'tether-edge 0.2.0 did not become healthy within 120s of the swap' })]);
    expect(r.fetched).toEqual([]);
    expect(r.reported).toBe(1);
  });

  test('committed but its report lost (the Node still says Restarting): Healthy is reported', async () => {
    const r = rig({ running: '0.2.0', state: { running: '0.2.0', previous: '0.1.0' } });
    await r.u.start();
    const restarting: UpgradeStatus = { upgrade: 'fleet', uid: 'uid-1', version: '0.2.0', phase: 'Restarting', previous: '0.1.0', time: new Date().toISOString() };
    await r.see(target('0.2.0'), { [UPGRADE_STATUS_ANNOTATION]: JSON.stringify(restarting), [EDGE_VERSION_ANNOTATION]: '0.2.0' });
    expect(r.phases().map((s) => s.phase)).toEqual(['Healthy']);
    expect(r.phases()[0]).toMatchObject({ phase: 'Healthy', previous: '0.1.0' });
  });
});

describe('the version annotation', () => {
  test('written when the Node shows another version (an old copy is enough to compare), once', async () => {
    const r = rig({ running: '0.2.0' });
    await r.u.start();
    await r.see(undefined, { [EDGE_VERSION_ANNOTATION]: '0.1.0' }, false);
    expect(r.patches).toEqual([{ [EDGE_VERSION_ANNOTATION]: '0.2.0' }]);
    await r.see(undefined);
    expect(r.patches.length).toBe(1);
  });

  test('not written when it already says the running version, nor while offline', async () => {
    const same = rig({ running: '0.2.0' });
    await same.u.start();
    await same.see(undefined, { [EDGE_VERSION_ANNOTATION]: '0.2.0' });
    expect(same.patches).toEqual([]);
    const off = rig({ running: '0.2.0', online: false });
    await off.u.start();
    await off.see(undefined, { [EDGE_VERSION_ANNOTATION]: '0.1.0' });
    expect(off.patches).toEqual([]);
    off.setOnline(true);
    await off.u.idle();
    expect(off.patches).toEqual([{ [EDGE_VERSION_ANNOTATION]: '0.2.0' }]);
  });
});

