/** The two entry points as a user meets them: --version, --help, and a broken configuration. */
import { describe, expect, test } from 'bun:test';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkg from '../package.json' with { type: 'json' };
import { bunBin, run } from './support/run.ts';

const root = join(import.meta.dir, '..');
const edge = (...args: string[]) => run([bunBin, join(root, 'edge/main.ts'), ...args], { cwd: root });
const hub = (...args: string[]) => run([bunBin, join(root, 'cloud/main.ts'), ...args], { cwd: root });

describe('tether-edge', () => {
  test('--version prints version, commit and target', async () => {
    const r = await edge('--version');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(new RegExp(`^${pkg.version.replace(/\./g, '\\.')} \\(commit \\S+, \\S+\\)$`));
  });

  test('--help lists the subcommands', async () => {
    const r = await edge('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('run');
    expect(r.stdout).toContain('store');
  });

  test('a broken configuration file is refused with a readable message and exit code 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-cli-'));
    const f = join(dir, 'edge.yaml');
    writeFileSync(f, 'listen: 127.0.0.1:10261\nlbMode: fastest\nservers: https://ok:6443\nbogus: 1\n');
    const r = await edge('run', '--config', f, '--data-dir', dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`tether-edge: invalid configuration (file ${f}`);
    expect(r.stderr).toContain('Unrecognized key: "bogus"');
    expect(r.stderr).toContain('at lbMode');
    expect(r.stderr).toContain('at servers');
    expect(r.stderr).not.toContain('    at '); // no stack trace
  });

  test('a bad flag value is refused the same way', async () => {
    const r = await edge('run', '--admin-listen', 'nowhere');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('expected host:port');
    expect(r.stderr).toContain('at adminListen');
  });

  test('run serves /healthz, /readyz and /metrics on the admin address', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-cli-'));
    const { spawn } = await import('node:child_process');
    // No apiserver answers on port 1: the agent starts offline and still serves its admin endpoints.
    const child = spawn(bunBin, [join(root, 'edge/main.ts'), 'run', '--data-dir', dir, '--admin-listen', '127.0.0.1:0', '--listen', '127.0.0.1:0', '--servers', 'https://127.0.0.1:1'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const address = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = out.match(/admin on http:\/\/(\S+),/);
          if (m?.[1]) resolve(m[1]);
        });
        child.on('exit', (code) => reject(new Error(`tether-edge exited with ${code}`)));
      });
      expect(await (await fetch(`http://${address}/healthz`)).text()).toBe('ok\n');
      expect((await fetch(`http://${address}/readyz`)).status).toBe(200);
      const metrics = await (await fetch(`http://${address}/metrics`)).text();
      expect(metrics).toContain('tether_build_info{');
      expect(metrics).toContain('process_resident_memory_bytes ');
      expect(metrics).toContain('tether_upstream_healthy{server="127.0.0.1:1"} 0');
    } finally {
      child.kill('SIGTERM');
    }
    const code = await new Promise<number | null>((r) => (child.exitCode !== null ? r(child.exitCode) : child.on('exit', r)));
    expect(code).toBe(0);
  });
});

describe('tether-hub', () => {
  test('--help lists the subcommands and --version matches the package', async () => {
    const h = await hub('--help');
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('tether-hub');
    expect(h.stdout).toContain('run');
    const v = await hub('--version');
    expect(v.stdout.startsWith(pkg.version)).toBe(true);
  });

  test('an environment variable of the wrong type is refused', async () => {
    const r = await run([bunBin, join(root, 'cloud/main.ts'), 'run'], {
      cwd: root,
      env: { ...process.env, TETHER_HUB_LOG_LEVEL: 'loud' },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('at logLevel');
  });
});
