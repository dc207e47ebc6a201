/**
 * Kubernetes `Status` responses: the one place where the proxy turns an error into what a
 * Kubernetes client expects (client-go decodes the body and shows its message).
 */
import type { ServerResponse } from 'node:http';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';

export type StatusReason =
  | 'BadRequest'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'MethodNotAllowed'
  | 'Conflict'
  | 'Gone'
  | 'Expired'
  | 'ServiceUnavailable'
  | 'InternalError'
  | 'Timeout';

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

/** The status for an error thrown anywhere below the proxy. */
export function statusOf(e: unknown): StatusBody {
  if (e instanceof TetherError) {
    switch (e.code) {
      case ErrorCode.BadRequest:
        return statusBody(400, 'BadRequest', e.message);
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
  res.writeHead(body.code, headers);
  res.end(JSON.stringify(body));
}
