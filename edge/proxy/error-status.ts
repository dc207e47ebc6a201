/**
 * Kubernetes `Status` responses: the one place where the proxy turns an error into what a
 * Kubernetes client expects (client-go decodes the body and shows its message).
 *
 * Offline refusals and retries (docs/offline.md, "Errors offline"): client-go retries a 5xx or 429
 * only when it carries a Retry-After header (rest/with_retry.go checkWait), up to 10 times. So a
 * refusal that cannot change until the link is back (an uncached kind, an object not in the store,
 * an uncached client's write, a verb that needs the apiserver) is a 503 ServiceUnavailable WITHOUT
 * Retry-After: the client gets it at once. Only where a retry soon can help is there a Retry-After:
 * the upstream failed this very request while the link counted as up (it may be flapping; the next
 * try gets the apiserver or the offline answer), or the node's store is momentarily unavailable.
 * Errors that carry an apiserver Status (shared/kube api-status.ts) are sent as they are. The bodies
 * themselves are built by shared/kube/status.ts, the one builder the cache uses too.
 */
import type { ServerResponse } from 'node:http';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import { apiStatusOf } from '../../shared/kube/index.ts';
import { type StatusBody, type StatusReason, statusBody, statusText } from '../../shared/kube/status.ts';

export type { StatusBody, StatusReason } from '../../shared/kube/status.ts';
export { statusBody };

/** Retry-After of a request the upstream failed while the link counted as up: the next try finds out which it is. */
export const FLAPPING_RETRY_SECONDS = 1;
/** Retry-After while the node's store is momentarily unavailable (locked, being reopened). */
export const STORE_RETRY_SECONDS = 2;

/** Marks the BadRequest of a body over the limit (there is no error code of its own). */
const TOO_LARGE = Symbol('request body too large');

export function bodyTooLarge(max: number): TetherError {
  return new TetherError(ErrorCode.BadRequest, `read request body: larger than ${max} bytes`, { cause: TOO_LARGE });
}

/** The reason phrase of a code this module writes. */
export function reasonPhrase(code: number): string {
  return (
    { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 413: 'Payload Too Large', 431: 'Request Header Fields Too Large', 503: 'Service Unavailable', 504: 'Gateway Timeout' }[code] ??
    'Error'
  );
}

/**
 * A whole HTTP/1.1 response carrying a Status, for sockets that have no ServerResponse (malformed
 * requests, refused upgrades); the connection is closed after it.
 */
export function rawStatusResponse(body: StatusBody): string {
  const json = statusText(body);
  return (
    `HTTP/1.1 ${body.code} ${reasonPhrase(body.code)}\r\nContent-Type: application/json\r\nCache-Control: no-cache, private\r\n` +
    `Content-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`
  );
}

/** The status for an error thrown anywhere below the proxy. */
export function statusOf(e: unknown): StatusBody {
  if (e instanceof TetherError) {
    if (e.cause === TOO_LARGE) return statusBody(413, 'RequestEntityTooLarge', e.message);
    const api = apiStatusOf(e);
    if (api) return statusBody(api.code, api.reason as StatusReason, api.message, api.details);
    switch (e.code) {
      case ErrorCode.BadRequest:
        return statusBody(400, 'BadRequest', e.message);
      case ErrorCode.Invalid:
        return statusBody(422, 'Invalid', e.message);
      case ErrorCode.UpstreamUnavailable:
        // Offline, and what was asked for will not be there until the link is back: no retry hint.
        return statusBody(503, 'ServiceUnavailable', e.message);
      case ErrorCode.StoreConflict:
        return statusBody(409, 'Conflict', e.message);
      case ErrorCode.StoreLocked:
      case ErrorCode.StoreOpen:
        return statusBody(503, 'ServiceUnavailable', `tether-edge: the node's store is momentarily unavailable: ${e.message}`, { retryAfterSeconds: STORE_RETRY_SECONDS });
      default:
        return statusBody(503, 'ServiceUnavailable', e.message);
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
  const json = statusText(body);
  headers['content-length'] = String(Buffer.byteLength(json));
  res.writeHead(body.code, headers);
  res.end(json);
}
