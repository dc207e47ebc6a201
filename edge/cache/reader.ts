/**
 * Reader: GET and LIST answered from the store while offline, with the request's label and field
 * selectors evaluated locally and limit/continue paging.
 *
 * An answer is given only when the store can be trusted for it: a LIST needs a listed stream that
 * covers the request (scope.ts); a GET needs the object, or a listed stream proving it does not
 * exist. Otherwise the answer is 503 with Retry-After, never an empty list, so a kubelet whose pod
 * list is not cached keeps its pods. Clients that are not cached components (kubectl) get the best
 * answer the store has, with a Warning header saying it comes from the node's cache.
 */
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import type { ResourceRequestInfo } from '../../shared/kube/index.ts';
import type { KubeObject, Store } from '../store/index.ts';
import { canPrint, toTable, wantsTable } from './table.ts';
import { coveringStream, requestMatcher, scopeOf, selectableMatcher } from './scope.ts';

export interface Answer {
  status: number;
  body: unknown;
  /** The body already serialized (large lists are assembled from stored JSON text); wins over `body`. */
  raw?: string;
  warning?: string;
}

export const OFFLINE_WARNING = '299 - "tether-edge: the apiserver is unreachable; answered from the node\'s cache"';

const unavailable = (what: string) =>
  new TetherError(ErrorCode.UpstreamUnavailable, `tether-edge: offline, and ${what} is not in the node's cache; retry when the apiserver is reachable`);

interface ContinueToken {
  rv: string;
  after: string;
}

function encodeContinue(t: ContinueToken): string {
  return Buffer.from(JSON.stringify({ tether: 1, ...t })).toString('base64url');
}

function decodeContinue(s: string): ContinueToken {
  try {
    const t = JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as Partial<ContinueToken> & { tether?: number };
    if (t.tether === 1 && typeof t.rv === 'string' && typeof t.after === 'string') return { rv: t.rv, after: t.after };
  } catch {
    // fall through
  }
  throw new TetherError(ErrorCode.BadRequest, 'continue parameter is invalid: it was not issued by this agent while offline; start the list again');
}

const keyOf = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;

export function listKind(store: Store, gvr: string, items: KubeObject[]): string {
  const stored = store.documents.get(`listkind|${gvr}`)?.body;
  if (stored) return stored;
  const kind = items.find((o) => o.kind)?.kind;
  return kind ? `${kind}List` : 'List';
}

export function apiVersionOf(gvr: string): string {
  const parts = gvr.split('/');
  return parts.length === 3 ? `${parts[0]}/${parts[1]}` : (parts[0] ?? 'v1');
}

export function readGet(store: Store, info: ResourceRequestInfo, cachedComponent: boolean): Answer {
  const obj = store.objects.get(info.gvr, info.namespace, info.name);
  if (obj) return { status: 200, body: obj, warning: cachedComponent ? undefined : OFFLINE_WARNING };
  // Absent: authoritative only when a listed stream without selectors holds the whole namespace (or all).
  const proof = store.streams
    .all()
    .find((s) => s.listed && s.gvr === info.gvr && (s.namespace === '' || s.namespace === info.namespace) && !s.labelSelector && !s.fieldSelector);
  if (proof) {
    return {
      status: 404,
      body: {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: `${info.resource} "${info.name}" not found`,
        reason: 'NotFound',
        details: { name: info.name, group: info.apiGroup, kind: info.resource },
        code: 404,
      },
    };
  }
  throw unavailable(`${info.resource} ${info.namespace ? `${info.namespace}/` : ''}${info.name}`);
}

export function readList(store: Store, info: ResourceRequestInfo, cachedComponent: boolean, accept?: string): Answer {
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
  const rv = String(stream?.watermark ?? store.streams.watermark(info.gvr));
  if (info.resourceVersion && info.resourceVersion !== '0' && info.resourceVersionMatch !== 'Exact' && Number(info.resourceVersion) > Number(rv)) {
    throw new TetherError(ErrorCode.UpstreamUnavailable, `Too large resource version: ${info.resourceVersion}, current: ${rv}`);
  }
  // Filter on what the store keeps beside each object; decode an object only when that is not enough.
  const bySelectable = selectableMatcher(info);
  const byObject = requestMatcher(info);
  let rows = store.objects
    .listRaw(info.gvr, info.namespace || undefined)
    .filter((r) => (r.selectable ? bySelectable(r.selectable) : byObject(JSON.parse(r.json) as KubeObject)))
    .map((r) => ({ key: `${r.namespace}/${r.name}`, json: r.json }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  if (info.continue) {
    const t = decodeContinue(info.continue);
    rows = rows.filter((r) => r.key > t.after);
  }
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
