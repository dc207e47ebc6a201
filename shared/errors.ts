/**
 * The one error type of Tether. Every failure that crosses a module boundary is a TetherError
 * with a stable code; the message starts with the step that failed ("open store: …") and the
 * original error travels in `cause`.
 */
export const ErrorCode = {
  BadConfig: 'E_BAD_CONFIG',
  BadRequest: 'E_BAD_REQUEST',
  /** A well-formed request that cannot be carried out on the object (a JSON-patch operation that fails). */
  Invalid: 'E_INVALID',
  StoreOpen: 'E_STORE_OPEN',
  StoreCorrupt: 'E_STORE_CORRUPT',
  StoreLocked: 'E_STORE_LOCKED',
  StoreNewerSchema: 'E_STORE_NEWER_SCHEMA',
  StoreConflict: 'E_STORE_CONFLICT',
  UpstreamUnavailable: 'E_UPSTREAM_UNAVAILABLE',
  TunnelClosed: 'E_TUNNEL_CLOSED',
  TunnelDial: 'E_TUNNEL_DIAL',
  TunnelDenied: 'E_TUNNEL_DENIED',
  TunnelTimeout: 'E_TUNNEL_TIMEOUT',
  TunnelReset: 'E_TUNNEL_RESET',
  TunnelProtocol: 'E_TUNNEL_PROTOCOL',
  Internal: 'E_INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class TetherError extends Error {
  override readonly name = 'TetherError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isTetherError(e: unknown, code?: ErrorCode): e is TetherError {
  return e instanceof TetherError && (code === undefined || e.code === code);
}

/** The message of any thrown value, for logs and error chains. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
