import { describe, expect, test } from 'bun:test';
import { ErrorCode, isTetherError } from '../errors.ts';
import { normalizeTarget, parseRequest } from './index.ts';

const refused = (raw: string) => {
  try {
    normalizeTarget(raw);
  } catch (e) {
    if (!isTetherError(e, ErrorCode.BadRequest)) throw e;
    return e.message;
  }
  throw new Error(`${raw} was accepted`);
};

describe('normalizeTarget: what is decided on is what is forwarded', () => {
  test('ordinary targets come back unchanged', () => {
    for (const t of [
      '/api/v1/namespaces/default/pods?watch=true&resourceVersion=5',
      '/apis/apps/v1/deployments',
      '/api/v1/namespaces/default/pods/p%2Dx',
      '/api/v1/pods?fieldSelector=spec.nodeName%3Dn1',
      '/version',
      '/api/v1/namespaces//pods',
    ]) expect(normalizeTarget(t)).toBe(t);
  });

  test('dot segments are refused, raw or percent-encoded or behind an encoded slash', () => {
    for (const t of [
      '/api/v1/namespaces/default/pods/../secrets',
      '/api/v1/namespaces/default/pods/./x',
      '/api/v1/namespaces/default/pods/%2e%2e/secrets',
      '/api/v1/namespaces/default/pods/%2E%2e/secrets',
      '/api/v1/namespaces/default/pods/.%2e/secrets',
      '/api/v1/namespaces/default/pods%2F..%2Fsecrets',
      '/api/v1/..',
    ]) expect(refused(t)).toContain('"." or ".." segments');
  });

  test('backslashes, fragments, bad escapes and non-origin targets are refused', () => {
    expect(refused('/api/v1/namespaces/default/pods\\..\\secrets')).toContain('backslash');
    expect(refused('/api/v1/pods#x')).toContain('fragment');
    expect(refused('/api/v1/pods/%zz')).toContain('invalid percent-encoding');
    expect(refused('http://198.18.0.9/api/v1/pods')).toContain('not an absolute path');
    expect(refused('*')).toContain('not an absolute path');
  });

  test('parseRequest refuses the same paths, so the path the proxy reads is never resolved differently', () => {
    expect(() => parseRequest('GET', '/api/v1/namespaces/default/pods/../secrets')).toThrow('"." or ".." segments');
    // Without the check the URL parser resolves it: the request would be read as a Secret list.
    expect(new URL('http://x/api/v1/namespaces/default/pods/../secrets').pathname).toBe('/api/v1/namespaces/default/secrets');
  });
});
