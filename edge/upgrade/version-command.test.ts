/** `tether-edge version --json`: the build, and the previous version from the install state. */
import { afterAll, expect, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildInfo } from '../../shared/version.ts';
import { versionReport } from './version-command.ts';

const root = mkdtempSync(join(tmpdir(), 'tether-version-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const main = fileURLToPath(new URL('../main.ts', import.meta.url));

test('versionReport: version, commit, target; previous only when an upgrade kept one', () => {
  const dir = join(root, 'a', 'upgrade');
  expect(versionReport({ binary: join(root, 'bin'), dir })).toEqual({ version: buildInfo.version, commit: buildInfo.commit, target: buildInfo.target });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'state.json'), JSON.stringify({ running: buildInfo.version, previous: '0.0.9' }));
  expect(versionReport({ binary: join(root, 'bin'), dir })).toEqual({ version: buildInfo.version, commit: buildInfo.commit, target: buildInfo.target, previous: '0.0.9' });
});

test('tether-edge version --json --config F reads the upgrade directory the configuration names; a bad file still prints the build', () => {
  const dataDir = join(root, 'data');
  mkdirSync(join(dataDir, 'upgrade'), { recursive: true });
  writeFileSync(join(dataDir, 'upgrade', 'state.json'), JSON.stringify({ running: buildInfo.version, previous: '0.0.8' }));
  const config = join(root, 'edge.yaml');
  writeFileSync(config, `dataDir: ${dataDir}\n`);
  const run = (...args: string[]) => spawnSync(process.execPath, [main, 'version', ...args], { encoding: 'utf8' });
  const good = run('--json', '--config', config);
  expect(good.status).toBe(0);
  expect(JSON.parse(good.stdout)).toEqual({ version: buildInfo.version, commit: buildInfo.commit, target: buildInfo.target, previous: '0.0.8' });
  writeFileSync(config, 'dataDir: [unclosed\n');
  const bad = run('--json', '--config', config);
  expect(bad.status).toBe(0);
  expect(JSON.parse(bad.stdout)).toEqual({ version: buildInfo.version, commit: buildInfo.commit, target: buildInfo.target });
  expect(run('--config', config).stdout).toBe(`${buildInfo.version} (commit ${buildInfo.commit}, ${buildInfo.target})\n`);
});
