/**
 * kill -9 at every step of an upgrade's swap, trial and rollback (issue 18): after each crash the
 * install path holds the old or the new binary byte for byte, and it runs; systemd's next starts
 * (the guard, then the binary found there settling its trial) converge on one of them, the one
 * the step implies, with a consistent state. The operations run in a child process that stops
 * itself with SIGKILL from install.ts's step hook; "systemd" is this test, running the guard and
 * the binary in turn. The binaries are tiny shell scripts that print their version.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const installModule = fileURLToPath(new URL('../edge/upgrade/install.ts', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'tether-upgrade-crash-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const OLD = '1.0.0';
const NEW = '2.0.0';
const script = (v: string) => `#!/bin/sh\n# tether-edge stand-in\necho "${v}"\n`;

// The child: one install.ts operation; prints each step; SIGKILLs itself at `killAt`.
const child = join(work, 'child.ts');
writeFileSync(
  child,
  `import { guard, settleTrial, swapIn } from ${JSON.stringify(installModule)};
const a = JSON.parse(process.argv[2]);
const onStep = (s) => { process.stdout.write(s + '\\n'); if (s === a.killAt) process.kill(process.pid, 'SIGKILL'); };
const layout = { binary: a.binary, dir: a.dir };
let r;
if (a.op === 'swap') r = await swapIn(layout, { verified: a.verified, version: a.version, from: a.from, upgrade: 'up', uid: 'u1', deadlineSeconds: a.deadlineSeconds, onStep });
else if (a.op === 'guard') r = await guard(layout, { onStep });
else r = await settleTrial(layout, a.running, async () => a.healthy, { onStep, pollMs: 50 });
process.stdout.write('result ' + String(r) + '\\n');
`,
);

interface Node {
  root: string;
  binary: string;
  dir: string;
}
let seq = 0;
function freshNode(): Node {
  const root = join(work, `n${++seq}`);
  const n = { root, binary: join(root, 'bin', 'tether-edge'), dir: join(root, 'data', 'upgrade') };
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(n.dir, { recursive: true });
  writeFileSync(n.binary, script(OLD), { mode: 0o755 });
  return n;
}

interface Run {
  steps: string[];
  result?: string;
  killed: boolean;
}
function run(n: Node, op: Record<string, unknown>, killAt?: string): Run {
  const r = spawnSync(process.execPath, [child, JSON.stringify({ binary: n.binary, dir: n.dir, killAt, ...op })], { encoding: 'utf8', timeout: 60_000 });
  const lines = r.stdout.split('\n').filter(Boolean);
  const result = lines.find((l) => l.startsWith('result '))?.slice('result '.length);
  if (!killAt && r.status !== 0) throw new Error(`child ${JSON.stringify(op)} failed: ${r.stderr}`);
  return { steps: lines.filter((l) => !l.startsWith('result ')), result, killed: r.signal === 'SIGKILL' };
}
const swapOp = (n: Node, deadlineSeconds = 60) => {
  const verified = join(n.dir, 'download.tmp');
  if (!existsSync(verified)) writeFileSync(verified, script(NEW), { mode: 0o600 });
  return { op: 'swap', verified, version: NEW, from: OLD, deadlineSeconds };
};

/** The install path holds the old or the new binary, byte for byte, and it runs: its version. */
function workingBinary(n: Node): string {
  const bytes = readFileSync(n.binary, 'utf8');
  expect([script(OLD), script(NEW)]).toContain(bytes);
  const v = execFileSync(n.binary, { encoding: 'utf8' }).trim();
  expect(v).toBe(bytes === script(OLD) ? OLD : NEW);
  return v;
}
const state = (n: Node) => (existsSync(join(n.dir, 'state.json')) ? JSON.parse(readFileSync(join(n.dir, 'state.json'), 'utf8')) : {});

/** systemd's restarts: the guard (ExecStartPre), then the binary at the install path settling its trial. */
function converge(n: Node, newHealthy: boolean): string {
  for (let start = 0; start < 8; start++) {
    run(n, { op: 'guard' });
    const v = workingBinary(n);
    const r = run(n, { op: 'settle', running: v, healthy: v === OLD || newHealthy });
    if (r.result !== 'rolledBack') {
      const st = state(n);
      expect(st.trial).toBeUndefined();
      if (st.running !== undefined) expect(st.running).toBe(v);
      // The known-good binary (the one that runs the guard) is the committed one.
      if (existsSync(join(n.dir, 'known-good'))) expect(execFileSync(join(n.dir, 'known-good'), { encoding: 'utf8' }).trim()).toBe(v);
      return v;
    }
  }
  throw new Error('no convergence after 8 starts');
}

