/**
 * Reader: GET and LIST answered from the store while offline, with the request's label and field
 * selectors evaluated locally and limit/continue paging.
 *
 * An answer is given only when the store can be trusted for it: a LIST needs a listed stream that
 * covers the request (scope.ts); a GET needs the object, or a listed stream proving it does not
 * exist. Otherwise the answer is 503 (without Retry-After: nothing changes until the link is back),
 * never an empty list, so a kubelet whose pod list is not cached keeps its pods. A LIST for a
 * resourceVersion newer than the store holds is the apiserver's 504 Timeout with the
 * ResourceVersionTooLarge cause; continue tokens are this agent's own or the apiserver's. Clients that are not cached components (kubectl) get the best
 * answer the store has, with a Warning header saying it comes from the node's cache.
 *
 * An answer is also given only when the caller's identity was allowed the request online
 * (access.ts): when the apiserver refused it that request, the same 403; when the record cannot
 * tell, 503 saying so (after the store's own 503, which is the better hint). The proxy asks
 * `readGet` with a WATCH too, before serving it from the log: the answer is then only the
 * admission (200 without a body) or the refusal.
 */
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import { type ResourceRequestInfo, apiserverBadRequest, tooLargeResourceVersion } from '../../shared/kube/index.ts';
import { statusBody } from '../../shared/kube/status.ts';
import type { KubeObject, Store } from '../store/index.ts';
import { listAnswerVersion, listTooNew, namesVersion } from '../store/resource-version.ts';
import { type AccessDecision, accessOf, unknownError } from './access.ts';
import type { CachedAnswer } from './contract.ts';
import { listKindKey } from './documents.ts';
import { canPrint, toTable, wantsTable } from './table.ts';
import { coveringStream, requestMatcher, scopeOf, selectableMatcher } from './scope.ts';

export const OFFLINE_WARNING = '299 - "tether-edge: the apiserver is unreachable; answered from the node\'s cache"';

const unavailable = (what: string) =>
  new TetherError(
    ErrorCode.UpstreamUnavailable,
    `tether-edge: the node is offline, and ${what} is not in the node's cache; this does not change until the apiserver is reachable again`,
  );

interface ContinueToken {
  rv: string;
  after: string;
}

function encodeContinue(t: ContinueToken): string {
  return Buffer.from(JSON.stringify({ tether: 1, ...t })).toString('base64url');
}

/**
 * The first store key ("namespace/name", "/name" when cluster-scoped) a continue token lets a page
 * start at, inclusive: this agent's own token (after its last key), or one the apiserver issued
 * online ({"v":"meta.k8s.io/v1","rv":…,"start":…}, the start relative to the list's key prefix),
 * so a paged list begun online goes on offline. Anything else is the apiserver's 400.
 */
