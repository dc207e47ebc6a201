/**
 * Which identity an api stream's request goes out with, and the headers it goes out with. Pure.
 *
 * The node's verified name (the agent server authenticated the session: certificate CN or
 * TokenReview) is the only identity the hub lends. From every request of the edge it strips:
 * - every `Impersonate-*` header (user, group, uid, extra) and every `X-Remote-*` header (the
 *   apiserver's requestheader names: the hub presents no front-proxy certificate, but a header
 *   that means identity somewhere never crosses the hub);
 * - an `Authorization` that is not one `Bearer <token>` (basic, several headers, …);
 * - hop-by-hop headers (RFC 9110 §7.6.1: Connection and what it names, Keep-Alive,
 *   Proxy-Connection, Proxy-Authorization, TE, Trailer, Transfer-Encoding, Upgrade), `Expect`
 *   (node:http answers 100-continue itself) and `Host` (the upstream's).
 *
 * Then:
 * - with one `Authorization: Bearer …` (a pod's token, via the proxy) the request passes as it is,
 *   with no credential of the hub: the apiserver authenticates the token;
 * - without, it goes out as the node: the hub's credentials plus `Impersonate-User:
 *   system:node:<name>` (constrained impersonation, mode arbitrary-node: the apiserver sets the
 *   groups itself) or, in `legacy` mode, also `Impersonate-Group: system:nodes`.
 * - an upgrade (exec, attach, port-forward) keeps `Connection: Upgrade` and its `Upgrade` value.
 */

export type ImpersonationMode = 'constrained' | 'legacy';

export type OutgoingHeaders = Record<string, string | string[]>;

export interface UpstreamRequestHeaders {
  /** True: the request carries the caller's own bearer token and must not carry the hub's credentials. */
  bearer: boolean;
  headers: OutgoingHeaders;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const DROPPED = new Set(['host', 'expect']);

/** Header names named by Connection (they are hop-by-hop too). */
function connectionTokens(raw: string[]): Set<string> {
  const out = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== 'connection') continue;
    for (const t of raw[i + 1]!.split(',')) if (t.trim()) out.add(t.trim().toLowerCase());
  }
  return out;
}

function isIdentityHeader(name: string): boolean {
  return name.startsWith('impersonate-') || name.startsWith('x-remote-');
}

const BEARER = /^bearer +\S+$/i;

export interface HeaderOptions {
  node: string;
  mode: ImpersonationMode;
  /** The request is an upgrade (its Upgrade header value, e.g. "SPDY/3.1" or "websocket"). */
  upgrade?: string;
  /** Replace Accept-Encoding with this value (e.g. "identity"); absent: keep the edge's. */
  acceptEncoding?: string;
}

/** The request's headers for kube-apiserver, from node:http's `req.rawHeaders`. */
export function upstreamHeaders(raw: string[], opts: HeaderOptions): UpstreamRequestHeaders {
  const named = connectionTokens(raw);
  const headers: OutgoingHeaders = {};
  const auth: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    if (name === 'authorization') {
      auth.push(value);
      continue;
    }
    if (HOP_BY_HOP.has(name) || DROPPED.has(name) || named.has(name) || isIdentityHeader(name)) continue;
    if (name === 'accept-encoding' && opts.acceptEncoding !== undefined) continue;
    const cur = headers[name];
    headers[name] = cur === undefined ? value : Array.isArray(cur) ? [...cur, value] : [cur, value];
  }
  if (opts.acceptEncoding !== undefined) headers['accept-encoding'] = opts.acceptEncoding;
  if (opts.upgrade) {
    headers.connection = 'Upgrade';
    headers.upgrade = opts.upgrade;
  }
  const bearer = auth.length === 1 && BEARER.test(auth[0]!.trim());
  if (bearer) {
    headers.authorization = auth[0]!.trim();
    return { bearer: true, headers };
  }
  headers['impersonate-user'] = `system:node:${opts.node}`;
  if (opts.mode === 'legacy') headers['impersonate-group'] = 'system:nodes';
  return { bearer: false, headers };
}

const RESPONSE_HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** The answer's headers for the edge (flat [name, value, …] as node:http's writeHead takes), without hop-by-hop ones. */
export function downstreamHeaders(raw: string[]): string[] {
  const named = connectionTokens(raw);
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (RESPONSE_HOP_BY_HOP.has(name) || named.has(name)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}
