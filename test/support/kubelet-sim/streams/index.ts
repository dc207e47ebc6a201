/**
 * Entry point of the kubelet's streaming endpoints: call `handleStreamUpgrade` from the
 * `upgrade` event of the simulator's node:https server.
 *
 *   server.on('upgrade', (req, socket, head) => {
 *     if (!handleStreamUpgrade(req, socket, head, runtime, log)) socket.destroy();
 *   });
 *
 * /exec and /attach speak SPDY (remote command v4..v1) or WebSocket (v5/v4.channel.k8s.io);
 * /portForward speaks SPDY (portforward.k8s.io). Like the kubelet, bad options answer 400 and a
 * pod the runtime does not know answers 404 before any upgrade. Returns false for other paths.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { messageOf } from '../../../../shared/errors.ts';
import type { Logger } from '../../../../shared/log.ts';
import { attachedCommand, childCommand, failedCommand, type CommandIo } from './command-io.ts';
import { portForwardProtocols, servePortForward } from './port-forward.ts';
import { remoteCommandProtocols, serveRemoteCommandSpdy } from './remote-command.ts';
import { parseStreamRequest, type StreamRequest } from './stream-request.ts';
import type { ContainerRuntime } from './types.ts';
import { isWebSocketUpgrade, negotiateSpdy, writeHttpError, writeSwitchingProtocols } from './upgrade-handshake.ts';
import { serveRemoteCommandWebSocket } from './websocket-channels.ts';

export type { AttachedProcess, ContainerRuntime, ContainerTarget, PodTarget, StreamOptions } from './types.ts';
export { createProcessRuntime, type ProcessRuntime, type ProcessRuntimeOptions } from './process-runtime.ts';

export function handleStreamUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  runtime: ContainerRuntime,
  log: Logger,
): boolean {
  const parsed = parseStreamRequest(req.url);
  if (!parsed) return false;
  socket.on('error', (err) => log.debug('stream socket error', { err: err.message }));
  if (!parsed.ok) {
    writeHttpError(socket, parsed.status, parsed.message);
    return true;
  }
  const request = parsed.request;
  const reqLog = log.child({ stream: request.kind, namespace: request.target.namespace, pod: request.target.pod });
  if (request.kind === 'portForward') {
    servePortForwardUpgrade(req, socket, head, request, runtime, reqLog);
    return true;
  }

  let io: CommandIo;
  try {
    io = startCommand(request, runtime);
  } catch (err) {
    reqLog.info('stream request refused', { err: messageOf(err) });
    writeHttpError(socket, 404, messageOf(err));
    return true;
  }
  const action = request.kind;
  const command = request.kind === 'exec' ? request.command : [];
  if (isWebSocketUpgrade(req)) {
    serveRemoteCommandWebSocket({ req, socket, head, action, command, streams: request.streams, io, log: reqLog });
    return true;
  }
  const negotiation = negotiateSpdy(req, remoteCommandProtocols);
  if (!negotiation.ok) {
    io.stop();
    writeHttpError(socket, negotiation.status, negotiation.message, negotiation.headers);
    return true;
  }
  writeSwitchingProtocols(socket, negotiation.protocol);
  serveRemoteCommandSpdy({ socket, head, protocol: negotiation.protocol, action, command, streams: request.streams, io, log: reqLog });
  return true;
}

function startCommand(request: Exclude<StreamRequest, { kind: 'portForward' }>, runtime: ContainerRuntime): CommandIo {
  const tty = request.streams.tty;
  if (request.kind === 'exec') return childCommand(runtime.exec(request.target, request.command, { tty }), request.command);
  if (!runtime.attach) return failedCommand('attach is not supported by this container runtime');
  return attachedCommand(runtime.attach(request.target, { tty }));
}

function servePortForwardUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  request: Extract<StreamRequest, { kind: 'portForward' }>,
  runtime: ContainerRuntime,
  log: Logger,
): void {
  if (isWebSocketUpgrade(req)) {
    writeHttpError(socket, 400, 'port-forward over websocket is not served by this simulator; use SPDY (kube-apiserver tunnels websocket port-forward as SPDY)');
    return;
  }
  const negotiation = negotiateSpdy(req, portForwardProtocols);
  if (!negotiation.ok) {
    writeHttpError(socket, negotiation.status, negotiation.message, negotiation.headers);
    return;
  }
  writeSwitchingProtocols(socket, negotiation.protocol);
  servePortForward({ socket, head, target: request.target, runtime, log });
}
