/**
 * A minimal JSON client for the few kube-apiserver calls that join and certificate rotation make
 * (cluster-info, CertificateSigningRequests). node:https only, so it behaves the same in the
 * compiled binary (Bun) and in the Node bundle; one fresh connection per request (no agent), so
 * rotated credentials are never mixed with pooled connections.
 *
 * It never throws for an HTTP status (callers look at `status`); a transport failure (refused,
 * reset, timeout, TLS verification) throws E_UPSTREAM_UNAVAILABLE naming the request.
 *
 * With `agent` (the upstream through the hub, edge/upstream/via-hub.ts) the request goes on that
 * agent's connections instead: plain HTTP inside the tunnel to `server` (a name the hub resolves),
 * and the hub forwards it as the node; `ca`, `cert`, `key` and `insecure` do not apply then.
 */
import http from 'node:http';
import https from 'node:https';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import { buildInfo } from '../../shared/version.ts';

export interface KubeEndpoint {
  /** https://host:port */
  server: string;
  /** PEM of the CA that must have signed the server's certificate. */
  ca?: string | Buffer;
  /**
   * Skip verification of the server's certificate. Only for reading cluster-info before the CA
   * is pinned: nothing read that way is trusted until its signature and CA hash are checked.
   */
  insecure?: boolean;
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Bearer token (a bootstrap token). */
  token?: string;
  /** Send on this agent's connections (the hub agent) instead of a fresh TLS connection. */
  agent?: http.Agent;
}

export interface KubeReply {
  status: number;
  /** The parsed JSON body, or undefined when the body is not JSON. */
  body: any;
  text: string;
}

export function kubeRequest(
  ep: KubeEndpoint,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 15_000,
): Promise<KubeReply> {
  const url = new URL(path, ep.server);
  const what = `${method} ${url.href}`;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': `tether-edge/${buildInfo.version}` };
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload !== undefined) headers['content-type'] = 'application/json';
    if (ep.token) headers.authorization = `Bearer ${ep.token}`;
    const options: https.RequestOptions = ep.agent
      ? { method, headers, agent: ep.agent, timeout: timeoutMs }
      : { method, headers, agent: false, ca: ep.ca, cert: ep.cert, key: ep.key, rejectUnauthorized: !ep.insecure, timeout: timeoutMs };
    const req = (url.protocol === 'http:' ? http.request : https.request)(
      url,
      options,
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('error', (e) => reject(transport(what, e)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, text });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => reject(transport(what, e)));
    req.end(payload);
  });
}

function transport(what: string, e: unknown): TetherError {
  const code = (e as { code?: unknown }).code;
  const detail = messageOf(e) || (typeof code === 'string' ? code : 'connection failed');
  return new TetherError(ErrorCode.UpstreamUnavailable, `${what}: ${detail}`, { cause: e });
}

/** The Kubernetes Status message of an error answer, or the start of its text. */
export function replyMessage(r: KubeReply): string {
  const m = (r.body as { message?: unknown } | undefined)?.message;
  return typeof m === 'string' ? m : r.text.slice(0, 200);
}
