/**
 * The simulator's connection to the apiserver (direct over mTLS, or the edge agent over plain
 * HTTP on loopback). Every request carries the kubelet's User-Agent and `Accept: application/json`
 * (the real kubelet asks for protobuf; that is out of scope here). Requests never throw on an HTTP
 * status; a transport failure (refused, reset, timed out) is a TetherError E_UPSTREAM_UNAVAILABLE.
 *
 * `watch` opens a watch stream and yields one decoded event per line until the server ends the
 * stream, the signal aborts, or the connection fails (then it throws).
 */
import { ErrorCode, TetherError, messageOf } from '../../../shared/errors.ts';

export const KUBELET_VERSION = 'v1.37.2';
export const GOARCH = process.arch === 'x64' ? 'amd64' : process.arch;
/** client-go writes "unknown" for the commit when the build embeds none, as the control plane built here. */
export const USER_AGENT = `kubelet/${KUBELET_VERSION} (linux/${GOARCH}) kubernetes/unknown`;

export interface ApiClientOptions {
  /** https://host:port or http://127.0.0.1:10261 */
  server: string;
  caPem?: string;
  certPem?: string;
  keyPem?: string;
  userAgent?: string;
  /** Called after every response or failure, for metrics. */
  onResult?: (method: string, code: number | 'error') => void;
}

export interface ApiResponse<T = any> {
  status: number;
  body: T;
}

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: any;
}

export interface ApiClient {
  request<T = any>(method: string, path: string, opts?: RequestOptions): Promise<ApiResponse<T>>;
  /** Opens a watch; a non-200 answer is returned as { status, body } instead of events. */
  watch(path: string, signal: AbortSignal): Promise<ApiResponse | AsyncIterable<WatchEvent>>;
}

export function createApiClient(opts: ApiClientOptions): ApiClient {
  const base = opts.server.replace(/\/+$/, '');
  const tls = base.startsWith('https:')
    ? { ca: opts.caPem, ...(opts.certPem && opts.keyPem ? { cert: opts.certPem, key: opts.keyPem } : {}) }
    : undefined;
  const headers = (contentType?: string): Record<string, string> => ({
    'user-agent': opts.userAgent ?? USER_AGENT,
    accept: 'application/json',
    ...(contentType ? { 'content-type': contentType } : {}),
  });

  async function send(method: string, path: string, ro: RequestOptions, signal?: AbortSignal): Promise<Response> {
    const body = ro.body === undefined ? undefined : JSON.stringify(ro.body);
    try {
      const res = await fetch(base + path, {
        method,
        headers: headers(body === undefined ? undefined : (ro.contentType ?? 'application/json')),
        body,
        signal,
        ...(tls ? { tls } : {}),
      } as RequestInit);
      opts.onResult?.(method, res.status);
      return res;
    } catch (e) {
      opts.onResult?.(method, 'error');
      const code = (e as { code?: string }).code;
      const why = `${messageOf(e)}${code ? ` (${code})` : ''}`;
      throw new TetherError(ErrorCode.UpstreamUnavailable, `${method} ${path}: ${why}`, { cause: e });
    }
  }

  const decode = async (res: Response): Promise<any> => {
    const text = await res.text();
    try {
      return text ? JSON.parse(text) : undefined;
    } catch {
      return text;
    }
  };

  return {
    async request(method, path, ro = {}) {
      const signals = [AbortSignal.timeout(ro.timeoutMs ?? 10_000), ...(ro.signal ? [ro.signal] : [])];
      const signal = AbortSignal.any(signals);
      const res = await send(method, path, ro, signal);
      try {
        return { status: res.status, body: await decode(res) };
      } catch (e) {
        throw new TetherError(ErrorCode.UpstreamUnavailable, `${method} ${path}: read body: ${messageOf(e)}`, { cause: e });
      }
    },

    async watch(path, signal) {
      const res = await send('GET', path, {}, signal);
      if (res.status !== 200 || !res.body) return { status: res.status, body: await decode(res).catch(() => undefined) };
      return readEvents(res.body, path);
    },
  };
}

async function* readEvents(body: ReadableStream<Uint8Array>, path: string): AsyncIterable<WatchEvent> {
  const decoder = new TextDecoder();
  let rest = '';
  try {
    for await (const chunk of body) {
      rest += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        const line = rest.slice(0, nl).trim();
        rest = rest.slice(nl + 1);
        if (line) yield JSON.parse(line) as WatchEvent;
      }
    }
  } catch (e) {
    if ((e as Error)?.name === 'AbortError') return;
    throw new TetherError(ErrorCode.UpstreamUnavailable, `watch ${path}: ${messageOf(e)}`, { cause: e });
  }
  if (rest.trim()) yield JSON.parse(rest) as WatchEvent;
}
