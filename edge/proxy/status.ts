/**
 * Kubernetes `Status` responses: the one place where the proxy turns an error into what a
 * Kubernetes client expects (client-go decodes the body and shows its message).
 */
import type { ServerResponse } from 'node:http';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';

export type StatusReason =
  | 'BadRequest'
  | 'Invalid'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'MethodNotAllowed'
  | 'Conflict'
  | 'Gone'
  | 'Expired'
  | 'ServiceUnavailable'
  | 'InternalError'
  | 'Timeout'
  | 'RequestEntityTooLarge';

export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: StatusReason;
  code: number;
  details?: { name?: string; group?: string; kind?: string; retryAfterSeconds?: number };
}

export function statusBody(code: number, reason: StatusReason, message: string, details?: StatusBody['details']): StatusBody {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code, ...(details ? { details } : {}) };
}

/** Marks the BadRequest of a body over the limit (there is no error code of its own). */
const TOO_LARGE = Symbol('request body too large');

export function bodyTooLarge(max: number): TetherError {
  return new TetherError(ErrorCode.BadRequest, `read request body: larger than ${max} bytes`, { cause: TOO_LARGE });
}

/** The reason phrase of a code this module writes. */
export function reasonPhrase(code: number): string {
  return (
    { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 413: 'Payload Too Large', 431: 'Request Header Fields Too Large', 503: 'Service Unavailable' }[code] ??
    'Error'
  );
}

/**
 * A whole HTTP/1.1 response carrying a Status, for sockets that have no ServerResponse (malformed
 * requests, refused upgrades); the connection is closed after it.
 */
export function rawStatusResponse(body: StatusBody): string {
  const json = JSON.stringify(body);
  return (
    `HTTP/1.1 ${body.code} ${reasonPhrase(body.code)}\r\nContent-Type: application/json\r\nCache-Control: no-cache, private\r\n` +
    `Content-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`
  );
}

/** The status for an error thrown anywhere below the proxy. */
export function statusOf(e: unknown): StatusBody {
  if (e instanceof TetherError) {
    if (e.cause === TOO_LARGE) return statusBody(413, 'RequestEntityTooLarge', e.message);
    switch (e.code) {
      case ErrorCode.BadRequest:
        return statusBody(400, 'BadRequest', e.message);
      case ErrorCode.Invalid:
        return statusBody(422, 'Invalid', e.message);
      case ErrorCode.UpstreamUnavailable:
        return statusBody(503, 'ServiceUnavailable', e.message, { retryAfterSeconds: 5 });
      case ErrorCode.StoreConflict:
        return statusBody(409, 'Conflict', e.message);
      default:
        return statusBody(503, 'ServiceUnavailable', e.message, { retryAfterSeconds: 5 });
    }
  }
  return statusBody(500, 'InternalError', `tether-edge: ${messageOf(e)}`);
}

/** Writes a Status response, unless the response has already started (then it is ended). */
export function writeStatus(res: ServerResponse, body: StatusBody): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-cache, private' };
  if (body.details?.retryAfterSeconds) headers['retry-after'] = String(body.details.retryAfterSeconds);
  if (body.code === 413) headers.connection = 'close'; // the rest of the body is not wanted
  const json = JSON.stringify(body);
  headers['content-length'] = String(Buffer.byteLength(json));
  res.writeHead(body.code, headers);
  res.end(json);
}
