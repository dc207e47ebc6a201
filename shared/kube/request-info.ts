/**
 * What a Kubernetes API request asks for, read from its method, URL and headers the way
 * kube-apiserver's RequestInfoFactory (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go)
 * and its list/watch handler read them. Pure: no I/O, no HTTP framework types.
 *
 * Path rules (segments of the decoded path, leading/trailing '/' ignored):
 *   /api/{version}/...  and  /apis/{group}/{version}/...  are resource requests when at least
 *   one segment follows the version; then an optional verb prefix (`watch/`, `proxy/`), an
 *   optional `namespaces/{ns}/`, and `{resource}[/{name}[/{subresource}...]]`.
 *   `/api/v1/namespaces/{ns}` is the Namespace object itself (resource "namespaces", name ns),
 *   as are its `status` and `finalize` subresources.
 * Verb: the path prefix if any, else by method (POST create, GET/HEAD get, PUT update, PATCH
 *   patch, DELETE delete); a GET without a name is a list, or a watch when `watch` is set; a
 *   DELETE without a name is a deletecollection. Subresources keep the method's verb: an exec
 *   over GET (websocket) is `get`, over POST (SPDY) is `create`.
 * A list or watch whose fieldSelector requires metadata.name=<valid name> reports that name, as
 * the apiserver does for authorization. A named watch (/watch/.../{name}) selects that name.
 *
 * Divergence from the apiserver, on purpose: `namespace` is '' for the Namespace object
 * (/api/v1/namespaces/{name}), which is cluster-scoped; the apiserver reports its name there.
 *
 * Every problem is a TetherError(E_BAD_REQUEST) whose message names the step that failed, or is
 * the apiserver's own message where a client would see that one online.
 */
import { apiserverBadRequest, badRequest } from './_bad-request.ts';
import { decodeListOptions, type ListOptions, type ResourceVersionMatch } from './_list-options.ts';
import { apiStatusError } from './api-status.ts';
import { pathSegmentNameErrors } from './_names.ts';
import { decodeTarget } from './_url.ts';
import { componentOf } from './component.ts';
import { createFieldSelector, everyField, type FieldSelector } from './field-selector.ts';
import { convertFieldSelector } from './fields.ts';
import { everyLabel, type LabelSelector } from './label-selector.ts';

export type { ResourceVersionMatch } from './_list-options.ts';

/** The kube verbs of resource requests (exec, attach, portforward report get or create). */
export type ResourceVerb =
  | 'get'
  | 'list'
  | 'watch'
  | 'create'
  | 'update'
  | 'patch'
  | 'delete'
  | 'deletecollection'
  | 'proxy';

/** From the Content-Type of a PATCH. */
export type PatchType = 'json-patch' | 'merge-patch' | 'strategic-merge-patch' | 'apply-patch' | 'apply-patch-cbor';

export type RequestHeaders = Headers | Readonly<Record<string, string | undefined>>;

interface RequestInfoFields {
  /** The decoded URL path. */
  path: string;
  /** The HTTP method, upper-cased. */
  method: string;
  /** User-Agent up to the first '/', lower-cased ('' when absent): the client's cache view. */
  component: string;
  /**
   * Set by the edge proxy once it knows who asks: true when the request goes upstream as the node (a
   * local client certificate, or plain-HTTP lending), false for a bearer token's own request. Unset
   * elsewhere.
   */
  lendsNode?: boolean;
  /** 'api' (core group), 'apis' (named groups), '' otherwise. Set for discovery paths too. */
  apiPrefix: 'api' | 'apis' | '';
  /** '' for the core group. Set for /apis/{group}[/{version}] discovery too. */
  apiGroup: string;
  /** Set for /api/{version} and /apis/{group}/{version} discovery too. */
  apiVersion: string;
  /** '' for cluster-scoped requests, lists across namespaces and the Namespace object itself. */
  namespace: string;
  /** Plural resource name ("pods"); '' for non-resource requests. */
  resource: string;
  /** "status", "exec", "log", "binding"…; '' when none. Further path segments stay in `parts`. */
  subresource: string;
  /** The object's name; for list/watch also the name a metadata.name field selector requires. */
  name: string;
  /** Path segments from the resource on: [resource, name?, subresource?, …]. */
  parts: readonly string[];
  /** "v1/pods", "apps/v1/deployments"; '' for non-resource requests. No subresource. */
  gvr: string;
  /** The labelSelector parameter as sent ('' when absent or not a list/watch/deletecollection). */
  rawLabelSelector: string;
  /** Parsed; matches everything when absent. Only list, watch and deletecollection read it. */
  labelSelector: LabelSelector;
  /** The fieldSelector parameter as sent. */
  rawFieldSelector: string;
  /**
   * Parsed and converted for the resource (renamed labels such as pods' spec.host are already
   * spec.nodeName; use with fields.ts `matchesFieldSelector`). A named watch adds metadata.name.
   */
  fieldSelector: FieldSelector;
  /** True for a watch: `?watch=` anything but 0/false on a collection GET, or a /watch/ path. */
  watch: boolean;
  allowWatchBookmarks: boolean;
  /** For get, list, watch, deletecollection; undefined when absent or empty. */
  resourceVersion: string | undefined;
  resourceVersionMatch: ResourceVersionMatch | undefined;
  timeoutSeconds: number | undefined;
  /** Page size; undefined when absent or ≤ 0 (the apiserver does not page then). */
  limit: number | undefined;
  continue: string | undefined;
  /** undefined when absent (it is a three-state option). */
  sendInitialEvents: boolean | undefined;
  /** For PATCH with a Content-Type the apiserver accepts; undefined otherwise (it answers 415). */
  patchType: PatchType | undefined;
  /** The apiserver's long-running check: watch, proxy, and attach/exec/log/portforward/proxy. */
  longRunning: boolean;
  /** /version, /api, /api/{v}, /apis, /apis/{g}, /apis/{g}/{v}, /openapi/v2, /openapi/v3[/…]. */
  discovery: boolean;
}

