/**
 * Offline authentication of bearer tokens (pods' service-account tokens, passed through online).
 *
 * Contract. Online the apiserver authenticates and authorizes every bearer request; an answer in the
 * 2xx range is proof that this exact token was valid and allowed that request at that moment. The
 * agent keeps that proof, and only that, per token:
 *   - the token is known by its SHA-256 only (the token itself is never kept);
 *   - its expiry: the `exp` claim when the token is a JWT (service-account tokens are), otherwise
 *     `unverifiedTtlMs` after the apiserver last accepted it;
 *   - the pod it is bound to (`kubernetes.io.pod` claims of a bound service-account token);
 *   - its views: what it was allowed, as (verb class, resource, namespace, name, selectors).
 * Offline, `authorize` admits a bearer request only when the token was accepted online, has not
 * expired, its bound pod still exists (asked of the caller: the snapshot store knows the node's pods),
 * and a view covers the request: a read of an object is covered by a read of that object, of its
 * namespace's collection or of the cluster-wide collection; a list or watch by a list or watch of the
 * same or a wider namespace with the same selectors (or none); a write by the same verb on the same
 * resource in the same namespace. Anything else is refused with the reason, so the proxy can answer a
 * Status that says why (401: the token cannot be verified offline; 403: not shown online).
 *
 * The claims are read without checking the signature on purpose: a token whose hash the apiserver
 * accepted is authentic, and a forged token has another hash. Memory is bounded: at most `maxTokens`
 * tokens (least recently accepted dropped first) and `maxViews` views each.
 *
 * Persistence: `initial` restores what a previous run kept; `onChange` is called when a proof
 * changes in a way worth keeping (a new token, a new view, an expiry moved by more than a minute),
 * never on every request, and `onEvict` when one is dropped; the agent keeps them in the store, so
 * kube-proxy's and CoreDNS's tokens still work offline after a reboot.
 */
import { createHash } from 'node:crypto';
import type { RequestInfo } from '../../shared/kube/request-info.ts';

export interface OfflineTokensOptions {
  /** Milliseconds since the epoch; Date.now by default. */
  now?: () => number;
  /** Lifetime of a non-JWT token after it was last accepted online (default 1 h). */
  unverifiedTtlMs?: number;
  maxTokens?: number;
  maxViews?: number;
  /** Proofs kept by an earlier run (expired ones are ignored). */
  initial?: readonly TokenRecord[];
  onChange?(record: TokenRecord): void;
  onEvict?(hash: string): void;
}

/** A token's proof as it is persisted. */
export interface TokenRecord {
  hash: string;
  expiresAt: number;
  acceptedAt: number;
  claims: Record<string, unknown>;
  views: string[];
}

export type OfflineDecision =
  | { ok: true; subject: string }
  | { ok: false; code: 401 | 403; message: string };

export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
}

export interface OfflineTokens {
  /** Online: the apiserver answered `status` to this bearer request. Only 2xx answers are kept. */
  accepted(authorization: string, info: RequestInfo, status: number): void;
  /** Offline: may this bearer request be answered from the store? */
  authorize(authorization: string, info: RequestInfo, podExists: (pod: PodRef) => boolean): OfflineDecision;
  /** How many tokens are known (for metrics and tests). */
  readonly size: number;
}

interface Claims {
  exp?: number;
  sub?: string;
  pod?: PodRef;
}

