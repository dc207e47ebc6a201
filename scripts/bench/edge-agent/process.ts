/** Starting tether-edge (a compiled binary, or from source) for the benchmarks and reading the addresses it prints. */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { parseAddresses } from '../../../test/support/edge-agent.ts';

const edgeMain = join(import.meta.dir, '../../../edge/main.ts');

export interface AgentProc {
  child: ChildProcess;
  proxy: string;
  admin: string;
  startedMs: number;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export const spawnHere = (cmd: string[]): ChildProcess => spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });

/** `bin`: a compiled tether-edge; without it, edge/main.ts under this Bun. */
export async function startAgentProcess(args: string[], spawnFn: (cmd: string[]) => ChildProcess = spawnHere, bin?: string): Promise<AgentProc> {
  const t0 = performance.now();
  const child = spawnFn([...(bin ? [bin] : [process.execPath, edgeMain]), 'run', '--log-level', 'warn', ...args]);
  let out = '';
  const addrs = await new Promise<{ proxy: string; admin: string }>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const a = parseAddresses(out);
      if (a) resolve(a);
    });
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => reject(new Error(`tether-edge exited with ${code}: ${out}`)));
  });
  return {
    child,
    ...addrs,
    startedMs: performance.now() - t0,
    stop: (signal = 'SIGTERM') =>
      new Promise((r) => {
        if (child.exitCode !== null || child.signalCode !== null) return r();
        child.once('exit', () => r());
        child.kill(signal);
      }),
  };
}
