import { describe, expect, test } from 'bun:test';
import { ErrorCode, isTetherError } from '../errors.ts';
import { everyLabel, parseLabelSelector } from './label-selector.ts';

function parseError(text: string): string {
  try {
    parseLabelSelector(text);
  } catch (e) {
    expect(isTetherError(e, ErrorCode.BadRequest)).toBe(true);
    return (e as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(text)} to be rejected`);
}

describe('parseLabelSelector: canonical form', () => {
  // [input, canonical toString()]
  const cases: [string, string][] = [
    ['', ''],
    ['x=a,y=b,z=c', 'x=a,y=b,z=c'],
    ['z=c,x=a,y=b', 'x=a,y=b,z=c'],
    ['x!=a,y=b', 'x!=a,y=b'],
    ['x==a', 'x==a'],
    ['x=', 'x='],
    ['x= ', 'x='],
    ['x= ,z= ', 'x=,z='],
    ['!x', '!x'],
    ['  x  ', 'x'],
    ['\rx', 'x'],
    ['x>1,z<5', 'x>1,z<5'],
    ['foo  in\t (abc)', 'foo in (abc)'],
    ['x notin\n (abc)', 'x notin (abc)'],
    ['x in (def,abc,abc)', 'x in (abc,def)'],
    ['x in (abc,)', 'x in (,abc)'],
    ['x in ()', 'x in ()'],
    ['x notin ( )', 'x notin ()'],
    ['x notin (, a)', 'x notin (,a)'],
    ['x notin (abc,,def),bar,z in (),w', 'bar,w,x notin (,abc,def),z in ()'],
    ['x in (in,notin)', 'x in (in,notin)'],
    ['x=in', 'x=in'],
    ['app.kubernetes.io/name=web,tier!=db', 'app.kubernetes.io/name=web,tier!=db'],
    ['this-is-a-dns.domain.com/key-with-dash', 'this-is-a-dns.domain.com/key-with-dash'],
    ['0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)', '0.1.2.domain/99 notin (10.10.100.1,tick.tack.clock)'],
    // Same key twice: both kept, in their order (stable sort).
    ['z!=a,x=abc,z', 'x=abc,z!=a,z'],
  ];
  for (const [input, canonical] of cases) {
    test(JSON.stringify(input), () => {
      const s = parseLabelSelector(input);
      expect(s.toString()).toBe(canonical);
      // The canonical form parses back to itself.
      expect(parseLabelSelector(canonical).toString()).toBe(canonical);
    });
  }

  test('order of requirements does not change the canonical form', () => {
    expect(parseLabelSelector('x=a,a=x').toString()).toBe(parseLabelSelector('a=x,x=a').toString());
  });

  test('requirements expose key, operator and sorted values', () => {
    expect(parseLabelSelector('b notin (z,y),a>3,!c,d').requirements).toEqual([
      { key: 'a', operator: 'gt', values: ['3'] },
      { key: 'b', operator: 'notin', values: ['y', 'z'] },
      { key: 'c', operator: '!', values: [] },
      { key: 'd', operator: 'exists', values: [] },
    ]);
  });
});

describe('parseLabelSelector: rejects what the apiserver rejects', () => {
  const bad: [string, string][] = [
    ['x=a||y=b', 'values[0][x]: Invalid value: "a||y"'],
    ['x==a==b', "found '==', expected: ',' or 'end of string'"],
    ['!x=a', "found '=', expected: ',' or 'end of string'"],
    ['x<a', "the value must be an integer"],
    ['x>1.5', 'the value must be an integer'],
    ['x,,y', "found ',', expected: identifier after ','"],
    [',x,y', "found ',', expected: !, identifier, or 'end of string'"],
    ['a in (xyz),', "found '', expected: identifier after ','"],
    ['a in (xyz)b notin ()', "found 'b', expected: ',' or 'end of string'"],
    ['x nott in (y)', "found 'nott', expected: in, notin"],
    ['x in (a b)', "found 'b', expected: ',' or ')'"],
    ['x in a', "found 'a' expected: '('"],
    ['x in (a', "found '', expected: ',' or ')'"],
    ['x in (=)', "found '=', expected: ',', ')' or identifier"],
    ['x=(', "found '(', expected: identifier"],
    ['x y', "found 'y', expected: in, notin, =, ==, !=, gt, lt"],
    ['=a', "found '=', expected: !, identifier, or 'end of string'"],
    ['-x=a', 'key: Invalid value: "-x"'],
    ['a/b/c=d', 'key: Invalid value: "a/b/c"'],
    ['Example.com/x=a', 'prefix part a lowercase RFC 1123 subdomain'],
    ['/x', 'prefix part must be non-empty'],
    [`${'k'.repeat(64)}=a`, 'name part must be no more than 63 characters'],
    [`x=${'v'.repeat(64)}`, 'must be no more than 63 characters'],
    ['x=a_', 'a valid label must be an empty string'],
    ['x in (ok,-bad)', 'values[0][x]: Invalid value: "-bad"'],
    ['x=ä', 'a valid label must be an empty string'],
  ];
  for (const [input, reason] of bad) {
    test(JSON.stringify(input), () => {
      const msg = parseError(input);
      // The apiserver's own words (labels.Parse), without a step prefix: clients see them online too.
      expect(msg.startsWith('parse ')).toBe(false);
      expect(msg).toContain(reason);
    });
  }
});

describe('LabelSelector.matches', () => {
  const labels = { app: 'web', tier: 'front', version: '12', empty: '' };
  // [selector, labels, expected]
  const cases: [string, Record<string, string> | undefined, boolean][] = [
    ['', labels, true],
    ['', undefined, true],
    ['', {}, true],
    ['app=web', labels, true],
    ['app==web', labels, true],
    ['app=db', labels, false],
    ['app=web', undefined, false],
    ['missing=', labels, false],
    ['empty=', labels, true],
    ['app!=db', labels, true],
    ['app!=web', labels, false],
    ['missing!=x', labels, true],
    ['app in (db,web)', labels, true],
    ['app in (db,cache)', labels, false],
    ['missing in (a)', labels, false],
    ['app notin (db,web)', labels, false],
    ['app notin (db)', labels, true],
    ['missing notin (a)', labels, true],
    ['app', labels, true],
    ['missing', labels, false],
    ['!app', labels, false],
    ['!missing', labels, true],
    ['!missing', undefined, true],
    ['version>11', labels, true],
    ['version>12', labels, false],
    ['version<13', labels, true],
    ['version<12', labels, false],
    ['app>1', labels, false],
    ['missing<1', labels, false],
    ['app=web,tier=front', labels, true],
    ['app=web,tier=back', labels, false],
    ['app=web,!missing,tier in (front),version>2', labels, true],
    ['x,y in (a)', { y: 'a' }, false],
    // Keys that are also Object.prototype properties are looked up as own keys only.
    ['constructor', {}, false],
    ['!toString', {}, true],
    ['constructor=x', { constructor: 'x' }, true],
  ];
  for (const [selector, set, want] of cases) {
    test(`${JSON.stringify(selector)} on ${JSON.stringify(set)} → ${want}`, () => {
      expect(parseLabelSelector(selector).matches(set)).toBe(want);
    });
  }

  test('everyLabel is empty and matches anything', () => {
    expect(everyLabel.empty).toBe(true);
    expect(everyLabel.matches({ a: 'b' })).toBe(true);
    expect(everyLabel.toString()).toBe('');
    expect(parseLabelSelector('a').empty).toBe(false);
  });
});

describe('LabelSelector.requiresExactMatch', () => {
  const cases: [string, string, string | undefined][] = [
    ['app=web', 'app', 'web'],
    ['app==web', 'app', 'web'],
    ['app in (web)', 'app', 'web'],
    ['app in (web,db)', 'app', undefined],
    ['app!=web', 'app', undefined],
    ['app', 'app', undefined],
    ['tier=x', 'app', undefined],
    ['app=', 'app', ''],
  ];
  for (const [selector, key, want] of cases) {
    test(`${selector} requires ${key}=${want}`, () => {
      expect(parseLabelSelector(selector).requiresExactMatch(key)).toBe(want);
    });
  }
});
