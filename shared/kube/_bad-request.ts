import { ErrorCode, TetherError } from '../errors.ts';

/** The one way this module fails: a BadRequest whose message is `<step>: <what is wrong>`. */
export function badRequest(step: string, what: string, cause?: unknown): TetherError {
  return new TetherError(ErrorCode.BadRequest, `${step}: ${what}`, cause === undefined ? undefined : { cause });
}

/**
 * A BadRequest carrying the apiserver's own message verbatim (no step prefix), for errors a
 * client sees from kube-apiserver and must see the same offline ("field label not supported: x").
 */
export function apiserverBadRequest(message: string): TetherError {
  return new TetherError(ErrorCode.BadRequest, message);
}
