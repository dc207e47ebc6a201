/**
 * Writer: the writes an edge node keeps making while offline, answered locally.
 *   - Lease renewals (coordination.k8s.io leases, create or update): applied to the cached Lease and
 *     answered with it; not queued (a stale renewal is worth nothing upstream; the kubelet renews
 *     again once the link is back).
 *   - Node and Pod status writes (the status subresource: PATCH in merge, strategic-merge or JSON
 *     patch form, or PUT): applied to the cached object, answered with it, and queued in the outbox
 *     with the object's uid, to be replayed in order on reconnect.
 *   - Events (core/v1 and events.k8s.io): queued in the outbox, bounded, oldest dropped first.
 * Every write answered locally appears as a local event in the streams that hold the object, so
 * offline watches (the kubelet's own) see it. Any other write gets a 503 with Retry-After.
 * Writes that carry their own credentials (a pod's token) are never answered locally: the agent
 * could not replay them as their author.
 */
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import type { ResourceRequestInfo } from '../../shared/kube/index.ts';
import type { EventType, KubeObject, Store } from '../store/index.ts';
import type { EventBus } from './bus.ts';
import { applyPatch, type PatchType } from './patch.ts';
import type { Answer } from './reader.ts';
import { streamMatcher } from './scope.ts';

export interface WriterOptions {
  store: Store;
  bus: EventBus;
  onEventsDropped(n: number): void;
}

export interface OfflineWrite {
  info: ResourceRequestInfo;
  /** Path and query as sent, for the replay. */
  url: string;
  contentType: string;
  body: string;
  hasCredentials: boolean;
}

const LEASES = 'coordination.k8s.io/v1/leases';
const EVENT_GVRS = new Set(['v1/events', 'events.k8s.io/v1/events']);
const STATUS_GVRS = new Set(['v1/nodes', 'v1/pods']);
const PATCH_TYPES: Record<string, PatchType> = { 'strategic-merge-patch': 'strategic', 'merge-patch': 'merge', 'json-patch': 'json' };

const refuse = (what: string) =>
  new TetherError(ErrorCode.UpstreamUnavailable, `tether-edge: offline: ${what} cannot be accepted until the apiserver is reachable; retry later`);

function parse(body: string): unknown {
  try {
    return JSON.parse(body) as unknown;
  } catch {
    throw new TetherError(ErrorCode.BadRequest, 'decode request body: not valid JSON');
  }
}

function asObject(v: unknown, what: string): KubeObject {
  const o = v as KubeObject;
  if (!o || typeof o !== 'object' || !o.metadata || typeof o.metadata.name !== 'string') {
    throw new TetherError(ErrorCode.BadRequest, `decode request body: ${what} needs metadata.name`);
  }
  return o;
}

export function writeOffline(opts: WriterOptions, w: OfflineWrite): Answer {
  const { store, bus } = opts;
  const { info } = w;
  const what = `${info.verb} ${info.resource}${info.subresource ? `/${info.subresource}` : ''}`;
  if (w.hasCredentials) throw refuse(`${what} with the caller's own credentials`);

  const local = (type: EventType, obj: KubeObject) => {
    const r = store.streams.applyLocal(info.gvr, type, obj, (s) => streamMatcher(s)(obj));
    for (const { streamId, event } of r.events) bus.publish(streamId, event);
    return r.object;
  };

  if (info.gvr === LEASES && info.subresource === '' && (info.verb === 'update' || info.verb === 'create')) {
    const lease = asObject(parse(w.body), 'a Lease');
    if (info.verb === 'update' && lease.metadata.name !== info.name) {
      throw new TetherError(ErrorCode.BadRequest, `the name of the object (${lease.metadata.name}) does not match the name on the URL (${info.name})`);
    }
    const cached = store.objects.get(info.gvr, info.namespace, lease.metadata.name);
    const merged: KubeObject = { ...lease, metadata: { ...cached?.metadata, ...lease.metadata, namespace: info.namespace } };
    return { status: cached ? 200 : 201, body: local(cached ? 'MODIFIED' : 'ADDED', merged) };
  }

  if (STATUS_GVRS.has(info.gvr) && info.subresource === 'status' && (info.verb === 'patch' || info.verb === 'update')) {
    const cached = store.objects.get(info.gvr, info.namespace, info.name);
    if (!cached) throw refuse(`${what} of ${info.name}, which is not in the node's cache,`);
    let next: KubeObject;
    if (info.verb === 'patch') {
      const type = info.patchType ? PATCH_TYPES[info.patchType] : undefined;
      if (!type) throw refuse(`a ${info.patchType ?? 'unknown'} patch`);
      next = applyPatch(cached, type, parse(w.body));
      next = { ...next, metadata: { ...cached.metadata, ...next.metadata, name: cached.metadata.name, uid: cached.metadata.uid } };
    } else {
      const sent = asObject(parse(w.body), `a ${info.resource} status update`);
      next = { ...cached, status: sent.status };
    }
    const stored = local('MODIFIED', next);
    store.outbox.enqueue({
      kind: 'status',
      method: info.method,
      path: w.url,
      contentType: w.contentType,
      body: w.body,
      uid: cached.metadata.uid ?? '',
      component: info.component,
    });
    return { status: 200, body: stored };
  }

  if (EVENT_GVRS.has(info.gvr) && (info.verb === 'create' || info.verb === 'patch')) {
    const { dropped } = store.outbox.enqueue({
      kind: 'event',
      method: info.method,
      path: w.url,
      contentType: w.contentType,
      body: w.body,
      component: info.component,
    });
    if (dropped) opts.onEventsDropped(dropped);
    return { status: info.verb === 'create' ? 201 : 200, body: parse(w.body) };
  }

  throw refuse(what);
}
