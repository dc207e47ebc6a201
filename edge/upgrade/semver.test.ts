import { expect, test } from 'bun:test';
import { compareVersions } from './semver.ts';

test('versions order by semver precedence: numbers, then a pre-release before its release; non-semver is undefined', () => {
  const sign = (a: string, b: string) => Math.sign(compareVersions(a, b)!);
  expect(sign('0.2.0', '0.1.9')).toBe(1);
  expect(sign('0.10.0', '0.9.0')).toBe(1);
  expect(sign('1.0.0', '1.0.0')).toBe(0);
  expect(sign('1.0.0+build.5', '1.0.0')).toBe(0);
  expect(sign('1.0.0-rc.1', '1.0.0')).toBe(-1);
  expect(sign('1.0.0-rc.2', '1.0.0-rc.10')).toBe(-1);
  expect(sign('1.0.0-alpha', '1.0.0-1')).toBe(1);
  expect(sign('1.0.0-alpha.1', '1.0.0-alpha')).toBe(1);
  expect(sign('v0.2.0', '0.1.0')).toBe(1);
  expect(compareVersions('latest', '0.1.0')).toBeUndefined();
});