export interface ResourceRequestInfo extends RequestInfoFields {
  isResourceRequest: true;
  verb: ResourceVerb;
  discovery: false;
}

export interface NonResourceRequestInfo extends RequestInfoFields {
  isResourceRequest: false;
  /** The method, lower-cased. */
  verb: string;
}

export type RequestInfo = ResourceRequestInfo | NonResourceRequestInfo;

const patchTypes: Readonly<Record<string, PatchType>> = {
  'application/json-patch+json': 'json-patch',
  'application/merge-patch+json': 'merge-patch',
  'application/strategic-merge-patch+json': 'strategic-merge-patch',
  'application/apply-patch+yaml': 'apply-patch',
  'application/apply-patch+cbor': 'apply-patch-cbor',
};
const methodVerbs: Readonly<Record<string, ResourceVerb>> = {
  POST: 'create',
  GET: 'get',
  HEAD: 'get',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};
const namespaceSubresources = new Set(['status', 'finalize']);
const longRunningSubresources = new Set(['attach', 'exec', 'proxy', 'log', 'portforward']);

export function parseRequest(method: string, url: URL | string, headers?: RequestHeaders): RequestInfo {
  const { path, query } = decodeTarget(url);
  const m = method.toUpperCase();
  const trimmed = path.replace(/^\/+|\/+$/g, '');
  const segs = trimmed === '' ? [] : trimmed.split('/');
  const base = blank(path, m, componentOf(header(headers, 'user-agent')));

  // Resource requests: /api/{v}/{…} or /apis/{g}/{v}/{…}.
  const prefix = segs[0];
  const grouped = prefix === 'apis';
  const rest = segs.slice(grouped ? 3 : 2);
  if ((prefix !== 'api' && prefix !== 'apis') || rest.length === 0) return nonResource(base, segs);

  const apiGroup = grouped ? (segs[1] as string) : '';
  const apiVersion = segs[grouped ? 2 : 1] as string;
  let verb: ResourceVerb | undefined;
  let viaPrefix = false;
  if (rest[0] === 'watch' || rest[0] === 'proxy') {
    if (rest.length < 2) throw badRequest('parse path', `unable to determine kind and namespace from ${JSON.stringify(path)}`);
    verb = rest.shift() as ResourceVerb;
    viaPrefix = true;
  } else {
    verb = methodVerbs[m];
    if (!verb) throw badRequest('parse request', `method ${m} is not supported on ${JSON.stringify(path)}`);
  }
  let namespace = '';
  let parts = rest;
  if (rest[0] === 'namespaces' && rest.length > 1) {
    namespace = rest[1] as string;
    if (rest.length > 2 && !namespaceSubresources.has(rest[2] as string)) parts = rest.slice(2);
  }
  const resource = parts[0] ?? '';
  if (resource === 'namespaces' && apiGroup === '') namespace = '';
  let name = parts[1] ?? '';
  const subresource = parts.length >= 3 && verb !== 'proxy' ? (parts[2] as string) : '';
  // Empty group, version, resource, name or subresource segments get 404 or 400 upstream. An
  // empty namespace ("/namespaces//pods") is accepted there as all namespaces, and here too.
  const required = [grouped ? apiGroup : 'core', apiVersion, resource, ...parts.slice(1, verb === 'proxy' ? 2 : 3)];
  if (required.includes('')) throw badRequest('parse path', `empty segment in ${JSON.stringify(path)}`);

  const info: ResourceRequestInfo = {
    ...base,
    isResourceRequest: true,
    verb,
    apiPrefix: grouped ? 'apis' : 'api',
    apiGroup,
    apiVersion,
    namespace,
    resource,
    subresource,
    name,
    parts,
    gvr: `${apiGroup ? `${apiGroup}/` : ''}${apiVersion}/${resource}`,
    discovery: false,
  };

  if (verb === 'get' && name === '') {
    const opts = decodeListOptions(query);
    verb = opts.watchParam ? 'watch' : 'list';
    const fieldSelector = convertFieldSelector(info.gvr, opts.fieldSelector);
    // As the apiserver does for authorization: a selected name that could be a path segment.
    const selected = fieldSelector.requiresExactMatch('metadata.name');
    if (selected !== undefined && pathSegmentNameErrors(selected).length === 0) name = selected;
    Object.assign(info, listFields(opts), { name, fieldSelector });
  } else if (verb === 'watch' || (verb === 'delete' && name === '')) {
    if (verb === 'delete') verb = 'deletecollection';
    const opts = decodeListOptions(query);
    let fieldSelector = convertFieldSelector(info.gvr, opts.fieldSelector);
    if (name !== '') {
      // A named watch (/watch/…/{name}) selects that name; a selector must agree with it.
      if (fieldSelector.empty) {
        fieldSelector = createFieldSelector([{ field: 'metadata.name', operator: '=', value: name }]);
      } else if (fieldSelector.requiresExactMatch('metadata.name') !== name) {
        throw apiserverBadRequest("fieldSelector metadata.name doesn't match requested name");
      }
    }
    Object.assign(info, listFields(opts), { fieldSelector });
  } else if (verb === 'get') {
    info.resourceVersion = query.get('resourceVersion')?.[0] || undefined;
  }
  if (verb === 'get' || verb === 'list' || verb === 'watch') checkResourceVersion(verb, info.resourceVersion);
  info.verb = verb;
  info.watch = verb === 'watch';
  if (m === 'PATCH' && !viaPrefix) {
    const ct = header(headers, 'content-type') ?? '';
    const semi = ct.indexOf(';');
    const type = semi > 0 ? ct.slice(0, semi) : ct;
    info.patchType = Object.hasOwn(patchTypes, type) ? patchTypes[type] : undefined;
  }
  info.longRunning = verb === 'watch' || verb === 'proxy' || longRunningSubresources.has(subresource);
  return info;
}

