/**
 * The upgrader with the real install (install.ts) and download (download.ts) over a release
 * server on loopback: a signed release is fetched, verified and swapped in, the agent asks to
 * restart; the next process (the new version) commits its trial and reports Healthy. A tampered
 * binary is refused and the install path keeps the old one. The Node API is a fake.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { generateKeyPairSync, sign } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryLogger } from '../../shared/log.ts';
import { EDGE_VERSION_ANNOTATION, UPGRADE_STATUS_ANNOTATION, UPGRADE_TARGET_ANNOTATION, type UpgradeStatus } from '../../shared/upgrade/contract.ts';
import type { KubeObject } from '../store/index.ts';
import { startAgentUpgrader, type AgentUpgrader } from './agent-upgrader.ts';
import { readState } from './install.ts';
import { sha256Hex } from './verify.ts';

const ARTIFACT = 'tether-edge-linux-x64';
const keys = generateKeyPairSync('ed25519');
const releaseKey = keys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const root = mkdtempSync(join(tmpdir(), 'tether-agent-upgrader-'));
const releases = new Map<string, Buffer>(); // "<version>/<file>" → bytes
let server: Server;
let base = '';

function publish(version: string, binary: Buffer, o: { tamper?: boolean } = {}) {
  const v = Buffer.from(`${version}\n`);
  const sums = Buffer.from(`${sha256Hex(binary)}  ${ARTIFACT}\n${sha256Hex(v)}  VERSION\n`);
  releases.set(`${version}/SHA256SUMS`, sums);
  releases.set(`${version}/SHA256SUMS.sig`, sign(null, sums, keys.privateKey));
  releases.set(`${version}/VERSION`, v);
  releases.set(`${version}/${ARTIFACT}`, o.tamper ? Buffer.concat([binary, Buffer.from('#evil')]) : binary);
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const body = releases.get((req.url ?? '').replace(/^\//, ''));
    if (!body) {
      res.writeHead(404);
      return void res.end();
    }
    res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(root, { recursive: true, force: true });
});

function node(version: string, uid: string, annotations: Record<string, string> = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'edge-1', resourceVersion: String(Math.random()).slice(2), annotations: { [UPGRADE_TARGET_ANNOTATION]: JSON.stringify({ upgrade: 'fleet', uid, version, baseURL: `${base}/${version}` }), ...annotations } },
  };
}

function site(name: string) {
  const dataDir = join(root, name);
  const binary = join(dataDir, 'bin', 'tether-edge');
  mkdirSync(join(dataDir, 'bin'), { recursive: true });
  writeFileSync(binary, '#!/bin/sh\necho 0.1.0\n');
  chmodSync(binary, 0o755);
  const statuses: UpgradeStatus[] = [];
  const versions: string[] = [];
  let stored: KubeObject | undefined;
  const running: AgentUpgrader[] = [];
  const start = (version: string, restarts: string[]) => {
    const u = startAgentUpgrader({
      nodeName: 'edge-1',
      running: { version, target: 'bun-linux-x64' },
      config: { dataDir, releaseKey, upgrade: { binary, healthDeadlineSeconds: 60, allowDowngrade: false } },
      storedNode: () => stored,
      online: () => true,
      watch: () => ({ done: new Promise(() => {}), stop: () => {} }),
      patch: async (body) => {
        const a = (JSON.parse(body) as { metadata: { annotations: Record<string, string> } }).metadata.annotations;
        if (a[UPGRADE_STATUS_ANNOTATION]) statuses.push(JSON.parse(a[UPGRADE_STATUS_ANNOTATION]) as UpgradeStatus);
        if (a[EDGE_VERSION_ANNOTATION]) versions.push(a[EDGE_VERSION_ANNOTATION]);
        return { status: 200, body: '{}' };
      },
      healthy: async () => true,
      restart: (r) => void restarts.push(r),
      log: createMemoryLogger('error'),
      fallbackAfterMs: 600_000,
    });
    running.push(u);
    return u;
  };
  return {
    dataDir,
    binary,
    statuses,
    versions,
    start,
    record(u: AgentUpgrader, n: KubeObject) {
      stored = n;
      u.recorded('v1/nodes');
    },
    stop: () => running.forEach((u) => u.stop()),
  };
}

async function until(f: () => boolean) {
  for (let i = 0; i < 1000 && !f(); i++) await new Promise((r) => setTimeout(r, 10));
}

test('a signed release is fetched, verified and swapped in; the new version commits and reports Healthy', async () => {
  const s = site('good');
  const newBinary = Buffer.from('#!/bin/sh\necho 0.2.0\n');
  publish('0.2.0', newBinary);
  const restarts: string[] = [];
  const old = s.start('0.1.0', restarts);
  expect(await old.started).toBe('none');
  s.record(old, node('0.2.0', 'uid-good'));
  await until(() => restarts.length > 0);
  expect(restarts).toEqual(['upgrade fleet to 0.2.0']);
  expect(s.statuses.map((x) => x.phase)).toEqual(['Downloading', 'Verifying', 'Restarting']);
  expect(readFileSync(s.binary)).toEqual(newBinary);
  expect(readState({ binary: s.binary, dir: join(s.dataDir, 'upgrade') }).trial).toMatchObject({ version: '0.2.0', from: '0.1.0', uid: 'uid-good' });
  old.stop();
  // systemd starts the new binary: its trial is settled and reported.
  const next = s.start('0.2.0', restarts);
  expect(await next.started).toBe('committed');
  await until(() => s.statuses.length > 3);
  expect(s.statuses.at(-1)).toMatchObject({ phase: 'Healthy', version: '0.2.0', uid: 'uid-good', previous: '0.1.0' });
  await until(() => readState({ binary: s.binary, dir: join(s.dataDir, 'upgrade') }).pendingReport === undefined);
  expect(readState({ binary: s.binary, dir: join(s.dataDir, 'upgrade') })).toMatchObject({ running: '0.2.0', previous: '0.1.0' });
  expect(next.summary()).toMatchObject({ running: '0.2.0', previous: '0.1.0', last: { phase: 'Healthy' } });
  expect(existsSync(join(s.dataDir, 'upgrade', 'known-good'))).toBe(true);
  s.stop();
});

test('a tampered binary is refused after Verifying: Failed, the install path keeps the old binary, no restart', async () => {
  const s = site('tampered');
  const before = readFileSync(s.binary);
  publish('0.3.0', Buffer.from('#!/bin/sh\necho 0.3.0\n'), { tamper: true });
  const restarts: string[] = [];
  const u = s.start('0.1.0', restarts);
  await u.started;
  s.record(u, node('0.3.0', 'uid-bad'));
  await until(() => s.statuses.some((x) => x.phase === 'Failed'));
  expect(s.statuses.map((x) => x.phase)).toEqual(['Downloading', 'Verifying', 'Failed']);
  expect(s.statuses.at(-1)!.reason).toContain(`${ARTIFACT}: sha256`);
  expect(readFileSync(s.binary)).toEqual(before);
  expect(restarts).toEqual([]);
  expect(readState({ binary: s.binary, dir: join(s.dataDir, 'upgrade') }).trial).toBeUndefined();
  // What the refused download left is gone.
  expect(existsSync(join(s.dataDir, 'upgrade', 'downloads')) ? readdirSync(join(s.dataDir, 'upgrade', 'downloads')) : []).toEqual([]);
  s.stop();
});
