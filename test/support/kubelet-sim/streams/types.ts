/**
 * What the streaming endpoints need from the simulated container runtime, and the request
 * descriptions they work on. The runtime is the only part that knows about processes or
 * addresses; exec, attach and port-forward handlers only see these types.
 */
import type { ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

export interface PodTarget {
  namespace: string;
  pod: string;
}

export interface ContainerTarget extends PodTarget {
  container: string;
}

/** One attachment to a container's long-running process. */
export interface AttachedProcess {
  /** Bytes written here go to the process; what ending it does is the runtime's choice. */
  stdin: Writable;
  /** This attachment's copy of the process output; both end when it detaches or the process exits. */
  stdout: Readable;
  stderr: Readable;
  /** Resolves when this attachment is over (detached, or the process exited). */
  done: Promise<void>;
  detach(): void;
}

export interface ContainerRuntime {
  /** Start a command in a container; a real child process is fine (this is a simulator). Throws for an unknown pod. */
  exec(target: ContainerTarget, command: string[], opts: { tty: boolean }): ChildProcess;
  /** Where port-forward to <port> of a pod goes: a TCP address to dial. Throws for an unknown pod. */
  portTarget(target: PodTarget, port: number): { host: string; port: number };
  /** Attach to the container's long-running process. Without it, attach answers with a failure Status. */
  attach?(target: ContainerTarget, opts: { tty: boolean }): AttachedProcess;
}

/** The kubelet's remote-command options: which standard streams the client asked for. */
export interface StreamOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

export interface TerminalSize {
  width: number;
  height: number;
}
