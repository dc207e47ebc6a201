/**
 * The process side of exec and attach, independent of the wire protocol: where the client's
 * stdin goes, where output comes from, and how the command ended. Made from a child process
 * (exec), an attachment to a long-running process (attach) or an error (the command could not
 * be started). `result` settles only after the output streams have ended.
 */
import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { exitCodeStatus, internalErrorStatus, successStatus, type Status } from './stream-status.ts';
import type { AttachedProcess, TerminalSize } from './types.ts';

export type CommandResult =
  | { kind: 'exited'; code: number }
  | { kind: 'detached' }
  | { kind: 'failed'; message: string };

export interface CommandIo {
  /** Receives the client's stdin; ended when the client closes stdin (exec: the process sees EOF). */
  stdin: Writable;
  /** The client did not ask for stdin (exec: the process gets EOF; attach: nothing happens). */
  noStdin(): void;
  stdout: Readable;
  stderr: Readable;
  result: Promise<CommandResult>;
  resize(size: TerminalSize): void;
  /** The client went away: kill the process (exec) or detach (attach). */
  stop(): void;
}

export function childCommand(child: ChildProcess, command: string[]): CommandIo {
  const { stdin } = child;
  if (!stdin || !child.stdout || !child.stderr) throw new Error('exec: the runtime must spawn with piped stdin, stdout and stderr');
  stdin.on('error', () => undefined); // EPIPE once the process exits while the client still types
  // Consume the output at once: the client's streams come later, and Bun's child stdio flows
  // (and drops data) without a consumer. The PassThroughs buffer it, with backpressure.
  const stdout = relay(child.stdout);
  const stderr = relay(child.stderr);
  const result = new Promise<CommandResult>((resolve) => {
    child.once('error', (err) => resolve({ kind: 'failed', message: `failed to start [${command.join(' ')}]: ${err.message}` }));
    child.once('close', (code, signal) => {
      if (code !== null) return resolve({ kind: 'exited', code });
      const number = signal ? constants.signals[signal] : undefined;
      resolve({ kind: 'exited', code: 128 + (number ?? 0) });
    });
  });
  return {
    stdin,
    noStdin: () => stdin.end(),
    stdout,
    stderr,
    result,
    resize: () => undefined, // pipes, not a terminal: nothing to resize
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** A buffering copy of a stream that also ends when the source is destroyed without ending. */
function relay(source: Readable): PassThrough {
  const copy = new PassThrough();
  source.pipe(copy);
  source.once('close', () => {
    if (!copy.writableEnded) copy.end();
  });
  source.once('error', () => undefined);
  return copy;
}

export function attachedCommand(attached: AttachedProcess): CommandIo {
  return {
    stdin: attached.stdin,
    noStdin: () => undefined,
    stdout: attached.stdout,
    stderr: attached.stderr,
    result: attached.done.then(() => ({ kind: 'detached' }) as const),
    resize: () => undefined,
    stop: () => attached.detach(),
  };
}

/** A command that could not start: no output, and `result` reports the failure. */
export function failedCommand(message: string): CommandIo {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.end();
  stderr.end();
  const stdin = new PassThrough();
  stdin.resume();
  return {
    stdin,
    noStdin: () => stdin.end(),
    stdout,
    stderr,
    result: Promise.resolve({ kind: 'failed', message }),
    resize: () => undefined,
    stop: () => undefined,
  };
}

/** The Status the kubelet reports for a result (pkg/kubelet/cri/streaming/remotecommand). */
export function resultStatus(result: CommandResult, command: string[], action: 'exec' | 'attach'): Status {
  if (result.kind === 'failed') {
    const step = action === 'exec' ? 'error executing command in container' : 'error attaching to container';
    return internalErrorStatus(`${step}: ${result.message}`);
  }
  if (result.kind === 'exited' && result.code !== 0) return exitCodeStatus(result.code, command);
  return successStatus();
}
