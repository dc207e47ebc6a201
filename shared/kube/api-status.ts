/**
 * Errors that must reach the client exactly as kube-apiserver v1.37 shapes them (code, reason,
 * message, details.causes), such as the 504 Timeout with the ResourceVersionTooLarge cause that
 * client-go's reflector recognises. They stay TetherErrors (one error type); the apiserver's
 * Status travels in `cause`, and the proxy's status writer (edge/proxy/error-status.ts) sends it as is.
 */
import { ErrorCode, TetherError } from '../errors.ts';

export interface ApiStatusCause {
  /** metav1.CauseType, e.g. "ResourceVersionTooLarge", "FieldValueForbidden". */
  reason: string;
  message: string;
  field?: string;
}

/** The parts of a metav1.Status a client reads; `reason` '' is omitted on the wire (as the apiserver does). */
export interface ApiStatus {
  code: number;
  reason: string;
  message: string;
  details?: { name?: string; group?: string; kind?: string; causes?: ApiStatusCause[]; retryAfterSeconds?: number };
}

const API_STATUS = Symbol('kube api status');
type Carrier = { [API_STATUS]: ApiStatus };

const codeOf = (status: number) => (status === 400 ? ErrorCode.BadRequest : status === 422 ? ErrorCode.Invalid : status >= 500 ? ErrorCode.UpstreamUnavailable : ErrorCode.BadRequest);

/** A TetherError that the proxy answers with exactly `status`. */
export function apiStatusError(status: ApiStatus): TetherError {
  return new TetherError(codeOf(status.code), status.message, { cause: { [API_STATUS]: status } satisfies Carrier });
}

/** The apiserver Status an error carries, if it is one of apiStatusError's. */
export function apiStatusOf(e: unknown): ApiStatus | undefined {
  const cause = e instanceof TetherError ? (e.cause as Partial<Carrier> | undefined) : undefined;
  return cause && typeof cause === 'object' ? cause[API_STATUS] : undefined;
}

/**
 * storage.NewTooLargeResourceVersionError: a read for a resourceVersion newer than what is held.
 * The apiserver's watch cache sends retryAfterSeconds 1; the agent offline sends 0 (no
 * Retry-After), because its store does not move until the link is back.
 */
export function tooLargeResourceVersion(requested: string, current: string, retryAfterSeconds = 0): TetherError {
  return apiStatusError({
    code: 504,
    reason: 'Timeout',
    message: `Timeout: Too large resource version: ${requested}, current: ${current}`,
    details: {
      causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
      ...(retryAfterSeconds > 0 ? { retryAfterSeconds } : {}),
    },
  });
}

/** An Invalid ListOptions, as ValidateListOptions reports it (422, one cause per problem). */
export function invalidListOptions(errs: { field: string; type: 'FieldValueForbidden' | 'FieldValueNotSupported'; detail: string }[]): TetherError {
  const message = (e: (typeof errs)[number]) => `${e.type === 'FieldValueForbidden' ? 'Forbidden' : 'Unsupported value'}: ${e.detail}`;
  const list = errs.map((e) => `${e.field}: ${message(e)}`);
  return apiStatusError({
    code: 422,
    reason: 'Invalid',
    message: `ListOptions.meta.k8s.io "" is invalid: ${list.length === 1 ? list[0] : `[${list.join(', ')}]`}`,
    details: { group: 'meta.k8s.io', kind: 'ListOptions', causes: errs.map((e) => ({ reason: e.type, message: message(e), field: e.field })) },
  });
}