/** Prepares a node, runs `op` killing it at each of its steps, and checks each crash. */
function walk(name: string, prepare: () => Node, op: (n: Node) => Record<string, unknown>, check: (step: string, stepsBefore: string[], n: Node) => void) {
  const reference = run(prepare(), op(prepare()));
  describe(name, () => {
    test('the walk has steps to stop at', () => {
      expect(reference.steps.length).toBeGreaterThan(1);
    });
    for (const [i, step] of reference.steps.entries()) {
      test(`kill -9 after step ${step}`, () => {
        const n = prepare();
        const r = run(n, op(n), step);
        expect(r.killed).toBe(true);
        expect(r.steps.at(-1)).toBe(step);
        workingBinary(n);
        check(step, reference.steps.slice(0, i + 1), n);
      });
    }
  });
}

walk(
  'swapIn',
  freshNode,
  (n) => swapOp(n),
  (_step, done, n) => {
    // Until the trial is durably open the swap never happened; from then on the new one starts and, healthy, is committed.
    const opened = done.includes('trial-written');
    expect(converge(n, true)).toBe(opened ? NEW : OLD);
    if (opened) expect(state(n).pendingReport).toMatchObject({ phase: 'Healthy', version: NEW, previous: OLD });
    else expect(state(n).pendingReport).toBeUndefined();
  },
);

walk(
  'swapIn, then a new version that never becomes healthy',
  freshNode,
  (n) => swapOp(n, 1),
  (_step, done, n) => {
    const opened = done.includes('trial-written');
    expect(converge(n, false)).toBe(OLD);
    if (opened) expect(state(n).pendingReport).toMatchObject({ phase: 'RolledBack', version: NEW });
  },
);

const swapped = (deadlineSeconds = 60) => () => {
  const n = freshNode();
  run(n, swapOp(n, deadlineSeconds));
  return n;
};

walk('the guard counting a start', swapped(), () => ({ op: 'guard' }), (_s, _d, n) => expect(converge(n, true)).toBe(NEW));

walk(
  'settleTrial committing',
  swapped(),
  () => ({ op: 'settle', running: NEW, healthy: true }),
  (_s, _d, n) => {
    expect(converge(n, true)).toBe(NEW);
    expect(state(n)).toMatchObject({ running: NEW, previous: OLD, pendingReport: { phase: 'Healthy' } });
  },
);

walk(
  'settleTrial rolling back at the deadline',
  swapped(1),
  () => ({ op: 'settle', running: NEW, healthy: false }),
  (_s, _d, n) => {
    expect(converge(n, false)).toBe(OLD);
    expect(state(n).pendingReport).toMatchObject({ phase: 'RolledBack', reason: `tether-edge ${NEW} did not become healthy within 1s of the swap` });
  },
);

const startedThrice = () => {
  const n = swapped()();
  for (let i = 0; i < 3; i++) run(n, { op: 'guard' });
  return n;
};
walk(
  'the guard rolling back after three starts',
  startedThrice,
  () => ({ op: 'guard' }),
  (_s, _d, n) => {
    expect(converge(n, false)).toBe(OLD);
    expect(state(n).pendingReport).toMatchObject({ phase: 'RolledBack', reason: `tether-edge ${NEW} did not become healthy in 3 starts` });
  },
);

// A swap killed after the trial opened but before its rename: the guard finishes it.
const interruptedSwap = () => {
  const n = freshNode();
  expect(run(n, swapOp(n), 'trial-written').killed).toBe(true);
  return n;
};
walk(
  'the guard finishing an interrupted swap',
  interruptedSwap,
  () => ({ op: 'guard' }),
  (_s, _d, n) => expect(converge(n, true)).toBe(NEW),
);

// Killed between the two halves of a commit (known-good already the new binary), then the new
// binary fails its next three starts: the rollback puts the old one back as known-good too.
const halfCommittedThenFailing = () => {
  const n = swapped()();
  expect(run(n, { op: 'settle', running: NEW, healthy: true }, 'known-good-set').killed).toBe(true);
  for (let i = 0; i < 3; i++) run(n, { op: 'guard' });
  return n;
};
walk(
  'the guard rolling back a half-committed trial',
  halfCommittedThenFailing,
  () => ({ op: 'guard' }),
  (_s, _d, n) => expect(converge(n, false)).toBe(OLD),
);