/**
 * A resourceVersion the apiserver's versioner cannot parse (strconv.ParseUint), answered as it
 * answers: a LIST gets 400 BadRequest from storage's ValidateListOptions; a GET and a WATCH get the
 * versioner's error as a 500 without a reason.
 */
function checkResourceVersion(verb: 'get' | 'list' | 'watch', rv: string | undefined): void {
  if (rv === undefined || /^[0-9]+$/.test(rv) && BigInt(rv) < 2n ** 64n) return;
  const why = /^[0-9]+$/.test(rv) ? 'value out of range' : 'invalid syntax';
  const message = `resourceVersion: Invalid value: ${JSON.stringify(rv)}: strconv.ParseUint: parsing ${JSON.stringify(rv)}: ${why}`;
  if (verb === 'list') throw apiserverBadRequest(`invalid resource version: ${message}`);
  throw apiStatusError({ code: 500, reason: '', message });
}

/** The list options a RequestInfo carries (the field selector is converted by the caller). */
function listFields(o: ListOptions): Partial<RequestInfoFields> {
  return {
    rawLabelSelector: o.rawLabelSelector,
    labelSelector: o.labelSelector,
    rawFieldSelector: o.rawFieldSelector,
    allowWatchBookmarks: o.allowWatchBookmarks,
    resourceVersion: o.resourceVersion,
    resourceVersionMatch: o.resourceVersionMatch,
    timeoutSeconds: o.timeoutSeconds,
    limit: o.limit,
    continue: o.continue,
    sendInitialEvents: o.sendInitialEvents,
  };
}

function nonResource(base: RequestInfoFields, segs: string[]): NonResourceRequestInfo {
  const info: NonResourceRequestInfo = { ...base, isResourceRequest: false, verb: base.method.toLowerCase() };
  const [a, b, c] = segs;
  if (a === 'api' && segs.length <= 2) {
    Object.assign(info, { apiPrefix: 'api', apiVersion: b ?? '', discovery: true });
  } else if (a === 'apis' && segs.length <= 3) {
    Object.assign(info, { apiPrefix: 'apis', apiGroup: b ?? '', apiVersion: c ?? '', discovery: true });
  } else {
    info.discovery =
      (a === 'version' && segs.length === 1) || (a === 'openapi' && (b === 'v3' || (b === 'v2' && segs.length === 2)));
  }
  info.longRunning = base.path.startsWith('/debug/pprof/');
  return info;
}

function blank(path: string, method: string, component: string): RequestInfoFields {
  return {
    path,
    method,
    component,
    apiPrefix: '',
    apiGroup: '',
    apiVersion: '',
    namespace: '',
    resource: '',
    subresource: '',
    name: '',
    parts: [],
    gvr: '',
    rawLabelSelector: '',
    labelSelector: everyLabel,
    rawFieldSelector: '',
    fieldSelector: everyField,
    watch: false,
    allowWatchBookmarks: false,
    resourceVersion: undefined,
    resourceVersionMatch: undefined,
    timeoutSeconds: undefined,
    limit: undefined,
    continue: undefined,
    sendInitialEvents: undefined,
    patchType: undefined,
    longRunning: false,
    discovery: false,
  };
}

function header(headers: RequestHeaders | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return v;
  return undefined;
}
