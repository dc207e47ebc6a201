/**
 * Who is calling: an agent on the tunnel listener, kube-apiserver, Prometheus or another hub
 * replica on the CONNECT endpoint. Two ways in, as for the apiserver itself:
 *
 * - a client certificate verified against the configured CA: the user is the subject's CN, the
 *   groups its O values (so a node's certificate is `system:node:<name>` in `system:nodes`);
 * - a bearer token (`Authorization` on the tunnel listener, `Proxy-Authorization` on CONNECT),
 *   checked with a TokenReview; answers are cached briefly (`ttlMs`, and `negativeTtlMs` for
 *   refusals) so a burst of scrapes is not a burst of reviews.
 *
 * A certificate that is presented but not trusted is refused even when a token is also present.
 *
 * The common name: Go's crypto/x509 (and so kube-apiserver) keeps the LAST CN of a subject with
 * several, node:tls and Bun list them all; a certificate with more than one CN is refused here, so
 * the hub and the apiserver can never see two different users in one certificate. With exactly one
 * CN both read the same name. Groups are every O value, as in Go.
 *
 * `credential` says which credential it was (the certificate's SHA-256 fingerprint, or the token's
 * SHA-256): a replacement session for a node is accepted only with the same one (tunnels.ts).
 */
import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';

export interface Identity {
  user: string;
  groups: string[];
  via: 'certificate' | 'token' | 'socket';
  /** "cert:<sha256 fingerprint>" or "token:<sha256>"; absent for the Unix socket. */
  credential?: string;
}

export type TokenReview = { user: string; groups: string[] } | { error: string };

export interface TokenReviewer {
  review(token: string): Promise<TokenReview>;
}

const asList = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : typeof v === 'string' ? [v] : []);

/** The identity in a verified client certificate; undefined when none was presented. */
export function certificateIdentity(socket: TLSSocket): Identity | undefined {
  const cert = socket.getPeerCertificate?.();
  if (!cert || !cert.subject || Object.keys(cert).length === 0) return undefined;
  if (!socket.authorized) {
    throw new TetherError(ErrorCode.BadRequest, `authenticate: client certificate ${cert.subject.CN ?? '(no CN)'} is not signed by a trusted CA (${String(socket.authorizationError ?? 'unknown')})`);
  }
  const cns = asList(cert.subject.CN);
  if (cns.length > 1) {
    throw new TetherError(ErrorCode.BadRequest, `authenticate: client certificate has ${cns.length} common names (${cns.map((c) => JSON.stringify(c.slice(0, 80))).join(', ')}); exactly one is accepted`);
  }
  const user = cns[0];
  if (!user) throw new TetherError(ErrorCode.BadRequest, 'authenticate: client certificate has no common name');
  return { user, groups: asList(cert.subject.O), via: 'certificate', credential: `cert:${cert.fingerprint256 ?? ''}` };
}

export function bearerToken(header: string | undefined): string | undefined {
  const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return m?.[1];
}

/**
 * The caller's identity from the certificate, else the bearer token; throws E_BAD_REQUEST with the
 * reason when there is neither or they do not check out.
 */
export async function authenticate(socket: TLSSocket | undefined, authorization: string | undefined, reviewer: TokenReviewer | undefined): Promise<Identity> {
  const fromCert = socket ? certificateIdentity(socket) : undefined;
  if (fromCert) return fromCert;
  const token = bearerToken(authorization);
  if (!token) throw new TetherError(ErrorCode.BadRequest, 'authenticate: no client certificate and no bearer token');
  if (!reviewer) throw new TetherError(ErrorCode.BadRequest, 'authenticate: bearer tokens are not accepted here (no TokenReview access)');
  let r: TokenReview;
  try {
    r = await reviewer.review(token);
  } catch (e) {
    throw new TetherError(ErrorCode.UpstreamUnavailable, `authenticate: TokenReview failed: ${messageOf(e)}`, { cause: e });
  }
  if ('error' in r) throw new TetherError(ErrorCode.BadRequest, `authenticate: token rejected by TokenReview: ${r.error}`);
  return { user: r.user, groups: r.groups, via: 'token', credential: `token:${createHash('sha256').update(token).digest('base64')}` };
}

/** The node an identity speaks for: user `system:node:<name>` in group `system:nodes`. */
export function nodeNameOf(id: Identity): string | undefined {
  if (!id.user.startsWith('system:node:') || !id.groups.includes('system:nodes')) return undefined;
  const name = id.user.slice('system:node:'.length);
  return name || undefined;
}

export interface CachedReviewerOptions {
  ttlMs?: number;
  negativeTtlMs?: number;
  maxEntries?: number;
  now?: () => number;
}

/** Wraps a TokenReview call with a small cache keyed by the token's SHA-256. */
export function createCachedReviewer(review: (token: string) => Promise<TokenReview>, opts: CachedReviewerOptions = {}): TokenReviewer {
  const now = opts.now ?? Date.now;
  const ttl = opts.ttlMs ?? 60_000;
  const negativeTtl = opts.negativeTtlMs ?? 10_000;
  const max = opts.maxEntries ?? 10_000;
  const cache = new Map<string, { until: number; answer: TokenReview }>();
  return {
    async review(token) {
      const key = createHash('sha256').update(token).digest('base64');
      const hit = cache.get(key);
      if (hit && hit.until > now()) return hit.answer;
      const answer = await review(token);
      if (cache.size >= max) cache.delete(cache.keys().next().value!);
      cache.set(key, { until: now() + ('error' in answer ? negativeTtl : ttl), answer });
      return answer;
    },
  };
}
