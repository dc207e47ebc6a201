#!/usr/bin/env bun
/**
 * `npm run demo`: starts tether-hub and tether-edge from source, shows where they listen and that
 * they answer, then stops them (or keeps them running with --keep until Ctrl-C).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dir, '..');
const keep = process.argv.includes('--keep');
const dataDir = mkdtempSync(join(tmpdir(), 'tether-demo-'));
const children: ChildProcess[] = [];

function start(name: string, args: string[], readyPattern: RegExp): Promise<string> {
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = out.match(readyPattern);
      if (m?.[1]) resolve(m[1]);
    });
    child.stderr!.on('data', (d: Buffer) => process.stderr.write(`[${name}] ${d}`));
    child.on('exit', (code) => reject(new Error(`${name} exited with code ${code}`)));
  });
}

async function stopAll() {
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once('exit', r)))));
  rmSync(dataDir, { recursive: true, force: true });
}

try {
  const hubAdmin = await start('hub', ['cloud/main.ts', 'run', '--admin-listen', '127.0.0.1:0', '--log-format', 'text'], /admin on http:\/\/(\S+)/);
  const edgeAdmin = await start(
    'edge',
    ['edge/main.ts', 'run', '--data-dir', dataDir, '--admin-listen', '127.0.0.1:0', '--log-format', 'text'],
    /admin on http:\/\/(\S+),/,
  );
  console.log(`tether-hub   admin  http://${hubAdmin}   /healthz: ${(await (await fetch(`http://${hubAdmin}/healthz`)).text()).trim()}`);
  console.log(`tether-edge  admin  http://${edgeAdmin}   /readyz: ${(await (await fetch(`http://${edgeAdmin}/readyz`)).text()).trim().split('\n').pop()}`);
  console.log(`tether-edge  store  ${join(dataDir, 'tether.db')}`);
  if (keep) {
    console.log('running; Ctrl-C stops both');
    await new Promise<void>((r) => process.once('SIGINT', () => r()));
  }
} finally {
  await stopAll();
}
