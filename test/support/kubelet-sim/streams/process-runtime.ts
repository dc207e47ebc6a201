/**
 * A ContainerRuntime made of host processes, for the simulator:
 * - exec spawns command[0] with its arguments, stdin/stdout/stderr piped. There is no terminal:
 *   a TTY request is served with pipes too (prompts and line editing differ from a real tty).
 * - attach joins a long-running process per container (`attachCommand`, default `cat`), started
 *   on first attach. Every attachment receives the output produced while it is attached, and its
 *   stdin goes to the process. The container behaves as one with `stdin: true, stdinOnce: true`:
 *   when an attachment ends its stdin, the process's stdin is closed, so `cat` flushes its output
 *   and exits, every attachment ends, and the next attach starts a fresh process.
 * - port-forward to port P of any pod dials `portHost:P` (default 127.0.0.1).
 * Every pod is known; wrap the runtime to refuse unknown pods. `close()` kills what it started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { PassThrough, Writable } from 'node:stream';
import { ErrorCode, TetherError } from '../../../../shared/errors.ts';
import type { AttachedProcess, ContainerRuntime, ContainerTarget } from './types.ts';

export interface ProcessRuntimeOptions {
  portHost?: string;
  attachCommand?: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export interface ProcessRuntime extends ContainerRuntime {
  attach(target: ContainerTarget, opts: { tty: boolean }): AttachedProcess;
  /** Kills every process this runtime started (exec children and attach processes). */
  close(): void;
}

interface Attachment {
  stdout: PassThrough;
  stderr: PassThrough;
  finish: () => void;
}

interface SharedProcess {
  child: ChildProcess;
  attachments: Set<Attachment>;
}

export function createProcessRuntime(opts: ProcessRuntimeOptions = {}): ProcessRuntime {
  const portHost = opts.portHost ?? '127.0.0.1';
  const attachCommand = opts.attachCommand ?? ['cat'];
  const children = new Set<ChildProcess>();
  const shared = new Map<string, SharedProcess>();

  const start = (command: string[]): ChildProcess => {
    const [file, ...args] = command;
    if (!file) throw new TetherError(ErrorCode.BadRequest, 'exec: empty command');
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: opts.cwd, env: opts.env });
    children.add(child);
    child.once('close', () => children.delete(child));
    child.once('error', () => children.delete(child));
    return child;
  };

  const sharedProcess = (target: ContainerTarget): SharedProcess => {
    const key = `${target.namespace}/${target.pod}/${target.container}`;
    const existing = shared.get(key);
    if (existing && existing.child.exitCode === null && existing.child.signalCode === null) return existing;
    const child = start(attachCommand);
    const proc: SharedProcess = { child, attachments: new Set() };
    child.stdin?.on('error', () => undefined);
    child.stdout?.on('data', (b: Buffer) => proc.attachments.forEach((a) => a.stdout.write(b)));
    child.stderr?.on('data', (b: Buffer) => proc.attachments.forEach((a) => a.stderr.write(b)));
    child.once('close', () => {
      if (shared.get(key) === proc) shared.delete(key);
      for (const a of proc.attachments) a.finish();
    });
    child.once('error', () => {
      for (const a of proc.attachments) a.finish();
    });
    shared.set(key, proc);
    return proc;
  };

  return {
    exec: (_target, command) => start(command),
    portTarget: (_target, port) => ({ host: portHost, port }),
    attach(target) {
      const proc = sharedProcess(target);
      let resolveDone!: () => void;
      const done = new Promise<void>((resolve) => (resolveDone = resolve));
      const attachment: Attachment = {
        stdout: new PassThrough(),
        stderr: new PassThrough(),
        finish: () => {
          if (!proc.attachments.delete(attachment)) return;
          attachment.stdout.end();
          attachment.stderr.end();
          resolveDone();
        },
      };
      proc.attachments.add(attachment);
      const stdin = new Writable({
        write(chunk: Buffer, _enc, cb) {
          const input = proc.child.stdin;
          if (!input || input.destroyed || !proc.attachments.has(attachment)) return cb();
          if (input.write(chunk)) cb();
          else input.once('drain', () => cb());
        },
        final(cb) {
          proc.child.stdin?.end(); // stdinOnce: the process sees EOF, its exit ends the attachments
          cb();
        },
      });
      return { stdin, stdout: attachment.stdout, stderr: attachment.stderr, done, detach: attachment.finish };
    },
    close() {
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      children.clear();
      shared.clear();
    },
  };
}
