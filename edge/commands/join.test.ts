/**
 * `tether-edge join` from the command line: refusals that come before anything is asked or
 * written (--upstream-via-hub without --hub; a --release-key that is not an Ed25519 public key),
 * and the release key as join pins it.
 */
import { describe, expect, test } from 'bun:test';
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readReleaseKey } from '../join/join.ts';

const main = fileURLToPath(new URL('../main.ts', import.meta.url));
// Port 1 on loopback: nothing listens, so a refusal here cannot have come from the network.
const joinArgs = ['join', '--server', 'https://127.0.0.1:1', '--token', 'abcdef.0123456789abcdef', '--ca-cert-hash', `sha256:${'ab'.repeat(32)}`, '--node-name', 'edge-1', '--timeout', '2s'];

async function joinCli(args: string[]): Promise<{ code: unknown; err: string }> {
  const p = spawn(process.execPath, [main, ...joinArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (c) => (err += c));
  const code = await new Promise((r) => p.once('exit', r));
  return { code, err };
}

function withDir(fn: (dir: string) => Promise<void> | void) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-join-cli-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test('join --upstream-via-hub without --hub is refused with a clear error, and writes nothing', withDir(async (root) => {
  const r = await joinCli(['--upstream-via-hub', '--root', root]);
  expect(r.code).toBe(1);
  expect(r.err).toContain('join: --upstream-via-hub needs --hub');
  expect(readdirSync(root)).toEqual([]);
}), 30_000);

describe('join --release-key', () => {
  test('a key that is not an Ed25519 public key is refused before the cluster is contacted, and nothing is written', withDir(async (dir) => {
    const root = join(dir, 'root');
    mkdirSync(root);
    const cases: [string, string, string][] = [
      ['ec.pub', generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'expected an Ed25519 public key, got ec'],
      ['rsa.pub', generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'expected an Ed25519 public key, got rsa'],
      ['release.key', generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'this is a private key: pin the public key'],
      ['garbage.pub', 'not a key\n', 'expected a PEM public key'],
    ];
    for (const [name, content, message] of cases) {
      writeFileSync(join(dir, name), content);
      const r = await joinCli(['--release-key', join(dir, name), '--root', root]);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`join: --release-key ${join(dir, name)}: ${message}`);
      expect(r.err).not.toContain('127.0.0.1:1'); // refused before discovery
      expect(readdirSync(root)).toEqual([]);
    }
    const missing = await joinCli(['--release-key', join(dir, 'absent.pub'), '--root', root]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain(`join: cannot read --release-key ${join(dir, 'absent.pub')}`);
    expect(readdirSync(root)).toEqual([]);
  }), 60_000);

  test('the key is pinned as openssl prints it, whatever text surrounds the PEM block', withDir((dir) => {
    execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', join(dir, 'release.key')]);
    const pub = execFileSync('openssl', ['pkey', '-in', join(dir, 'release.key'), '-pubout'], { encoding: 'utf8' });
    writeFileSync(join(dir, 'release.pub'), pub);
    expect(readReleaseKey(join(dir, 'release.pub'))).toBe(pub);
    writeFileSync(join(dir, 'annotated.pub'), `Tether release key, 2026\n${pub}\n# end\n`);
    expect(readReleaseKey(join(dir, 'annotated.pub'))).toBe(pub);
  }));
});
