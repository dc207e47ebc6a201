/**
 * The one builder of Kubernetes `Status` bodies (metav1.Status with status Failure): the proxy's
 * refusals (edge/proxy/error-status.ts), the offline reader's 404, the watch log's 410 ERROR event and
 * the access record's 403, and the hub's answers on api streams (cloud/tunnel/api-forward.ts,
 * api-filter.ts's 410 event, the artifact relay) are all built here, so each has one shape.
 *
 * Field order is the apiserver's: kube-apiserver encodes metav1.Status in the order its Go struct
 * declares the fields (kind, apiVersion, metadata, status, message, reason, details, code), and an
 * empty reason is left out (`omitempty`), so a Status the agent writes reads as one the apiserver
 * wrote. `statusText` is the serialization; a body built here and sent with JSON.stringify is the
 * same text unless its reason is empty.
 */
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
  | 'RequestEntityTooLarge'
  /** The apiserver leaves the reason out of some errors (a malformed resourceVersion on a GET); never on the wire. */
  | '';

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: { reason: string; message: string; field?: string }[];
  retryAfterSeconds?: number;
}

export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: StatusReason;
  details?: StatusDetails;
  code: number;
}

export function statusBody(code: number, reason: StatusReason, message: string, details?: StatusDetails): StatusBody {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

/** The body as JSON text, an empty reason left out as the apiserver does. */
export function statusText(body: StatusBody): string {
  return JSON.stringify(body.reason === '' ? { ...body, reason: undefined } : body);
}
