/**
 * The writes and reads the controllers make, over the hub's JSON client. A refusal by the
 * apiserver becomes a TetherError whose message names the step and carries the apiserver's
 * message; `apiStatusOf(e)` gives its HTTP status (409 conflicts are retried by the work queue).
 */
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import type { RestClient, RestResponse } from '../kube/client.ts';
import { FIELD_MANAGER } from '../api/keys.ts';

export interface Api {
  get<T>(path: string): Promise<T | undefined>;
  create<T>(path: string, body: unknown): Promise<T>;
  put<T>(path: string, body: unknown): Promise<T>;
  mergePatch<T>(path: string, patch: unknown): Promise<T>;
  /** Server-side apply as the hub's field manager, taking over conflicting fields. */
  apply<T>(path: string, obj: unknown): Promise<T>;
  /** Deletes; an object already gone is not an error. */
  delete(path: string, opts?: { propagationPolicy?: 'Background' | 'Foreground' | 'Orphan'; uid?: string }): Promise<void>;
}

class ApiRefusal extends TetherError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(status >= 500 || status === 0 ? ErrorCode.UpstreamUnavailable : ErrorCode.Internal, message);
  }
}

export function apiStatusOf(e: unknown): number | undefined {
  return e instanceof ApiRefusal ? e.status : undefined;
}

function check<T>(step: string, res: RestResponse<T>, ok: (s: number) => boolean = (s) => s >= 200 && s < 300): T {
  if (ok(res.status)) return res.body;
  const b = res.body as { message?: string; reason?: string } | string | undefined;
  const detail = typeof b === 'string' ? b.slice(0, 500) : `${b?.reason ?? ''}${b?.message ? `: ${b.message}` : ''}`;
  throw new ApiRefusal(res.status, `${step}: HTTP ${res.status} ${detail}`.trim());
}

export function createApi(rest: RestClient): Api {
  return {
    async get(path) {
      const res = await rest.request({ method: 'GET', path });
      if (res.status === 404) return undefined;
      return check(`get ${path}`, res);
    },
    async create(path, body) {
      return check(`create in ${path}`, await rest.request({ method: 'POST', path, body, query: { fieldManager: FIELD_MANAGER } }));
    },
    async put(path, body) {
      return check(`update ${path}`, await rest.request({ method: 'PUT', path, body, query: { fieldManager: FIELD_MANAGER } }));
    },
    async mergePatch(path, patch) {
      return check(
        `patch ${path}`,
        await rest.request({ method: 'PATCH', path, body: patch, contentType: 'application/merge-patch+json', query: { fieldManager: FIELD_MANAGER } }),
      );
    },
    async apply(path, obj) {
      return check(
        `apply ${path}`,
        await rest.request({
          method: 'PATCH',
          path,
          body: obj,
          contentType: 'application/apply-patch+yaml',
          query: { fieldManager: FIELD_MANAGER, force: 'true' },
        }),
      );
    },
    async delete(path, opts = {}) {
      const body = {
        kind: 'DeleteOptions',
        apiVersion: 'v1',
        ...(opts.propagationPolicy ? { propagationPolicy: opts.propagationPolicy } : {}),
        ...(opts.uid ? { preconditions: { uid: opts.uid } } : {}),
      };
      check(`delete ${path}`, await rest.request({ method: 'DELETE', path, body }), (s) => (s >= 200 && s < 300) || s === 404);
    },
  };
}
