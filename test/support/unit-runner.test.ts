import { expect, test } from 'bun:test';
import { systemdUnit } from '../../edge/join/layout.ts';
import { parseService, rooted } from './unit-runner.ts';

test("join's unit: the guard as an ExecStartPre whose failure is ignored, ExecStart, Restart=always, RestartSec=2", () => {
  const s = parseService(systemdUnit('/usr/local/bin/tether-edge'));
  expect(s.pre).toEqual([{ command: ['/var/lib/tether/upgrade/known-good', 'upgrade', 'guard', '--config', '/etc/tether/edge.yaml'], ignoreFailure: true }]);
  expect(s.start).toEqual(['/usr/local/bin/tether-edge', 'run', '--config', '/etc/tether/edge.yaml']);
  expect({ restart: s.restart, restartSec: s.restartSec, burst: s.startLimitBurst, interval: s.startLimitIntervalSec }).toEqual({ restart: 'always', restartSec: 2, burst: 5, interval: 10 });
});

test('lines it would run differently from systemd are refused, not guessed', () => {
  expect(() => parseService('[Service]\nExecStart=+/bin/x\n')).toThrow(/prefix \+ is not supported/);
  expect(() => parseService('[Service]\nExecStart=/bin/sh -c "a b"\n')).toThrow(/quoting or specifiers/);
  expect(() => parseService('[Service]\nRestart=on-abort\nExecStart=/bin/x\n')).toThrow(/Restart=on-abort/);
  expect(() => parseService('[Service]\nRestart=always\n')).toThrow(/no ExecStart/);
});

test('only paths under the node prefixes move under the root', () => {
  expect(rooted('/tmp/r', '/usr/local/bin/tether-edge')).toBe('/tmp/r/usr/local/bin/tether-edge');
  expect(rooted('/tmp/r', '/var/lib/tether/upgrade/known-good')).toBe('/tmp/r/var/lib/tether/upgrade/known-good');
  expect(rooted('/tmp/r', '/etc/tetherx/a')).toBe('/etc/tetherx/a');
  expect(rooted('/tmp/r', 'run')).toBe('run');
});
