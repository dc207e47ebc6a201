/**
 * The query parameters of a list, watch or deletecollection, decoded as the apiserver's
 * parameter codec decodes metav1.ListOptions and checked as ValidateListOptions checks them
 * (with the WatchList feature on, its v1.34 default). The apiserver's defaulting (a watch from
 * resourceVersion ""/"0" becoming sendInitialEvents=true) is not applied: the values are the
 * client's own, which is what a proxy forwards.
 */
import { apiserverBadRequest } from './_bad-request.ts';
import { invalidListOptions } from './api-status.ts';
import { everyField, parseFieldSelector, type FieldSelector } from './field-selector.ts';
import { everyLabel, parseLabelSelector, type LabelSelector } from './label-selector.ts';

export type ResourceVersionMatch = 'NotOlderThan' | 'Exact';

export interface ListOptions {
  rawLabelSelector: string;
  labelSelector: LabelSelector;
  rawFieldSelector: string;
  /** Syntax only; the per-resource conversion (fields.ts) is the caller's next step. */
  fieldSelector: FieldSelector;
  /** The `watch` parameter itself (a /watch/ path prefix also makes a watch). */
  watchParam: boolean;
  allowWatchBookmarks: boolean;
  resourceVersion: string | undefined;
  resourceVersionMatch: ResourceVersionMatch | undefined;
  timeoutSeconds: number | undefined;
  limit: number | undefined;
  continue: string | undefined;
  sendInitialEvents: boolean | undefined;
}

type Query = ReadonlyMap<string, readonly string[]>;

const first = (q: Query, key: string): string | undefined => q.get(key)?.[0];

/** Go's bool parameter: absent is false; "0" and "false" (any case) are false; anything else, even '', true. */
function queryBool(q: Query, key: string): boolean | undefined {
  const v = first(q, key);
  if (v === undefined) return undefined;
  return !(v === '0' || v.toLowerCase() === 'false');
}

const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

/**
 * strconv.ParseInt(v, 10, 64), with the apiserver's own messages. Every int64 is accepted; a value
 * past what a JS number holds exactly is clamped to Number.MAX_SAFE_INTEGER (for `limit` and
 * `timeoutSeconds` that means the same: no page, no timeout that will ever be reached).
 */
function queryInt(q: Query, key: string): number | undefined {
  const v = first(q, key);
  if (v === undefined) return undefined;
  if (!/^[+-]?[0-9]+$/.test(v)) throw apiserverBadRequest(`strconv.ParseInt: parsing ${JSON.stringify(v)}: invalid syntax`);
  const n = BigInt(v);
  if (n > INT64_MAX || n < INT64_MIN) throw apiserverBadRequest(`strconv.ParseInt: parsing ${JSON.stringify(v)}: value out of range`);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) return Number.MAX_SAFE_INTEGER;
  if (n < BigInt(Number.MIN_SAFE_INTEGER)) return Number.MIN_SAFE_INTEGER;
  return Number(n);
}

export function decodeListOptions(q: Query): ListOptions {
  const rawLabelSelector = first(q, 'labelSelector') ?? '';
  const rawFieldSelector = first(q, 'fieldSelector') ?? '';
  const match = first(q, 'resourceVersionMatch') ?? '';
  const limit = queryInt(q, 'limit');
  const timeoutSeconds = queryInt(q, 'timeoutSeconds');
  const opts: ListOptions = {
    rawLabelSelector,
    labelSelector: rawLabelSelector === '' ? everyLabel : parseLabelSelector(rawLabelSelector),
    rawFieldSelector,
    fieldSelector: rawFieldSelector === '' ? everyField : parseFieldSelector(rawFieldSelector),
    watchParam: queryBool(q, 'watch') ?? false,
    allowWatchBookmarks: queryBool(q, 'allowWatchBookmarks') ?? false,
    resourceVersion: first(q, 'resourceVersion') || undefined,
    resourceVersionMatch: match === 'NotOlderThan' || match === 'Exact' ? match : undefined,
    // The watch handler treats 0 as unset (its own 30–60 min default).
    timeoutSeconds: timeoutSeconds === 0 ? undefined : timeoutSeconds,
    // The apiserver pages only for limit > 0.
    limit: limit !== undefined && limit > 0 ? limit : undefined,
    continue: first(q, 'continue') || undefined,
    sendInitialEvents: queryBool(q, 'sendInitialEvents'),
  };
  const errs = validate(opts, match);
  if (errs.length) throw invalidListOptions(errs);
  return opts;
}

/** ValidateListOptions; `match` is the raw resourceVersionMatch, which may be unsupported. */
type Problem = Parameters<typeof invalidListOptions>[0][number];
function validate(o: ListOptions, match: string): Problem[] {
  const errs: Problem[] = [];
  const forbidden = (field: string, detail: string) => errs.push({ field, type: 'FieldValueForbidden', detail });
  const unsupported = (supported: string[]) =>
    errs.push({
      field: 'resourceVersionMatch',
      type: 'FieldValueNotSupported',
      detail: `${JSON.stringify(match)}: supported values: ${supported.map((s) => JSON.stringify(s)).join(', ')}`,
    });
  if (o.watchParam) {
    if (o.sendInitialEvents !== undefined && match !== 'NotOlderThan') {
      forbidden('resourceVersionMatch', 'sendInitialEvents requires setting resourceVersionMatch to NotOlderThan');
    }
    if (match !== '') {
      if (o.sendInitialEvents === undefined) {
        forbidden('resourceVersionMatch', 'resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided');
      }
      if (match !== 'NotOlderThan') unsupported(['NotOlderThan']);
      if (o.continue) forbidden('resourceVersionMatch', 'resourceVersionMatch is forbidden when continue is provided');
    }
    return errs;
  }
  if (match !== '') {
    if (!o.resourceVersion) {
      forbidden('resourceVersionMatch', 'resourceVersionMatch is forbidden unless resourceVersion is provided');
    }
    if (o.continue) forbidden('resourceVersionMatch', 'resourceVersionMatch is forbidden when continue is provided');
    if (match !== 'Exact' && match !== 'NotOlderThan') unsupported(['Exact', 'NotOlderThan', '']);
    if (match === 'Exact' && o.resourceVersion === '0') {
      forbidden('resourceVersionMatch', 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"');
    }
  }
  if (o.sendInitialEvents !== undefined) forbidden('sendInitialEvents', 'sendInitialEvents is forbidden for list');
  return errs;
}
