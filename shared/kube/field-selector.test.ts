import { describe, expect, test } from 'bun:test';
import { ErrorCode, isTetherError } from '../errors.ts';
import { createFieldSelector, escapeFieldValue, everyField, parseFieldSelector } from './field-selector.ts';

function parseError(text: string): string {
  try {
    parseFieldSelector(text);
  } catch (e) {
    expect(isTetherError(e, ErrorCode.BadRequest)).toBe(true);
    return (e as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(text)} to be rejected`);
}

describe('parseFieldSelector', () => {
  // [input, requirements, canonical toString()]
  const cases: [string, [string, '=' | '!=', string][], string][] = [
    ['', [], ''],
    [',', [], ''],
    ['spec.nodeName=edge-1', [['spec.nodeName', '=', 'edge-1']], 'spec.nodeName=edge-1'],
    ['spec.nodeName==edge-1', [['spec.nodeName', '=', 'edge-1']], 'spec.nodeName=edge-1'],
    ['status.phase!=Running', [['status.phase', '!=', 'Running']], 'status.phase!=Running'],
    ['metadata.name=', [['metadata.name', '=', '']], 'metadata.name='],
    [
      'spec.nodeName=n,metadata.namespace!=kube-system',
      [
        ['metadata.namespace', '!=', 'kube-system'],
        ['spec.nodeName', '=', 'n'],
      ],
      'metadata.namespace!=kube-system,spec.nodeName=n',
    ],
    ['a=b,,c=d,', [['a', '=', 'b'], ['c', '=', 'd']], 'a=b,c=d'],
    // Escapes in values: \, \= \\ .
    ['a=x\\,y', [['a', '=', 'x,y']], 'a=x\\,y'],
    ['a=x\\=y', [['a', '=', 'x=y']], 'a=x\\=y'],
    ['a=x\\\\y', [['a', '=', 'x\\y']], 'a=x\\\\y'],
    ['a=\\,,b=\\=', [['a', '=', ','], ['b', '=', '=']], 'a=\\,,b=\\='],
    // The first operator wins; field names are not trimmed.
    ['a!=b\\=c', [['a', '!=', 'b=c']], 'a!=b\\=c'],
    [' a = b', [[' a ', '=', ' b']], ' a = b'],
    ['a==', [['a', '=', '']], 'a='],
  ];
  for (const [input, reqs, canonical] of cases) {
    test(JSON.stringify(input), () => {
      const s = parseFieldSelector(input);
      expect(s.requirements).toEqual(reqs.map(([field, operator, value]) => ({ field, operator, value })));
      expect(s.empty).toBe(reqs.length === 0);
      expect(s.toString()).toBe(canonical);
      expect(parseFieldSelector(canonical).toString()).toBe(canonical);
    });
  }

  const bad: [string, string][] = [
    ['spec.nodeName', "invalid selector: 'spec.nodeName'; can't understand 'spec.nodeName'"],
    ['a=b,c', "can't understand 'c'"],
    ['a=b=c', 'unescaped character in value: 61'],
    ['a=b\\', 'invalid escape sequence: \\'],
    ['a=b\\n', 'invalid escape sequence: \\n'],
    ['a\\=b=c', 'unescaped character in value: 61'],
  ];
  for (const [input, reason] of bad) {
    test(`rejects ${JSON.stringify(input)}`, () => {
      const msg = parseError(input);
      // The apiserver's own words (fields.ParseSelector), without a step prefix.
      expect(msg.startsWith('parse ')).toBe(false);
      expect(msg).toContain(reason);
    });
  }
});

describe('FieldSelector', () => {
  const fields = { 'metadata.name': 'p1', 'spec.nodeName': 'edge-1', 'status.phase': 'Running' };
  const cases: [string, boolean][] = [
    ['', true],
    ['spec.nodeName=edge-1', true],
    ['spec.nodeName=edge-2', false],
    ['spec.nodeName!=edge-2', true],
    ['spec.nodeName!=edge-1', false],
    ['spec.nodeName=edge-1,status.phase=Running', true],
    ['spec.nodeName=edge-1,status.phase!=Running', false],
    // An absent field reads as ''.
    ['missing=', true],
    ['missing=x', false],
    ['missing!=x', true],
    ['constructor=', true],
  ];
  for (const [selector, want] of cases) {
    test(`${JSON.stringify(selector)} → ${want} (as a set and as a lookup)`, () => {
      const s = parseFieldSelector(selector);
      expect(s.matches(fields)).toBe(want);
      expect(s.matches((f) => (Object.hasOwn(fields, f) ? (fields as Record<string, string>)[f] : '') ?? '')).toBe(want);
    });
  }

  test('requiresExactMatch finds the first = term and ignores !=', () => {
    const s = parseFieldSelector('metadata.name!=a,metadata.name=b,spec.nodeName=n');
    expect(s.requiresExactMatch('metadata.name')).toBe('b');
    expect(s.requiresExactMatch('spec.nodeName')).toBe('n');
    expect(s.requiresExactMatch('status.phase')).toBeUndefined();
    expect(parseFieldSelector('metadata.name!=a').requiresExactMatch('metadata.name')).toBeUndefined();
  });

  test('transform rewrites fields and keeps operators and order', () => {
    const s = parseFieldSelector('spec.host=n,b!=x').transform((field, value) => ({
      field: field === 'spec.host' ? 'spec.nodeName' : field,
      value,
    }));
    expect(s.toString()).toBe('b!=x,spec.nodeName=n');
    expect(s.requiresExactMatch('spec.nodeName')).toBe('n');
  });

  test('createFieldSelector keeps the given order and escapes values', () => {
    const s = createFieldSelector([
      { field: 'z', operator: '=', value: 'a,b' },
      { field: 'a', operator: '!=', value: '' },
    ]);
    expect(s.toString()).toBe('z=a\\,b,a!=');
    expect(s.matches({ z: 'a,b', a: 'set' })).toBe(true);
    expect(s.matches({ z: 'a,b' })).toBe(false);
  });

  test('everyField is empty and matches anything', () => {
    expect(everyField.empty).toBe(true);
    expect(everyField.matches({})).toBe(true);
  });

  test('escapeFieldValue escapes backslash, comma and equals', () => {
    expect(escapeFieldValue('a\\b,c=d')).toBe('a\\\\b\\,c\\=d');
    expect(escapeFieldValue('plain')).toBe('plain');
  });
});
