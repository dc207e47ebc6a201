/**
 * `tether-edge run` (from source, as a child process) with a trial of its own version that is past
 * its deadline: the agent rolls back to the previous binary, stops cleanly and exits 0, so that
 * systemd (Restart=always) starts the previous version, which reports RolledBack.
 */
import { afterAll, expect, test } from 'bun:test';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildInfo } from '../../shared/version.ts';

const root = mkdtempSync(join(tmpdir(), 'tether-run-restart-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const main = fileURLToPath(new URL('../main.ts', import.meta.url));

test('a trial past its deadline: the previous binary is put back and the agent exits 0 to be restarted', async () => {
  const dataDir = join(root, 'data');
  const binary = join(root, 'bin', 'tether-edge');
  const upgradeDir = join(dataDir, 'upgrade');
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(join(upgradeDir, 'releases', '0.0.9'), { recursive: true });
  writeFileSync(binary, '#!/bin/sh\necho new\n', { mode: 0o755 });
  writeFileSync(join(upgradeDir, 'releases', '0.0.9', 'tether-edge'), '#!/bin/sh\necho 0.0.9\n', { mode: 0o755 });
  const trial = { upgrade: 'fleet', uid: 'u1', version: buildInfo.version, from: '0.0.9', startedAt: '2026-01-01T00:00:00.000Z', deadlineSeconds: 1, attempts: 1 };
  writeFileSync(join(upgradeDir, 'state.json'), JSON.stringify({ running: '0.0.9', trial }));
  const config = join(root, 'edge.yaml');
  // Nothing listens on port 1: the agent is offline, which does not matter past the deadline.
  writeFileSync(config, JSON.stringify({ servers: ['http://127.0.0.1:1'], listen: '127.0.0.1:0', adminListen: '127.0.0.1:0', dataDir, insecurePlainHttp: true, logFormat: 'text', upgrade: { binary } }));
  const child = spawn(process.execPath, [main, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearTimeout(killer);
  expect({ code, stopped: out.includes('stopping to restart') }).toEqual({ code: 0, stopped: true });
  expect(readFileSync(binary, 'utf8')).toBe('#!/bin/sh\necho 0.0.9\n');
  const state = JSON.parse(readFileSync(join(upgradeDir, 'state.json'), 'utf8')) as { trial?: unknown; pendingReport?: { phase: string; reason?: string } };
  expect(state.trial).toBeUndefined();
  expect(state.pendingReport).toMatchObject({ phase: 'RolledBack', reason: `tether-edge ${buildInfo.version} did not become healthy within 1s of the swap` });
}, 90_000);
