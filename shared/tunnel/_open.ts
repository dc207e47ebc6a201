/**
 * Opening a stream: what a pending open() holds, how a refusal crosses the wire (the code and
 * message of the TetherError that `onOpen` threw) and how it comes back out of open().
 */
import type { Duplex } from 'node:stream';
import { ErrorCode, TetherError, isTetherError, messageOf } from '../errors.ts';
import { clampReason, type OpenCompress } from './frames.ts';

export interface PendingOpen {
  host: string;
  port: number;
  /**
   * open() asked for compression (true: both ways, 'answers': only the peer's bytes); once OPEN
   * is sent: what the stream uses (false when the session negotiated none).
   */
  compress: OpenCompress | false;
  /** OPEN went out (it waits for the handshake otherwise). */
  sent: boolean;
  resolve: (d: Duplex) => void;
  reject: (e: Error) => void;
  /** Clear the timer and the abort listener. */
  dispose: () => void;
}

const knownCodes = new Set<string>(Object.values(ErrorCode));

/** The OPEN_RESULT of a failed dial. */
export function openRefusal(e: unknown): { code: string; reason: string } {
  return { code: isTetherError(e) ? e.code : ErrorCode.TunnelDial, reason: clampReason(messageOf(e)) };
}

/** open()'s rejection for a refusal: E_TUNNEL_DIAL, with the peer's code and reason in `cause`. */
export function refusalError(p: PendingOpen, r: { code: string; reason: string }): TetherError {
  const code = knownCodes.has(r.code) ? (r.code as ErrorCode) : ErrorCode.TunnelDial;
  return new TetherError(ErrorCode.TunnelDial, `open stream to ${p.host}:${p.port}: ${r.reason}`, { cause: new TetherError(code, r.reason) });
}
