/**
 * exec and attach over SPDY (remote command protocols v4.channel.k8s.io, v3, v2 and
 * channel.k8s.io), as the kubelet serves them (pkg/kubelet/cri/streaming/remotecommand):
 * 1. The client opens one stream per standard stream, each with a `streamType` header: error,
 *    then stdin, stdout, stderr as asked, and resize (v3+, TTY only). Each is answered at once.
 * 2. When all expected streams are there, the command's I/O is wired (run-command.ts).
 * 3. At the end the error stream carries the Status (v4: metav1.Status JSON, NonZeroExitCode with
 *    an ExitCode cause for a non-zero exit; v2/v3: the failure message only; v1: nothing, the
 *    kubelet resets that error stream right after setup), every stream gets
 *    FIN, open client halves get RST_STREAM, then GOAWAY and the connection closes.
 * The command is stopped when the connection goes away first, or when the client has not opened
 * its streams within the creation timeout (the kubelet's 30 s).
 */
import type { Duplex } from 'node:stream';
import type { Logger } from '../../../../shared/log.ts';
import { resultStatus, type CommandIo } from './command-io.ts';
import { runCommand, type ClientStreams } from './run-command.ts';
import { SpdySession } from './spdy-session.ts';
import type { SpdyStream } from './spdy-stream.ts';
import { statusPayload } from './stream-status.ts';
import type { StreamOptions } from './types.ts';

export const remoteCommandProtocols = ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'] as const;

export interface RemoteCommandSpdyOptions {
  socket: Duplex;
  head: Buffer;
  protocol: string;
  action: 'exec' | 'attach';
  command: string[];
  streams: StreamOptions;
  io: CommandIo;
  log: Logger;
  streamCreationTimeoutMs?: number;
}

export function serveRemoteCommandSpdy(opts: RemoteCommandSpdyOptions): SpdySession {
  const { protocol, streams, io, log } = opts;
  const resizeSupported = protocol === 'v4.channel.k8s.io' || protocol === 'v3.channel.k8s.io';
  const expected = new Set<string>(['error']);
  if (streams.stdin) expected.add('stdin');
  if (streams.stdout) expected.add('stdout');
  if (streams.stderr) expected.add('stderr');
  if (streams.tty && resizeSupported) expected.add('resize');
  const received = new Map<string, SpdyStream>();
  let started = false;
  const timer = setTimeout(() => {
    if (started) return;
    log.warn('timed out waiting for client to create streams', { expected: [...expected], received: [...received.keys()] });
    io.stop();
    void session.close();
  }, opts.streamCreationTimeoutMs ?? 30_000);
  timer.unref?.();

  const session = new SpdySession(opts.socket, {
    role: 'server',
    log,
    onStream: (stream) => {
      stream.on('error', () => undefined);
      const type = stream.header('streamtype') ?? '';
      if (!expected.has(type) || received.has(type)) {
        log.warn('unexpected stream type', { streamType: type });
        stream.resume();
        return true;
      }
      received.set(type, stream);
      if (type !== 'stdin' && type !== 'resize') stream.resume(); // the client sends nothing there
      if (received.size === expected.size && !started) {
        started = true;
        clearTimeout(timer);
        void finish(session, received, opts);
      }
      return true;
    },
  });
  void session.closed.then(() => {
    clearTimeout(timer);
    io.stop();
  });
  session.start(opts.head);
  return session;
}

async function finish(session: SpdySession, received: Map<string, SpdyStream>, opts: RemoteCommandSpdyOptions): Promise<void> {
  // The kubelet resets the v1 error stream as soon as the streams are set up: v1 clients never
  // learn how the command ended.
  if (opts.protocol === 'channel.k8s.io') received.get('error')?.reset();
  const client: ClientStreams = {
    stdin: received.get('stdin'),
    stdout: received.get('stdout'),
    stderr: received.get('stderr'),
    resize: received.get('resize'),
  };
  const result = await runCommand(opts.io, client, opts.streams.tty, opts.log);
  const status = resultStatus(result, opts.command, opts.action);
  opts.log.debug('remote command finished', { action: opts.action, result, protocol: opts.protocol });
  const errorStream = received.get('error');
  if (errorStream) await endStream(errorStream, statusPayload(status, opts.protocol === 'v4.channel.k8s.io'));
  await Promise.all([...received.values()].map((stream) => endStream(stream)));
  await session.close();
}

/** Sends FIN (after `last`, if given) and waits until it is queued or the stream is gone. */
function endStream(stream: SpdyStream, last?: Buffer): Promise<void> {
  if (stream.destroyed || stream.writableFinished) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('close', () => resolve());
    stream.once('finish', () => resolve());
    if (!stream.writableEnded) {
      if (last && last.length > 0) stream.end(last);
      else stream.end();
    }
  });
}
