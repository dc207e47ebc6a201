/** `tether-edge join --upstream-via-hub` from the command line: refused without --hub, before anything is asked or written. */
import { expect, test } from 'bun:test';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../main.ts', import.meta.url));

test('join --upstream-via-hub without --hub is refused with a clear error, and writes nothing', async () => {
  const root = mkdtempSync(join(tmpdir(), 'tether-join-via-hub-'));
  try {
    const p = spawn(process.execPath, [main, 'join', '--server', 'https://127.0.0.1:6443', '--token', 'abcdef.0123456789abcdef',
      '--ca-cert-hash', `sha256:${'ab'.repeat(32)}`, '--node-name', 'edge-1', '--upstream-via-hub', '--root', root], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (c) => (err += c));
    const code = await new Promise((r) => p.once('exit', r));
    expect(code).toBe(1);
    expect(err).toContain('join: --upstream-via-hub needs --hub');
    expect(readdirSync(root)).toEqual([]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}, 30_000);
