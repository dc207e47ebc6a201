/**
 * The pods bound to this node, driven by the pod list-watch (`replace` and `event`), synced one
 * pod at a time (never two syncs of one pod at once; a pod that changes mid-sync is synced again;
 * a failed sync is retried after 1 s doubling to 30 s). For each pod:
 *
 *   new, not terminating  → watch its ConfigMaps/Secrets, request its projected service-account
 *                           tokens (POST serviceaccounts/<sa>/token), give it an IP, start its
 *                           containers (log lines), post Pulled/Created/Started events, and
 *                           PATCH pods/<p>/status (strategic merge) to Running;
 *   running, status stale → PATCH the status again (phase, IP, Ready put back to True);
 *   deletionTimestamp set → stop the containers, PATCH their terminated status, then DELETE the
 *                           pod with gracePeriodSeconds=0 and a uid precondition, as the kubelet's
 *                           status manager does once a pod's containers are gone;
 *   gone from the API     → forget it.
 */
import { messageOf } from '../../../shared/errors.ts';
import type { Logger } from '../../../shared/log.ts';
import type { ApiClient } from './api-client.ts';
import { containerRef, type RecordEvent } from './events.ts';
import type { LogStore } from './logs.ts';
import {
  createIpPool,
  podReferences,
  runningStatusPatch,
  stoppedStatusPatch,
  type RunningPod,
} from './pod-status.ts';
import type { ReferencedObjects } from './referenced-objects.ts';

const STRATEGIC = 'application/strategic-merge-patch+json';

export interface PodInfo {
  namespace: string;
  name: string;
  uid: string;
  phase: 'Running' | 'Terminating';
  podIP: string;
  containers: string[];
}

export interface PodManagerOptions {
  client: ApiClient;
  nodeName: string;
  hostIP: string;
  log: Logger;
  logs: LogStore;
  refs: ReferencedObjects;
  recordEvent: RecordEvent;
  onPodStarted?: () => void;
  now?: () => Date;
}

export interface PodManager {
  replace(items: any[]): void;
  event(type: 'ADDED' | 'MODIFIED' | 'DELETED', pod: any): void;
  pods(): PodInfo[];
  /** The API objects of the pods this node runs, for /pods. */
  apiPods(): any[];
  /** The running pod with that name, for exec/attach/port-forward and logs. */
  lookup(namespace: string, name: string): PodInfo | undefined;
  stop(): void;
}

interface Local {
  run: RunningPod;
  info: PodInfo;
}

