/**
 * A minimal JSON client for the apiserver, for setting up the cluster and for tests: Bun's fetch
 * with the cluster CA and either a client certificate, a bearer token or no credentials
 * (anonymous). It never throws on an HTTP status; callers look at `status`.
 */
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';

export interface KubeCredentials {
  server: string;
  caPem: string;
  certPem?: string;
  keyPem?: string;
  token?: string;
}

export interface KubeResponse<T = any> {
  status: number;
  body: T;
}

export interface KubeRest {
  request<T = any>(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<KubeResponse<T>>;
  /** POST to a collection; an object that exists already (409) counts as success. */
  ensure(collectionPath: string, obj: unknown): Promise<void>;
}

export function createKubeRest(creds: KubeCredentials): KubeRest {
  const tls = { ca: creds.caPem, ...(creds.certPem && creds.keyPem ? { cert: creds.certPem, key: creds.keyPem } : {}) };
  const request: KubeRest['request'] = async (method, path, body, timeoutMs = 15_000) => {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) {
      headers['content-type'] = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
    }
    if (creds.token) headers.authorization = `Bearer ${creds.token}`;
    let res: Response;
    try {
      res = await fetch(creds.server + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        tls,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      throw new TetherError(ErrorCode.UpstreamUnavailable, `${method} ${path}: ${messageOf(e)}`, { cause: e });
    }
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // plain text bodies (/readyz) stay text
    }
    return { status: res.status, body: parsed as any };
  };
  return {
    request,
    async ensure(collectionPath, obj) {
      const res = await request('POST', collectionPath, obj);
      if (res.status >= 300 && res.status !== 409) {
        throw new TetherError(
          ErrorCode.Internal,
          `create in ${collectionPath}: HTTP ${res.status}: ${res.body?.message ?? JSON.stringify(res.body)}`,
        );
      }
    },
  };
}
