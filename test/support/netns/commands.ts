/**
 * Running `ip` and `tc` (and commands inside a namespace). `run` never throws on a non-zero exit;
 * `must` throws a TetherError whose message starts with the step that failed. The `*Sync` forms
 * exist for exit and signal handlers, where nothing asynchronous runs any more.
 */
import { spawn, spawnSync } from 'node:child_process';
import { ErrorCode, TetherError } from '../../../shared/errors.ts';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
}

export function run(cmd: string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = cmd;
  if (!file) return Promise.reject(new TetherError(ErrorCode.BadRequest, 'run: empty command'));
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, opts.timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new TetherError(ErrorCode.Internal, `run ${file}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) stderr += `\n(killed after ${opts.timeoutMs} ms)`;
      resolve({ code: code ?? (signal ? 128 + 9 : 1), stdout, stderr });
    });
    child.stdin.on('error', () => {}); // the command may exit before reading its input
    child.stdin.end(opts.input ?? '');
  });
}

export async function must(step: string, cmd: string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(cmd, opts);
  if (r.code !== 0) {
    throw new TetherError(ErrorCode.Internal, `${step}: ${cmd.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
  }
  return r.stdout;
}

export function runSync(cmd: string[]): RunResult {
  const [file, ...args] = cmd;
  if (!file) return { code: 1, stdout: '', stderr: 'empty command' };
  const r = spawnSync(file, args, { encoding: 'utf8', timeout: 10_000 });
  return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Whether a process id is alive (signal 0 probes without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
