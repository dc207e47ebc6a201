/**
 * Writer: the writes an edge node keeps making while offline, answered locally.
 *   - Lease renewals (coordination.k8s.io leases, create or update): applied to the cached Lease and
 *     answered with it; not queued (a stale renewal is worth nothing upstream; the kubelet renews
 *     again once the link is back).
 *   - Node and Pod status writes (the status subresource: PATCH in merge, strategic-merge or JSON
 *     patch form, or PUT): applied to the cached object, answered with it, and queued in the outbox
 *     with the object's uid, to be replayed on reconnect. One entry waits per object: what the
 *     offline writes changed in `status`, as one strategic-merge patch (status-delta.ts), so the
 *     replay sends only the newest status and never older ones after it.
 *   - Events (core/v1 and events.k8s.io): queued in the outbox, bounded, oldest dropped first.
 * The local change and its outbox entry are one transaction, committed with synchronous=FULL
 * before the client is answered: an acknowledged write survives a crash or a power cut, and a
 * failure between the two leaves neither.
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
import { composeDelta, isEmptyDelta, statusDelta, type StatusDelta } from './status-delta.ts';
import type { CachedAnswer } from './contract.ts';
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
export const COALESCED_CONTENT_TYPE = 'application/strategic-merge-patch+json';

/** The status path of a Node or Pod, the outbox's address of its status writes. */
export function statusPath(info: Pick<ResourceRequestInfo, 'gvr' | 'namespace' | 'name'>): string {
  return info.gvr === 'v1/nodes' ? `/api/v1/nodes/${info.name}/status` : `/api/v1/namespaces/${info.namespace}/pods/${info.name}/status`;
}

export const isStatusWrite = (info: ResourceRequestInfo): boolean =>
  STATUS_GVRS.has(info.gvr) && info.subresource === 'status' && (info.verb === 'patch' || info.verb === 'update') && info.name !== '';

/** A waiting entry the writer made (one strategic-merge patch of status), which a newer write may absorb. */
export function coalesced(row: { method: string; contentType: string; body: string }): StatusDelta | undefined {
  if (row.method !== 'PATCH' || row.contentType !== COALESCED_CONTENT_TYPE) return undefined;
  try {
    const b = JSON.parse(row.body) as { status?: unknown };
    return b && typeof b === 'object' && b.status && typeof b.status === 'object' && !Array.isArray(b.status) ? (b.status as StatusDelta) : undefined;
  } catch {
    return undefined;
  }
}

const PATCH_TYPES: Record<string, PatchType> = { 'strategic-merge-patch': 'strategic', 'merge-patch': 'merge', 'json-patch': 'json' };

const refuse = (what: string) =>
  new TetherError(ErrorCode.UpstreamUnavailable, `tether-edge: offline: ${what} cannot be accepted while the node is offline; it is accepted again once the apiserver is reachable`);

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

export function writeOffline(opts: WriterOptions, w: OfflineWrite): CachedAnswer {
  const { store, bus } = opts;
  const { info } = w;
  const what = `${info.verb} ${info.resource}${info.subresource ? `/${info.subresource}` : ''}`;
  if (w.hasCredentials) throw refuse(`${what} with the caller's own credentials`);

  /** Applies a local change; the events go to open watches once the transaction has committed. */
  const applyLocal = (type: EventType, obj: KubeObject) => store.streams.applyLocal(info.gvr, type, obj, (s) => streamMatcher(s)(obj));
  const publish = (r: ReturnType<typeof applyLocal>) => {
    for (const { streamId, event } of r.events) bus.publish(streamId, event);
    return r.object;
  };
  const local = (type: EventType, obj: KubeObject) => publish(applyLocal(type, obj));

  if (info.gvr === LEASES && info.subresource === '' && (info.verb === 'update' || info.verb === 'create')) {
    const lease = asObject(parse(w.body), 'a Lease');
    if (info.verb === 'update' && lease.metadata.name !== info.name) {
      throw new TetherError(ErrorCode.BadRequest, `the name of the object (${lease.metadata.name}) does not match the name on the URL (${info.name})`);
    }
    const cached = store.objects.get(info.gvr, info.namespace, lease.metadata.name);
    const merged: KubeObject = { ...lease, metadata: { ...cached?.metadata, ...lease.metadata, namespace: info.namespace } };
    return { status: cached ? 200 : 201, body: local(cached ? 'MODIFIED' : 'ADDED', merged) };
  }

  if (isStatusWrite(info)) {
    const cached = store.objects.get(info.gvr, info.namespace, info.name);
    if (!cached) throw refuse(`${what} of ${info.name}, which is not in the node's cache,`);
    let next: KubeObject;
    if (info.verb === 'patch') {
      const type = info.patchType ? PATCH_TYPES[info.patchType] : undefined;
      if (!type) throw refuse(`a ${info.patchType ?? 'unknown'} patch`);
      next = applyPatch(cached, type, parse(w.body));
      if (next.metadata !== undefined && (typeof next.metadata !== 'object' || next.metadata === null || Array.isArray(next.metadata))) {
        throw new TetherError(ErrorCode.BadRequest, `apply patch: metadata of ${info.resource} ${info.name} must stay an object`);
      }
      next = { ...next, metadata: { ...cached.metadata, ...next.metadata, name: cached.metadata.name, uid: cached.metadata.uid } };
    } else {
      const sent = asObject(parse(w.body), `a ${info.resource} status update`);
      next = { ...cached, status: sent.status };
    }
    const path = statusPath(info);
    const query = w.url.includes('?') ? w.url.slice(w.url.indexOf('?')) : '';
    const uid = cached.metadata.uid ?? '';
    const r = store.transact(
      'record offline status write',
      () => {
        const applied = applyLocal('MODIFIED', next);
        // What this write changed, on top of what the waiting entry for the object already carries.
        let delta = statusDelta(info.gvr, cached.status, next.status);
        for (const row of store.outbox.statusFor(path)) {
          const older = row.uid === uid ? coalesced(row) : undefined;
          if (!older) continue; // written by an older agent, or for a previous object: replayed as it is
          delta = composeDelta(info.gvr, older, delta);
          store.outbox.remove(row.seq);
        }
        if (!isEmptyDelta(delta)) {
          store.outbox.enqueue({
            kind: 'status',
            method: 'PATCH',
            path: `${path}${query}`,
            contentType: COALESCED_CONTENT_TYPE,
            body: JSON.stringify({ metadata: { uid }, status: delta }),
            uid,
            component: info.component,
          });
        }
        return applied;
      },
      { durable: true },
    );
    return { status: 200, body: publish(r) };
  }

  if (EVENT_GVRS.has(info.gvr) && (info.verb === 'create' || info.verb === 'patch')) {
    const body = parse(w.body);
    const { dropped } = store.transact(
      'queue offline event',
      () => store.outbox.enqueue({ kind: 'event', method: info.method, path: w.url, contentType: w.contentType, body: w.body, component: info.component }),
      { durable: true },
    );
    if (dropped) opts.onEventsDropped(dropped);
    return { status: info.verb === 'create' ? 201 : 200, body };
  }

  throw refuse(what);
}
