/**
 * Access: authorization parity offline. An offline answer never shows a local identity more than
 * kube-apiserver showed it online.
 *
 * Contract. Online the apiserver authorizes every request (for the node's identity lent to local
 * clients, the Node authorizer: the kubelet may get the Secrets and ConfigMaps of its pods, but not
 * list them all). What it answered is recorded per identity — the component: a local certificate's
 * name, else the User-Agent's — and per request: a GET of one object, a LIST or WATCH of one scope
 * (resource, namespace, selectors); allowed (200, or 404: authorization passed) or refused (403,
 * with the apiserver's Status). Offline, `decide` answers from that record:
 *   - a LIST or WATCH: allowed when a LIST or WATCH of this identity that the apiserver allowed
 *     covers the request's scope (scope.ts `covers`: the same or a wider namespace, a subset of
 *     its selector terms);
 *   - a GET: allowed when this identity got that very object by a GET, or in the answer of a
 *     LIST/WATCH whose scope holds the stored object (or, for an object not in the store, a scope
 *     without selectors over its namespace: the store then knows it does not exist);
 *   - otherwise, when the apiserver refused this identity that exact request (the latest answer to
 *     it was a 403), the same 403 Status; else 503: not known whether this identity may.
 * Only cached components are recorded (their answers are tapped anyway), and only requests that
 * went upstream as the node (`info.lendsNode`): a bearer token's answers are that token's, kept and
 * checked per token by edge/auth/offline-tokens.ts, and neither recorded nor decided here (a pod
 * borrowing a component's User-Agent must not widen, or with its 403s narrow, that component's
 * offline view). Other clients (an operator's kubectl with a local certificate) have no record of
 * their own: for them, what any cached identity was allowed or refused counts — they reach the
 * apiserver as the node.
 *
 * Cost. The record is kept in memory (loaded from the store once, so an agent restarted offline
 * decides the same) and written in batches (recorder.ts), one row per distinct request and only
 * when its answer changed: the kubelet's repeated GETs of its pods' Secrets and ConfigMaps write
 * nothing after the first. Lists and watches that made a view (the store's `views`) count as
 * allowed only for a component that has no access record at all (a store written before access
 * records existed); views are read when deciding (offline).
 */
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import type { ResourceRequestInfo } from '../../shared/kube/index.ts';
import { statusBody } from '../../shared/kube/status.ts';
import type { AccessRecord, AccessVerb, KubeObject, Store } from '../store/index.ts';
import { covers, scopeOf, streamMatcher } from './scope.ts';

export type AccessDecision =
  | { kind: 'allowed' }
  | { kind: 'refused'; refusal: Record<string, unknown> }
  /** The record cannot tell: the answer is 503, with `message` (unknownError) when the store could answer otherwise. */
  | { kind: 'unknown'; message: string };

/** The 503 of a request the record cannot tell about. */
export function unknownError(d: { message: string }): TetherError {
  return new TetherError(ErrorCode.UpstreamUnavailable, d.message);
}

export interface NodeAccess {
  /**
   * Online: the apiserver answered `status` to this GET, LIST or WATCH (`refusal`: its Status body
   * of a 403). Returns true when this changed the record: `flush` then has something to write.
   */
  answered(info: ResourceRequestInfo, status: number, refusal?: Record<string, unknown>): boolean;
  /** Writes what changed since the last flush, in one transaction. */
  flush(): void;
  /**
   * Offline: may this identity be answered this GET, LIST or WATCH? `object`: the stored object a
   * GET would return. Other verbs are not decided here (always allowed).
   */
  decide(info: ResourceRequestInfo, cachedComponent: boolean, object?: KubeObject): AccessDecision;
}

export interface NodeAccessOptions {
  /** Records kept in memory at most; past it, new allowed GETs are not recorded (offline they are 503). */
  maxRecords?: number;
}

const isAllowed = (status: number) => status === 200 || status === 404;
const VERBS: ReadonlySet<string> = new Set(['get', 'list', 'watch']);

function keyOf(r: Pick<AccessRecord, 'verb' | 'gvr' | 'namespace' | 'name' | 'labelSelector' | 'fieldSelector'>): string {
  return `${r.verb}|${r.gvr}|${r.namespace}|${r.name}|${r.labelSelector}|${r.fieldSelector}`;
}

function recordOf(info: ResourceRequestInfo): Omit<AccessRecord, 'status' | 'refusal'> | undefined {
  if (!VERBS.has(info.verb) || info.subresource !== '') return undefined;
  const verb = info.verb as AccessVerb;
  if (verb === 'get') {
    return { component: info.component, verb, gvr: info.gvr, namespace: info.namespace, name: info.name, labelSelector: '', fieldSelector: '' };
  }
  const s = scopeOf(info);
  return { component: info.component, verb, gvr: s.gvr, namespace: s.namespace, name: '', labelSelector: s.labelSelector, fieldSelector: s.fieldSelector };
}

/** What the request asks for, for a message: "list configmaps in all namespaces". */
function describe(info: ResourceRequestInfo): string {
  if (info.verb === 'get') return `get ${info.resource} ${info.namespace ? `${info.namespace}/` : ''}${info.name}`;
  const s = scopeOf(info);
  const sel = [s.labelSelector && `labels ${s.labelSelector}`, s.fieldSelector && `fields ${s.fieldSelector}`].filter(Boolean).join(', ');
  return `${info.verb} ${info.resource} ${s.namespace ? `in ${s.namespace}` : 'in all namespaces'}${sel ? ` (${sel})` : ''}`;
}

