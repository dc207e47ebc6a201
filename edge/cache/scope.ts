/**
 * Scopes: which part of a resource a list or watch covers, and which cached stream can answer
 * a request offline.
 *
 * A stream covers a request when it is of the same resource, its namespace is the request's (or
 * it spans all namespaces), and every requirement of the stream's selectors is also required by
 * the request: the request then asks for a subset of what the stream holds, and the answer is
 * the stream's objects filtered by the request's own selectors.
 */
import {
  type FieldSelector,
  type LabelSelector,
  type ResourceRequestInfo,
  matchesFieldSelector,
  parseFieldSelector,
  parseLabelSelector,
} from '../../shared/kube/index.ts';
import type { KubeObject, Scope } from '../store/index.ts';
import type { Selectable, StreamRow } from '../store/schema.ts';

export function scopeOf(info: ResourceRequestInfo): Scope {
  return {
    gvr: info.gvr,
    namespace: info.namespace,
    labelSelector: info.labelSelector.toString(),
    fieldSelector: info.fieldSelector.toString(),
  };
}

export type Matcher = (o: KubeObject) => boolean;

function matcherOf(gvr: string, namespace: string, labels: LabelSelector, fields: FieldSelector): Matcher {
  return (o) =>
    (namespace === '' || (o.metadata.namespace ?? '') === namespace) &&
    (labels.empty || labels.matches(o.metadata.labels as Record<string, string> | undefined)) &&
    matchesFieldSelector(fields, gvr, o);
}

/** The objects a request selects. */
export function requestMatcher(info: ResourceRequestInfo): Matcher {
  return matcherOf(info.gvr, info.namespace, info.labelSelector, info.fieldSelector);
}

/** The same test on what the store keeps beside each object (no decoding of the object itself). */
export function selectableMatcher(info: ResourceRequestInfo): (s: Selectable) => boolean {
  const { labelSelector: labels, fieldSelector: fields } = info;
  return (s) => (labels.empty || labels.matches(s.labels)) && (fields.empty || fields.matches((f) => s.fields[f] ?? ''));
}

const parsedStreams = new Map<string, { labels: LabelSelector; fields: FieldSelector }>();
function parsedSelectors(s: Pick<StreamRow, 'gvr' | 'labelSelector' | 'fieldSelector'>) {
  const key = `${s.gvr}|${s.labelSelector}|${s.fieldSelector}`;
  let p = parsedStreams.get(key);
  if (!p) {
    // Stored selectors are the canonical, already converted forms this agent wrote: parse only.
    p = { labels: parseLabelSelector(s.labelSelector), fields: parseFieldSelector(s.fieldSelector) };
    if (parsedStreams.size > 1000) parsedStreams.clear();
    parsedStreams.set(key, p);
  }
  return p;
}

/** The objects a stream holds. */
export function streamMatcher(s: Pick<StreamRow, 'gvr' | 'namespace' | 'labelSelector' | 'fieldSelector'>): Matcher {
  const { labels, fields } = parsedSelectors(s);
  return matcherOf(s.gvr, s.namespace, labels, fields);
}

function terms(text: string): Set<string> {
  return new Set(text === '' ? [] : text.split(','));
}

/** True when the stream holds everything the request asks for. */
export function covers(s: Pick<StreamRow, 'gvr' | 'namespace' | 'labelSelector' | 'fieldSelector'>, scope: Scope): boolean {
  if (s.gvr !== scope.gvr) return false;
  if (s.namespace !== '' && s.namespace !== scope.namespace) return false;
  // Canonical selectors are comma-joined sorted terms; a term of the stream must be a term of the request.
  // (Label terms such as "a in (x,y)" contain commas; compare those selectors whole.)
  const sameOrSubset = (stream: string, req: string) => {
    if (stream === '' || stream === req) return true;
    if (stream.includes('(') || req.includes('(')) return false;
    const r = terms(req);
    return [...terms(stream)].every((t) => r.has(t));
  };
  return sameOrSubset(s.labelSelector, scope.labelSelector) && sameOrSubset(s.fieldSelector, scope.fieldSelector);
}

/** The best listed stream for a request: its own scope first, else the narrowest covering one. */
export function coveringStream(streams: StreamRow[], scope: Scope): StreamRow | undefined {
  const candidates = streams.filter((s) => s.listed && covers(s, scope));
  const exact = candidates.find(
    (s) => s.namespace === scope.namespace && s.labelSelector === scope.labelSelector && s.fieldSelector === scope.fieldSelector,
  );
  if (exact) return exact;
  const weight = (s: StreamRow) => (s.namespace ? 4 : 0) + (s.labelSelector ? 2 : 0) + (s.fieldSelector ? 1 : 0);
  return candidates.sort((a, b) => weight(b) - weight(a) || b.watermark - a.watermark)[0];
}
