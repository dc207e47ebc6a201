import { afterAll, describe, expect, test } from 'bun:test';
import { execSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyDetachedJws } from './ca-discovery.ts';
import { caCertHash, parseBootstrapToken, parseCaCertHash } from './token.ts';

const dir = mkdtempSync(join(tmpdir(), 'tether-token-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('join secrets', () => {
  test('bootstrap tokens and CA hashes are parsed, and malformed ones refused with what to do', () => {
    expect(parseBootstrapToken('abcdef.0123456789abcdef')).toEqual({ id: 'abcdef', secret: '0123456789abcdef', value: 'abcdef.0123456789abcdef' });
    expect(() => parseBootstrapToken('ABCDEF.0123456789abcdef')).toThrow('tether-hub token create');
    expect(() => parseBootstrapToken('abcdef.0123')).toThrow('--token must look like');
    expect(parseCaCertHash(`sha256:${'AB'.repeat(32)}`)).toBe('ab'.repeat(32));
    expect(() => parseCaCertHash('md5:1234')).toThrow('--ca-cert-hash must look like sha256:');
  });

  test.each(['ec', 'rsa'])("the CA hash is kubeadm's: sha256 of the %s CA's SubjectPublicKeyInfo as openssl computes it", (alg) => {
    const key = alg === 'ec' ? '-newkey ec -pkeyopt ec_paramgen_curve:prime256v1' : '-newkey rsa:2048';
    execSync(`openssl req -x509 ${key} -nodes -keyout ${alg}.key -out ${alg}.crt -days 1 -subj /CN=ca`, { cwd: dir, stdio: 'pipe' });
    const expected = execSync(`openssl x509 -pubkey -noout -in ${alg}.crt | openssl pkey -pubin -outform der | sha256sum`, { cwd: dir, encoding: 'utf8' }).split(' ')[0];
    expect(caCertHash(readFileSync(join(dir, `${alg}.crt`), 'utf8'))).toBe(`sha256:${expected}`);
  });
});

describe('detached JWS of cluster-info', () => {
  const token = parseBootstrapToken('abcdef.0123456789abcdef');
  const content = 'apiVersion: v1\nclusters: []\n';
  const sign = (header: object, secret: string, body = content) => {
    const h = Buffer.from(JSON.stringify(header)).toString('base64url');
    const sig = createHmac('sha256', secret).update(`${h}.${Buffer.from(body).toString('base64url')}`).digest('base64url');
    return `${h}..${sig}`;
  };

  test('a signature by the token secret over the kubeconfig verifies', () => {
    expect(verifyDetachedJws(sign({ alg: 'HS256', kid: 'abcdef' }, token.secret), content, token)).toBe(true);
  });

  test('another secret, another content, another key id, another algorithm or an attached payload do not', () => {
    expect(verifyDetachedJws(sign({ alg: 'HS256', kid: 'abcdef' }, 'ffffffffffffffff'), content, token)).toBe(false);
    expect(verifyDetachedJws(sign({ alg: 'HS256', kid: 'abcdef' }, token.secret, 'other'), content, token)).toBe(false);
    expect(verifyDetachedJws(sign({ alg: 'HS256', kid: 'zzzzzz' }, token.secret), content, token)).toBe(false);
    expect(verifyDetachedJws(sign({ alg: 'none', kid: 'abcdef' }, token.secret), content, token)).toBe(false);
    const attached = sign({ alg: 'HS256', kid: 'abcdef' }, token.secret).replace('..', `.${Buffer.from(content).toString('base64url')}.`);
    expect(verifyDetachedJws(attached, content, token)).toBe(false);
    expect(verifyDetachedJws('garbage', content, token)).toBe(false);
  });
});
