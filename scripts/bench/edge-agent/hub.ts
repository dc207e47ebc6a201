/**
 * The hub's idle memory: `tether-hub run` (tunnel off: no serving certificate) with its controllers
 * leading on the benchmark's cluster, measured once they run and the process has settled.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { memoryOf } from './http.ts';

const hubMain = join(import.meta.dir, '../../../cloud/main.ts');
/** NodePool (members, status), PoolSet, autonomy, CSR approval, EdgeUpgrade (rollout, orphans). */
const CONTROLLERS = 7;

export async function hubIdleMemory(opts: { kubeconfig: string; bin?: string; settleMs?: number }): Promise<{ rss: number; anon: number }> {
  const cmd = [
    ...(opts.bin ? [opts.bin] : [process.execPath, hubMain]),
    'run',
    '--kubeconfig', opts.kubeconfig,
    '--replica-id', `bench-hub-${process.pid}`,
    '--admin-listen', '127.0.0.1:0',
    '--controllers.lease-namespace', 'kube-system',
    '--controllers.lease-name', `bench-hub-${process.pid}`,
    '--log-level', 'info',
  ];
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    const deadline = Date.now() + 60_000;
    // Each controller logs "controller running" once its informers are filled (the CRDs must be installed).
    while ((out.match(/controller running/g) ?? []).length < CONTROLLERS) {
      if (child.exitCode !== null) throw new Error(`tether-hub exited with ${child.exitCode}: ${out.slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`tether-hub controllers not running after 60 s: ${out.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, opts.settleMs ?? 10_000));
    return memoryOf(child.pid!);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}