type ScopeGrant = Pick<AccessRecord, 'gvr' | 'namespace' | 'labelSelector' | 'fieldSelector'>;

interface Identity {
  exact: Map<string, AccessRecord>;
  /** Allowed LISTs and WATCHes. */
  scopes: Map<string, AccessRecord>;
}

export function createNodeAccess(store: Store, opts: NodeAccessOptions = {}): NodeAccess {
  const max = opts.maxRecords ?? 100_000;
  const ids = new Map<string, Identity>();
  let size = 0;
  let loaded = false;
  let pending = new Map<string, AccessRecord>();

  const identity = (component: string): Identity => {
    let id = ids.get(component);
    if (!id) {
      id = { exact: new Map(), scopes: new Map() };
      ids.set(component, id);
    }
    return id;
  };
  const remember = (r: AccessRecord) => {
    const id = identity(r.component);
    const key = keyOf(r);
    if (!id.exact.has(key)) size++;
    id.exact.set(key, r);
    if (r.verb !== 'get' && isAllowed(r.status)) id.scopes.set(key, r);
    else id.scopes.delete(key);
  };
  const load = () => {
    if (loaded) return;
    loaded = true;
    for (const r of store.access.all()) remember(r);
  };
  /**
   * The views of cached components (scopes they listed or watched, the apiserver answering 200),
   * read when deciding: also those an agent recorded before access records existed.
   */
  const viewsNow = (): Map<string, ScopeGrant[]> => {
    const byId = new Map(store.streams.all().map((s) => [s.id, s]));
    const out = new Map<string, ScopeGrant[]>();
    for (const v of store.streams.views()) {
      const s = byId.get(v.streamId);
      if (!s) continue;
      let list = out.get(v.component);
      if (!list) out.set(v.component, (list = []));
      list.push(s);
    }
    return out;
  };

  /** The decision of one identity's record, or undefined when it does not know. */
  const decideFor = (id: Identity | undefined, views: ScopeGrant[] | undefined, info: ResourceRequestInfo, key: string, object: KubeObject | undefined): AccessDecision | undefined => {
    if (!id && !views) return undefined;
    const exact = id?.exact.get(key);
    // The store's views (which lists a component made, bearer tokens' included) stand in only for a
    // component with no access record of its own yet: a store from before access records existed.
    const scopes: ScopeGrant[] = id ? [...id.scopes.values()] : [...(views ?? [])];
    if (exact && isAllowed(exact.status)) return { kind: 'allowed' };
    if (info.verb === 'get') {
      for (const s of scopes) {
        if (s.gvr !== info.gvr || (s.namespace !== '' && s.namespace !== info.namespace)) continue;
        if (object ? streamMatcher(s)(object) : s.labelSelector === '' && s.fieldSelector === '') return { kind: 'allowed' };
      }
    } else {
      const scope = scopeOf(info);
      for (const s of scopes) if (covers(s, scope)) return { kind: 'allowed' };
    }
    if (exact?.status === 403) return { kind: 'refused', refusal: exact.refusal ?? { ...statusBody(403, 'Forbidden', `${describe(info)} is forbidden`) } };
    return undefined;
  };

  return {
    answered(info, status, refusal) {
      // A bearer token's answers are the token's (edge/auth/offline-tokens.ts keeps them per token):
      // recorded here they would let any pod that borrows a component's User-Agent widen, or with its
      // 403s narrow, what that component is answered offline.
      if (info.lendsNode === false) return false;
      if (!isAllowed(status) && status !== 403) return false;
      const base = recordOf(info);
      if (!base) return false;
      load();
      const r: AccessRecord = { ...base, status, ...(status === 403 && refusal ? { refusal } : {}) };
      const key = keyOf(r);
      const had = ids.get(r.component)?.exact.get(key);
      if (had && isAllowed(had.status) === isAllowed(status)) return false;
      if (!had && size >= max) return false;
      remember(r);
      pending.set(`${r.component}|${key}`, r);
      return true;
    },
    flush() {
      if (!pending.size) return;
      const batch = [...pending.values()];
      pending = new Map();
      store.access.put(batch);
    },
    decide(info, cachedComponent, object) {
      if (info.lendsNode === false) return { kind: 'allowed' }; // decided per token before the cache is asked
      const base = recordOf(info);
      if (!base) return { kind: 'allowed' };
      load();
      const key = keyOf(base);
      const views = viewsNow();
      const own = decideFor(ids.get(info.component), views.get(info.component), info, key, object);
      if (own) return own;
      if (!cachedComponent) {
        let refused: AccessDecision | undefined;
        for (const component of new Set([...ids.keys(), ...views.keys()])) {
          if (component === info.component) continue;
          const d = decideFor(ids.get(component), views.get(component), info, key, object);
          if (d?.kind === 'allowed') return d;
          refused ??= d;
        }
        if (refused) return refused;
      }
      const who = info.component || 'this client';
      return {
        kind: 'unknown',
        message: `tether-edge: the node is offline; not known whether ${who} may ${describe(info)}: the apiserver was not asked that for ${who} while online, so the node's cache does not answer it until the apiserver is reachable again`,
      };
    },
  };
}

const perStore = new WeakMap<Store, NodeAccess>();

/** The one access record of a store (the recorder writes it, the reader decides with it). */
export function accessOf(store: Store): NodeAccess {
  let a = perStore.get(store);
  if (!a) {
    a = createNodeAccess(store);
    perStore.set(store, a);
  }
  return a;
}