export function createPodManager(o: PodManagerOptions): PodManager {
  const now = o.now ?? (() => new Date());
  const ips = createIpPool(o.hostIP);
  const desired = new Map<string, any>();
  const local = new Map<string, Local>();
  const inFlight = new Set<string>();
  const dirty = new Set<string>();
  const failures = new Map<string, number>();
  const retries = new Map<string, ReturnType<typeof setTimeout>>();
  let stopped = false;
  const keyOf = (p: any) => `${p.metadata.namespace}/${p.metadata.name}`;
  const podPath = (p: any) => `/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}`;

  function forget(key: string): void {
    const l = local.get(key);
    if (!l) return;
    o.logs.stopPod(l.info.namespace, l.info.name);
    o.refs.remove(key);
    ips.release(l.run.uid);
    local.delete(key);
  }

  async function start(pod: any, key: string): Promise<Local> {
    const refs = podReferences(pod);
    o.refs.set(key, pod.metadata.namespace, refs);
    const sa = pod.spec?.serviceAccountName ?? 'default';
    for (const t of refs.tokens) {
      const body = {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: {
          audiences: t.audiences.length ? t.audiences : null,
          expirationSeconds: t.expirationSeconds,
          boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod.metadata.name, uid: pod.metadata.uid },
        },
      };
      const res = await o.client.request('POST', `/api/v1/namespaces/${pod.metadata.namespace}/serviceaccounts/${sa}/token`, { body });
      if (res.status !== 201 && res.status !== 200) throw new Error(`token for ${sa}: status ${res.status}: ${res.body?.message ?? ''}`);
    }
    const containers = (pod.spec?.containers ?? []).map((c: any) => c.name as string);
    const run: RunningPod = {
      uid: pod.metadata.uid,
      podIP: ips.allocate(pod.metadata.uid, pod.status?.podIP),
      hostIP: o.hostIP,
      startedAt: pod.status?.startTime && pod.status.phase === 'Running' ? new Date(pod.status.startTime) : now(),
    };
    const info: PodInfo = { namespace: pod.metadata.namespace, name: pod.metadata.name, uid: run.uid, phase: 'Running', podIP: run.podIP, containers };
    o.logs.startPod(info.namespace, info.name, containers);
    for (const c of pod.spec?.containers ?? []) {
      o.recordEvent(containerRef(pod, c.name), 'Pulled', `Container image "${c.image}" already present on machine`);
      o.recordEvent(containerRef(pod, c.name), 'Created', `Created container: ${c.name}`);
      o.recordEvent(containerRef(pod, c.name), 'Started', `Started container ${c.name}`);
    }
    o.onPodStarted?.();
    o.log.info('pod started', { pod: key, ip: run.podIP });
    return { run, info };
  }

  async function terminate(pod: any, key: string): Promise<void> {
    const l = local.get(key);
    if (l) {
      l.info.phase = 'Terminating';
      for (const c of l.info.containers) o.recordEvent(containerRef(pod, c), 'Killing', `Stopping container ${c}`);
      o.logs.stopPod(l.info.namespace, l.info.name);
      const res = await o.client.request('PATCH', `${podPath(pod)}/status`, { body: stoppedStatusPatch(pod, l.run, now()), contentType: STRATEGIC });
      if (res.status !== 200 && res.status !== 404 && res.status !== 409) throw new Error(`patch stopped status: ${res.status}`);
    }
    const body = { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid } };
    const res = await o.client.request('DELETE', podPath(pod), { body });
    // 404: gone already; 409: the uid precondition failed, so this incarnation is gone already.
    if (res.status !== 200 && res.status !== 404 && res.status !== 409) throw new Error(`delete pod: status ${res.status}: ${res.body?.message ?? ''}`);
    forget(key);
    o.log.info('pod deleted', { pod: key, status: res.status });
  }

  async function sync(key: string): Promise<void> {
    const pod = desired.get(key);
    const l = local.get(key);
    if (!pod) return forget(key);
    if (l && l.run.uid !== pod.metadata.uid) forget(key);
    if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return forget(key);
    if (pod.metadata.deletionTimestamp) return terminate(pod, key);
    let current = local.get(key);
    if (!current) {
      current = await start(pod, key);
      local.set(key, current);
    }
    const s = pod.status ?? {};
    const allRunning = (pod.spec?.containers ?? []).every((c: any) =>
      (s.containerStatuses ?? []).some((cs: any) => cs.name === c.name && cs.state?.running));
    // Another writer (the node lifecycle controller marking pods not ready while the node was
    // unreachable) may have changed the status; the kubelet's status manager puts its own back.
    const ready = (s.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
    if (s.phase === 'Running' && s.podIP === current.run.podIP && allRunning && ready) return;
    const res = await o.client.request('PATCH', `${podPath(pod)}/status`, { body: runningStatusPatch(pod, current.run), contentType: STRATEGIC });
    if (res.status === 404) return; // deleted meanwhile; the watch will say so
    if (res.status !== 200) throw new Error(`patch status: ${res.status}: ${res.body?.message ?? ''}`);
    if (desired.get(key)?.metadata.uid === res.body.metadata?.uid) desired.set(key, res.body);
  }

  function enqueue(key: string): void {
    if (stopped) return;
    if (inFlight.has(key)) {
      dirty.add(key);
      return;
    }
    clearTimeout(retries.get(key));
    retries.delete(key);
    inFlight.add(key);
    sync(key)
      .then(() => failures.delete(key))
      .catch((e: unknown) => {
        const n = (failures.get(key) ?? 0) + 1;
        failures.set(key, n);
        o.log.warn('pod sync failed', { pod: key, error: messageOf(e), attempt: n });
        if (!stopped) retries.set(key, setTimeout(() => enqueue(key), Math.min(30_000, 1000 * 2 ** (n - 1))));
      })
      .finally(() => {
        inFlight.delete(key);
        if (dirty.delete(key)) enqueue(key);
      });
  }

  const mine = (p: any) => p?.spec?.nodeName === o.nodeName;

  return {
    replace(items) {
      const seen = new Set<string>();
      for (const p of items.filter(mine)) {
        const key = keyOf(p);
        seen.add(key);
        desired.set(key, p);
        enqueue(key);
      }
      for (const key of [...desired.keys()]) {
        if (seen.has(key)) continue;
        desired.delete(key);
        enqueue(key);
      }
    },
    event(type, pod) {
      const key = keyOf(pod);
      if (type === 'DELETED' || !mine(pod)) desired.delete(key);
      else desired.set(key, pod);
      enqueue(key);
    },
    pods: () => [...local.values()].map((l) => ({ ...l.info, containers: [...l.info.containers] })),
    apiPods: () => [...local.keys()].map((k) => desired.get(k)).filter(Boolean),
    lookup: (namespace, name) => local.get(`${namespace}/${name}`)?.info,
    stop() {
      stopped = true;
      for (const t of retries.values()) clearTimeout(t);
      for (const key of [...local.keys()]) forget(key);
    },
  };
}