interface TokenEntry {
  expiresAt: number;
  acceptedAt: number;
  claims: Claims;
  views: Set<string>;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** The token of an `Authorization: Bearer …` header, or undefined for any other scheme. */
export function bearerToken(authorization: string | undefined): string | undefined {
  const m = authorization ? BEARER.exec(authorization) : null;
  return m?.[1];
}

function hashOf(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The claims of a JWT's payload; {} for anything that is not a JWT with a JSON object payload. */
export function readClaims(token: string): Claims {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return {};
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return {};
  }
  if (!isRecord(payload)) return {};
  const claims: Claims = {};
  if (typeof payload.exp === 'number' && Number.isFinite(payload.exp)) claims.exp = payload.exp;
  if (typeof payload.sub === 'string') claims.sub = payload.sub;
  const k8s = payload['kubernetes.io'];
  if (isRecord(k8s) && isRecord(k8s.pod) && typeof k8s.namespace === 'string') {
    const { name, uid } = k8s.pod;
    if (typeof name === 'string' && typeof uid === 'string') claims.pod = { namespace: k8s.namespace, name, uid };
  }
  return claims;
}

const READ_VERBS = new Set(['get', 'list', 'watch']);

function verbClass(info: RequestInfo): string {
  if (!info.isResourceRequest) return `nonresource:${info.verb}`;
  if (READ_VERBS.has(info.verb)) return info.name && info.verb === 'get' ? 'read-one' : 'read-all';
  return info.verb;
}

function selectorsOf(info: RequestInfo): string {
  return `${info.rawLabelSelector}|${info.rawFieldSelector}`;
}

const key = (...parts: string[]) => parts.map((p) => encodeURIComponent(p)).join('/');

/** The view an accepted request proves. */
function viewOf(info: RequestInfo): string {
  const cls = verbClass(info);
  if (!info.isResourceRequest) return key(cls, info.path);
  const resource = info.subresource ? `${info.gvr}/${info.subresource}` : info.gvr;
  if (cls === 'read-one') return key(cls, resource, info.namespace, info.name);
  if (cls === 'read-all') return key(cls, resource, info.namespace, selectorsOf(info));
  return key(cls, resource, info.namespace);
}

/** The views, any one of which covers a request. */
function coveringViews(info: RequestInfo): string[] {
  const cls = verbClass(info);
  if (!info.isResourceRequest) return [key(cls, info.path)];
  const resource = info.subresource ? `${info.gvr}/${info.subresource}` : info.gvr;
  const collections = (ns: string, sel: string) => [key('read-all', resource, ns, sel), ...(ns ? [key('read-all', resource, '', sel)] : [])];
  if (cls === 'read-one') {
    // A selector-less list of the namespace (or of the cluster) showed every object in it.
    return [key(cls, resource, info.namespace, info.name), ...collections(info.namespace, '|')];
  }
  if (cls === 'read-all') {
    const sel = selectorsOf(info);
    return [...collections(info.namespace, sel), ...(sel === '|' ? [] : collections(info.namespace, '|'))];
  }
  return [key(cls, resource, info.namespace)];
}

export function createOfflineTokens(opts: OfflineTokensOptions = {}): OfflineTokens {
  const now = opts.now ?? Date.now;
  const ttl = opts.unverifiedTtlMs ?? 3_600_000;
  const maxTokens = opts.maxTokens ?? 1024;
  const maxViews = opts.maxViews ?? 512;
  // A Map iterates in insertion order: re-inserting on acceptance keeps the oldest first.
  const tokens = new Map<string, TokenEntry>();
  const recordOf = (hash: string, e: TokenEntry): TokenRecord => ({
    hash,
    expiresAt: e.expiresAt,
    acceptedAt: e.acceptedAt,
    claims: { ...e.claims },
    views: [...e.views],
  });
  for (const r of [...(opts.initial ?? [])].sort((a, b) => a.acceptedAt - b.acceptedAt)) {
    if (r.expiresAt <= now() || !/^[0-9a-f]{64}$/.test(r.hash)) continue;
    const c = r.claims as Claims;
    const pod = c.pod && typeof c.pod.name === 'string' && typeof c.pod.uid === 'string' && typeof c.pod.namespace === 'string' ? c.pod : undefined;
    const claims: Claims = { ...(typeof c.exp === 'number' ? { exp: c.exp } : {}), ...(typeof c.sub === 'string' ? { sub: c.sub } : {}), ...(pod ? { pod } : {}) };
    tokens.set(r.hash, { claims, acceptedAt: r.acceptedAt, expiresAt: r.expiresAt, views: new Set(r.views.filter((v) => typeof v === 'string').slice(-maxViews)) });
  }
  while (tokens.size > maxTokens) tokens.delete(tokens.keys().next().value as string);

  return {
    accepted(authorization, info, status) {
      if (status < 200 || status > 299) return;
      const token = bearerToken(authorization);
      if (!token) return;
      const h = hashOf(token);
      const at = now();
      let entry = tokens.get(h);
      let changed = !entry;
      if (entry) tokens.delete(h);
      else {
        const claims = readClaims(token);
        entry = { claims, acceptedAt: at, expiresAt: 0, views: new Set() };
      }
      entry.acceptedAt = at;
      const expiresAt = entry.claims.exp !== undefined ? entry.claims.exp * 1000 : at + ttl;
      if (Math.abs(expiresAt - entry.expiresAt) > 60_000) changed = true;
      entry.expiresAt = expiresAt;
      tokens.set(h, entry);
      const view = viewOf(info);
      if (!entry.views.has(view)) {
        if (entry.views.size >= maxViews) entry.views.delete(entry.views.values().next().value as string);
        entry.views.add(view);
        changed = true;
      }
      if (changed) opts.onChange?.(recordOf(h, entry));
      while (tokens.size > maxTokens) {
        const oldest = tokens.keys().next().value as string;
        tokens.delete(oldest);
        opts.onEvict?.(oldest);
      }
    },

    authorize(authorization, info, podExists) {
      const token = bearerToken(authorization);
      if (!token) {
        return { ok: false, code: 401, message: 'tether-edge: offline, only bearer tokens and the node certificate are accepted' };
      }
      const entry = tokens.get(hashOf(token));
      if (!entry) {
        return { ok: false, code: 401, message: 'tether-edge: offline, and this token was not accepted by the apiserver while online: it cannot be verified until the link is back' };
      }
      if (now() >= entry.expiresAt) {
        return { ok: false, code: 401, message: `tether-edge: offline, and this token expired at ${new Date(entry.expiresAt).toISOString()}` };
      }
      const pod = entry.claims.pod;
      if (pod && !podExists(pod)) {
        return { ok: false, code: 401, message: `tether-edge: offline, and the pod ${pod.namespace}/${pod.name} this token is bound to no longer exists` };
      }
      if (!coveringViews(info).some((v) => entry.views.has(v))) {
        const what = info.isResourceRequest ? `${info.verb} ${info.gvr}${info.namespace ? ` in ${info.namespace}` : ''}` : `${info.verb} ${info.path}`;
        return { ok: false, code: 403, message: `tether-edge: offline, and this token was not shown ${what} while online` };
      }
      return { ok: true, subject: entry.claims.sub ?? 'bearer token' };
    },

    get size() {
      return tokens.size;
    },
  };
}
