/**
 * exec and attach over WebSocket (v5.channel.k8s.io and v4.channel.k8s.io, binary framing). Each
 * binary message starts with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize
 * (one JSON {Width,Height} per message). v5 adds 255: the message [255, c] from the client closes
 * channel c (stdin EOF). As the kubelet does, an empty message on the first output channel is
 * sent right after the handshake. At the end the error channel carries the metav1.Status JSON and
 * the connection closes normally (1000). This is the only file that imports `ws`.
 */
import type { IncomingMessage } from 'node:http';
import { PassThrough, Writable, type Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Logger } from '../../../../shared/log.ts';
import { resultStatus, type CommandIo } from './command-io.ts';
import { runCommand, type ClientStreams } from './run-command.ts';
import { statusPayload } from './stream-status.ts';
import type { StreamOptions } from './types.ts';
import { writeHttpError } from './upgrade-handshake.ts';

export const websocketProtocols = ['v5.channel.k8s.io', 'v4.channel.k8s.io'] as const;

const channel = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const;

export interface RemoteCommandWebSocketOptions {
  req: IncomingMessage;
  socket: Duplex;
  head: Buffer;
  action: 'exec' | 'attach';
  command: string[];
  streams: StreamOptions;
  io: CommandIo;
  log: Logger;
}

const server = new WebSocketServer({ noServer: true, perMessageDeflate: false, handleProtocols: (offered) => pick([...offered]) ?? false });

function pick(offered: string[]): string | undefined {
  return offered.find((p) => (websocketProtocols as readonly string[]).includes(p));
}

export function serveRemoteCommandWebSocket(opts: RemoteCommandWebSocketOptions): void {
  const offered = String(opts.req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
  if (!pick(offered)) {
    opts.io.stop();
    writeHttpError(opts.socket, 400, `websocket server: requested protocol(s) are not supported: [${offered.join(' ')}]; supported: [${websocketProtocols.join(' ')}]`);
    return;
  }
  server.handleUpgrade(opts.req, opts.socket, opts.head, (ws) => void serve(ws, opts));
}

async function serve(ws: WebSocket, opts: RemoteCommandWebSocketOptions): Promise<void> {
  const { streams, io, log } = opts;
  const v5 = ws.protocol === 'v5.channel.k8s.io';
  const stdin = streams.stdin ? new PassThrough() : undefined;
  const resize = new PassThrough();
  let gone = false;
  let paused = false;
  const resume = () => {
    if (!paused) return;
    paused = false;
    ws.resume();
  };
  // An ended stdin no longer emits 'drain'; never leave the socket paused.
  stdin?.once('finish', resume);
  stdin?.once('close', resume);

  ws.on('message', (data: RawData, isBinary: boolean) => {
    const message = toBuffer(data);
    if (!isBinary || message.length === 0) return;
    const id = message[0];
    const payload = message.subarray(1);
    if (v5 && id === channel.close) {
      if (payload[0] === channel.stdin) stdin?.end();
      return;
    }
    if (id === channel.stdin && stdin && !stdin.writableEnded) {
      if (!stdin.write(payload) && !paused) {
        paused = true;
        ws.pause();
        stdin.once('drain', resume);
      }
    } else if (id === channel.resize) resize.write(payload);
  });
  ws.on('error', (err) => log.debug('websocket error', { err: err.message }));
  ws.on('close', () => {
    gone = true;
    stdin?.end();
    resize.end();
    io.stop();
  });

  const first = streams.stdout ? channel.stdout : streams.stderr ? channel.stderr : channel.error;
  ws.send(Buffer.from([first]));
  const client: ClientStreams = {
    stdin,
    stdout: streams.stdout ? channelWriter(ws, channel.stdout) : undefined,
    stderr: streams.stderr ? channelWriter(ws, channel.stderr) : undefined,
    resize: streams.tty ? resize : undefined,
  };
  if (!streams.tty) resize.resume();
  const result = await runCommand(io, client, streams.tty, log);
  log.debug('remote command finished', { action: opts.action, result, protocol: ws.protocol });
  if (gone) return;
  resume();
  const status = statusPayload(resultStatus(result, opts.command, opts.action), true);
  ws.send(Buffer.concat([Buffer.from([channel.error]), status]), () => ws.close(1000));
}

/** A Writable that sends each chunk as one message on a channel; the next waits for the send. */
function channelWriter(ws: WebSocket, id: number): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (ws.readyState !== ws.OPEN) return cb();
      ws.send(Buffer.concat([Buffer.from([id]), chunk]), { binary: true }, () => cb());
    },
  });
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
