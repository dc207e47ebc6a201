/**
 * Port-forward over SPDY (portforward.k8s.io), as the kubelet serves it
 * (pkg/kubelet/cri/streaming/portforward/httpstream.go). Per forwarded connection the client opens
 * two streams carrying the same `port` and `requestID` headers: streamType=error (which the client
 * half-closes at once) and streamType=data. Streams without a valid port or stream type are
 * refused. Once both of a pair are there, the runtime's address for the port is dialled and bytes
 * are copied both ways with backpressure:
 *   client FIN on data   -> half-close towards the target;
 *   target EOF           -> FIN on data, then FIN on error (no error);
 *   client RST on data   -> the target connection is closed, FIN on error;
 *   dial or socket error -> the message on the error stream, FIN on it, RST on data.
 * Many pairs share one session; requests without a requestID are paired by stream id like the
 * kubelet does for old clients (error stream id = request id, data stream id = request id + 2).
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { messageOf } from '../../../../shared/errors.ts';
import type { Logger } from '../../../../shared/log.ts';
import { RstStatus } from './spdy-frames.ts';
import { SpdySession } from './spdy-session.ts';
import type { SpdyStream } from './spdy-stream.ts';
import type { ContainerRuntime, PodTarget } from './types.ts';

export const portForwardProtocols = ['portforward.k8s.io'] as const;

export interface PortForwardOptions {
  socket: Duplex;
  head: Buffer;
  target: PodTarget;
  runtime: ContainerRuntime;
  log: Logger;
  streamCreationTimeoutMs?: number;
}

interface Pair {
  data?: SpdyStream;
  error?: SpdyStream;
  timer: ReturnType<typeof setTimeout>;
}

export function servePortForward(opts: PortForwardOptions): SpdySession {
  const { log } = opts;
  const pairs = new Map<string, Pair>();
  const conns = new Set<net.Socket>();

  const session = new SpdySession(opts.socket, {
    role: 'server',
    log,
    onStream: (stream) => {
      const port = Number(stream.header('port') ?? '');
      const type = stream.header('streamtype');
      if (!Number.isInteger(port) || port < 1 || port > 65535 || (type !== 'data' && type !== 'error')) {
        log.warn('port-forward stream refused', { port: stream.header('port'), streamType: type });
        return false;
      }
      stream.on('error', () => undefined);
      const requestId = stream.header('requestid') ?? String(type === 'error' ? stream.id : stream.id - 2);
      let pair = pairs.get(requestId);
      if (!pair) {
        const timer = setTimeout(() => {
          pairs.delete(requestId);
          const message = `timed out waiting for streams of request ${requestId}`;
          log.warn('port-forward ' + message);
          pair?.error?.end(message);
          pair?.data?.reset();
        }, opts.streamCreationTimeoutMs ?? 30_000);
        timer.unref?.();
        pair = { timer };
        pairs.set(requestId, pair);
      }
      if (pair[type]) {
        const message = `error processing stream for request ${requestId}: ${type} stream already assigned`;
        log.warn('port-forward ' + message);
        pair.error?.write(message);
        return true;
      }
      pair[type] = stream;
      if (pair.data && pair.error) {
        clearTimeout(pair.timer);
        pairs.delete(requestId);
        forward(pair.data, pair.error, port, opts, conns);
      }
      return true;
    },
  });
  void session.closed.then(() => {
    for (const pair of pairs.values()) clearTimeout(pair.timer);
    for (const conn of conns) conn.destroy();
  });
  session.start(opts.head);
  return session;
}

function forward(data: SpdyStream, error: SpdyStream, port: number, opts: PortForwardOptions, conns: Set<net.Socket>): void {
  const { target, log } = opts;
  error.resume(); // the client half-closes it without sending anything
  let failed = false;
  const fail = (err: unknown) => {
    if (failed) return;
    failed = true;
    const message = `error forwarding port ${port} to pod ${target.pod}_${target.namespace}, uid : ${messageOf(err)}`;
    log.info('port-forward failed', { pod: target.pod, namespace: target.namespace, port, err: messageOf(err) });
    error.end(message);
    data.reset(RstStatus.Cancel);
  };

  let address: { host: string; port: number };
  try {
    address = opts.runtime.portTarget(target, port);
  } catch (err) {
    return fail(err);
  }
  const conn = net.connect({ host: address.host, port: address.port, allowHalfOpen: true });
  conns.add(conn);
  conn.on('error', (err) => fail(err));
  conn.on('close', () => {
    conns.delete(conn);
    if (!failed && !error.writableEnded) error.end();
  });
  conn.on('connect', () => {
    // Each direction ends on its own; the socket closes once both have (allowHalfOpen).
    data.pipe(conn);
    conn.pipe(data);
  });
  data.on('close', () => {
    if (data.resetStatus !== undefined && !failed) conn.destroy();
  });
  log.debug('port-forward started', { pod: target.pod, port, to: `${address.host}:${address.port}` });
}