function continueFrom(s: string, namespace: string): string {
  let t: { tether?: number; rv?: unknown; after?: unknown; v?: unknown; start?: unknown } | undefined;
  try {
    t = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  } catch {
    // t stays undefined
  }
  if (t && typeof t === 'object') {
    if (t.tether === 1 && typeof t.rv === 'string' && typeof t.after === 'string') return `${t.after}\0`;
    if (t.v === 'meta.k8s.io/v1' && typeof t.rv === 'number' && t.rv !== 0 && typeof t.start === 'string' && t.start !== '' && !/(^|\/)\.\.?(\/|$)/.test(t.start)) {
      const start = t.start.replace(/^\//, '');
      return namespace ? `${namespace}/${start}` : start.includes('/') ? start : `/${start}`;
    }
  }
  throw apiserverBadRequest('invalid continue token: continue parameter is invalid: it was issued neither by the apiserver nor by this agent');
}

const keyOf = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;

export function listKind(store: Store, gvr: string, items: KubeObject[]): string {
  const stored = store.documents.get(listKindKey(gvr))?.body;
  if (stored) return stored;
  const kind = items.find((o) => o.kind)?.kind;
  return kind ? `${kind}List` : 'List';
}

export function apiVersionOf(gvr: string): string {
  const parts = gvr.split('/');
  return parts.length === 3 ? `${parts[0]}/${parts[1]}` : (parts[0] ?? 'v1');
}

/** The apiserver's 403 this identity got online for the request, as the answer. */
const refused = (refusal: Record<string, unknown>): CachedAnswer => ({ status: 403, body: refusal });

/** The store can answer: only when the record says this identity may know the answer (refusals are answered before). */
function mustBeAllowed(d: AccessDecision): void {
  if (d.kind === 'unknown') throw unknownError(d);
}

export function readGet(store: Store, info: ResourceRequestInfo, cachedComponent: boolean): CachedAnswer {
  if (info.verb === 'watch') {
    const admitted = accessOf(store).decide(info, cachedComponent);
    if (admitted.kind === 'refused') return refused(admitted.refusal);
    if (admitted.kind === 'unknown') throw unknownError(admitted);
    return { status: 200, body: undefined };
  }
  const obj = store.objects.get(info.gvr, info.namespace, info.name);
  const access = accessOf(store).decide(info, cachedComponent, obj);
  if (access.kind === 'refused') return refused(access.refusal);
  if (obj) mustBeAllowed(access);
  if (obj) return { status: 200, body: obj, warning: cachedComponent ? undefined : OFFLINE_WARNING };
  // Absent: authoritative only when a listed stream without selectors holds the whole namespace (or all).
  const proof = store.streams
    .all()
    .find((s) => s.listed && s.gvr === info.gvr && (s.namespace === '' || s.namespace === info.namespace) && !s.labelSelector && !s.fieldSelector);
  if (proof) {
    mustBeAllowed(access);
    return {
      status: 404,
      body: statusBody(404, 'NotFound', `${info.resource} "${info.name}" not found`, { name: info.name, group: info.apiGroup, kind: info.resource }),
    };
  }
  throw unavailable(`${info.resource} ${info.namespace ? `${info.namespace}/` : ''}${info.name}`);
}

export function readList(store: Store, info: ResourceRequestInfo, cachedComponent: boolean, accept?: string): CachedAnswer {
  const access = accessOf(store).decide(info, cachedComponent);
  if (access.kind === 'refused') return refused(access.refusal);
  const scope = scopeOf(info);
  const stream = coveringStream(store.streams.all(), scope);
  let warning: string | undefined;
  if (!stream) {
    const any = store.streams.all().some((s) => s.listed && s.gvr === info.gvr);
    if (cachedComponent || !any) throw unavailable(`a list of ${info.resource}${info.namespace ? ` in ${info.namespace}` : ''} with these selectors`);
    warning = '299 - "tether-edge: the apiserver is unreachable; this list holds only what the node has cached"';
  } else if (!cachedComponent) {
    warning = OFFLINE_WARNING;
  }
  mustBeAllowed(access);
  const rv = listAnswerVersion(stream?.watermark, () => store.streams.watermark(info.gvr));
  // As storage.ValidateListOptions: the token is decoded first, then a resourceVersion beside it refused.
  const from = info.continue ? continueFrom(info.continue, info.namespace) : undefined;
  if (from !== undefined && namesVersion(info.resourceVersion)) {
    throw apiserverBadRequest('specifying resource version is not allowed when using continue');
  }
  if (listTooNew(info, rv)) {
    // The store does not move while offline: no Retry-After (the reflector relists from "" instead).
    throw tooLargeResourceVersion(String(info.resourceVersion), rv);
  }
  // Filter on what the store keeps beside each object; decode an object only when that is not enough.
  const bySelectable = selectableMatcher(info);
  const byObject = requestMatcher(info);
  let rows = store.objects
    .listRaw(info.gvr, info.namespace || undefined)
    .filter((r) => (r.selectable ? bySelectable(r.selectable) : byObject(JSON.parse(r.json) as KubeObject)))
    .map((r) => ({ key: `${r.namespace}/${r.name}`, json: r.json }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  if (from !== undefined) rows = rows.filter((r) => r.key >= from);
  let cont: string | undefined;
  if (info.limit !== undefined && rows.length > info.limit) {
    rows = rows.slice(0, info.limit);
    cont = encodeContinue({ rv, after: rows[rows.length - 1]!.key });
  }
  const listMeta = { resourceVersion: rv, ...(cont ? { continue: cont } : {}) };
  if (wantsTable(accept) && canPrint(info.gvr)) {
    return { status: 200, warning, body: toTable(info.gvr, rows.map((r) => JSON.parse(r.json) as KubeObject), listMeta) };
  }
  const head = JSON.stringify({
    kind: listKind(store, info.gvr, rows.length ? [JSON.parse(rows[0]!.json) as KubeObject] : []),
    apiVersion: apiVersionOf(info.gvr),
    metadata: listMeta,
  });
  return { status: 200, warning, body: undefined, raw: `${head.slice(0, -1)},"items":[${rows.map((r) => r.json).join(',')}]}` };
}
