/**
 * Service-account tokens the kubelet was issued online (TokenRequest: POST
 * serviceaccounts/<sa>/token, bound to one of its pods), kept so that the same request made again
 * offline gets the same answer while the token is still valid.
 *
 * Why: the kubelet keeps the tokens of its pods' projected `kube-api-access` volumes in memory only.
 * After a reboot with the link down it asks again, the apiserver cannot answer, and the volume
 * cannot be mounted: the pod's containers never start, however complete the cached pod spec is.
 *
 * What is answered: only a request byte-for-byte equal to one the apiserver answered 201 online
 * (same service account, audiences, expiry and bound pod, uid included), from the kubelet (a cached
 * component with the node's identity), and only while the token's own `exp` claim is at least a
 * minute away. The token is the one the apiserver issued for that pod on this node: nothing is
 * minted, and the kubelet could have held the very same answer in memory. Anything else offline gets
 * the refusal it got before (503). The answers live in the store with the cached Secrets (root-only
 * files; docs/security.md, "Offline service-account tokens").
 */
import { createHash } from 'node:crypto';
import type { RequestInfo } from '../../shared/kube/index.ts';
import type { Store } from '../store/index.ts';
import type { CachedAnswer, Tap } from './contract.ts';
import { OFFLINE_WARNING } from './reader.ts';

/** A token must stay valid at least this long to be handed out again. */
const MIN_VALIDITY_MS = 60_000;

export const isTokenRequest = (info: RequestInfo): boolean =>
  info.isResourceRequest && info.verb === 'create' && info.gvr === 'v1/serviceaccounts' && info.subresource === 'token';

/** The store key of one exact request: the service account and the hash of the body as sent. */
function keyOf(info: RequestInfo, body: Buffer): string {
  const ns = info.isResourceRequest ? info.namespace : '';
  const sa = info.isResourceRequest ? info.name : '';
  return `tokenrequest|${ns}/${sa}|${createHash('sha256').update(body).digest('hex')}`;
}

/** When the issued token stops being valid: its JWT `exp`, else the answer's expirationTimestamp. */
function expiresAt(answer: string): number | undefined {
  try {
    const tr = JSON.parse(answer) as { status?: { token?: string; expirationTimestamp?: string } };
    const payload = tr.status?.token?.split('.')[1];
    if (payload) {
      const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: number }).exp;
      if (typeof exp === 'number') return exp * 1000;
    }
    const t = Date.parse(tr.status?.expirationTimestamp ?? '');
    return Number.isNaN(t) ? undefined : t;
  } catch {
    return undefined;
  }
}

/** Keeps the apiserver's 201 answer (JSON: the cache asks for JSON) to this exact request. */
export function tokenTap(store: Store, info: RequestInfo, body: Buffer, onError: (e: unknown) => void): Tap {
  const chunks: Buffer[] = [];
  let keep = false;
  return {
    head: (status, headers) => (keep = status === 201 && /json/.test(String(headers['content-type'] ?? ''))),
    chunk: (d) => void chunks.push(Buffer.from(d)),
    end: (complete) => {
      if (!keep || !complete) return;
      const text = Buffer.concat(chunks).toString('utf8');
      if (expiresAt(text) === undefined) return; // not a TokenRequest with a token: nothing to hand out later
      try {
        store.documents.put(keyOf(info, body), info.path, { contentType: 'application/json', body: text });
      } catch (e) {
        onError(e);
      }
    },
  };
}

/** The answer kept for this exact request, while its token is valid; undefined otherwise. */
export function replayToken(store: Store, info: RequestInfo, body: Buffer, now = Date.now()): CachedAnswer | undefined {
  if (!isTokenRequest(info)) return undefined;
  const doc = store.documents.get(keyOf(info, body));
  if (!doc) return undefined;
  const exp = expiresAt(doc.body);
  if (exp === undefined || exp - now < MIN_VALIDITY_MS) return undefined;
  return { status: 201, body: undefined, raw: doc.body, warning: OFFLINE_WARNING };
}
