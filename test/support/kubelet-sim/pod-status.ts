/**
 * Pure pieces of the pod lifecycle: the status the kubelet reports for a running (or stopped)
 * pod, the ConfigMaps/Secrets a pod references, and pod IP allocation.
 *
 * Pod IPs are data only (never dialled): 198.18.<x>.<k> taken from the node address's /24, k in
 * 10..254, so no private range appears anywhere.
 */
import { createHash } from 'node:crypto';

const seconds = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

export const containerId = (uid: string, name: string) =>
  'containerd://' + createHash('sha256').update(`${uid}/${name}`).digest('hex');

export interface RunningPod {
  uid: string;
  podIP: string;
  hostIP: string;
  startedAt: Date;
}

/** Strategic merge patch for PATCH pods/<p>/status, as the kubelet's status manager sends it. */
export function runningStatusPatch(pod: any, run: RunningPod): any {
  const t = seconds(run.startedAt);
  const scheduled = (pod.status?.conditions ?? []).find((c: any) => c.type === 'PodScheduled');
  const conditions = [
    { type: 'PodReadyToStartContainers', status: 'True', lastProbeTime: null, lastTransitionTime: t },
    { type: 'Initialized', status: 'True', lastProbeTime: null, lastTransitionTime: t },
    { type: 'Ready', status: 'True', lastProbeTime: null, lastTransitionTime: t },
    { type: 'ContainersReady', status: 'True', lastProbeTime: null, lastTransitionTime: t },
    { type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: scheduled?.lastTransitionTime ?? t },
  ];
  const status = (c: any) => ({
    name: c.name,
    image: c.image,
    imageID: `${c.image}@sha256:${createHash('sha256').update(String(c.image)).digest('hex')}`,
    containerID: containerId(run.uid, c.name),
    ready: true,
    started: true,
    restartCount: 0,
    state: { running: { startedAt: t } },
    lastState: {},
  });
  const init = (pod.spec?.initContainers ?? []).map((c: any) => ({
    ...status(c),
    ready: true,
    started: false,
    state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: t, finishedAt: t, containerID: containerId(run.uid, c.name) } },
  }));
  return {
    metadata: { uid: run.uid },
    status: {
      '$setElementOrder/conditions': conditions.map((c) => ({ type: c.type })),
      conditions,
      phase: 'Running',
      hostIP: run.hostIP,
      hostIPs: [{ ip: run.hostIP }],
      podIP: run.podIP,
      podIPs: [{ ip: run.podIP }],
      startTime: t,
      containerStatuses: (pod.spec?.containers ?? []).map(status),
      ...(init.length ? { initContainerStatuses: init } : {}),
    },
  };
}

/** The patch sent once the containers of a deleted pod are stopped (exit 0, not ready). */
export function stoppedStatusPatch(pod: any, run: RunningPod, now: Date): any {
  const t = seconds(now);
  const started = seconds(run.startedAt);
  const conditions = [
    { type: 'Ready', status: 'False', reason: 'PodCompleted', lastProbeTime: null, lastTransitionTime: t },
    { type: 'ContainersReady', status: 'False', reason: 'PodCompleted', lastProbeTime: null, lastTransitionTime: t },
  ];
  return {
    metadata: { uid: run.uid },
    status: {
      '$setElementOrder/conditions': conditions.map((c) => ({ type: c.type })),
      conditions,
      containerStatuses: (pod.spec?.containers ?? []).map((c: any) => ({
        name: c.name,
        image: c.image,
        containerID: containerId(run.uid, c.name),
        ready: false,
        started: false,
        restartCount: 0,
        state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: started, finishedAt: t, containerID: containerId(run.uid, c.name) } },
      })),
    },
  };
}

export interface PodReferences {
  configMaps: string[];
  secrets: string[];
  /** Projected service-account tokens to request: audience list and lifetime. */
  tokens: { audiences: string[]; expirationSeconds: number }[];
}

/** What the kubelet would fetch for a pod: volumes, env and envFrom, image pull secrets, projected tokens. */
export function podReferences(pod: any): PodReferences {
  const configMaps = new Set<string>();
  const secrets = new Set<string>();
  const tokens: PodReferences['tokens'] = [];
  for (const v of pod.spec?.volumes ?? []) {
    if (v.configMap?.name) configMaps.add(v.configMap.name);
    if (v.secret?.secretName) secrets.add(v.secret.secretName);
    for (const s of v.projected?.sources ?? []) {
      if (s.configMap?.name) configMaps.add(s.configMap.name);
      if (s.secret?.name) secrets.add(s.secret.name);
      if (s.serviceAccountToken) {
        const aud = s.serviceAccountToken.audience;
        tokens.push({ audiences: aud ? [aud] : [], expirationSeconds: s.serviceAccountToken.expirationSeconds ?? 3607 });
      }
    }
  }
  for (const c of [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])]) {
    for (const e of c.env ?? []) {
      if (e.valueFrom?.configMapKeyRef?.name) configMaps.add(e.valueFrom.configMapKeyRef.name);
      if (e.valueFrom?.secretKeyRef?.name) secrets.add(e.valueFrom.secretKeyRef.name);
    }
    for (const e of c.envFrom ?? []) {
      if (e.configMapRef?.name) configMaps.add(e.configMapRef.name);
      if (e.secretRef?.name) secrets.add(e.secretRef.name);
    }
  }
  for (const s of pod.spec?.imagePullSecrets ?? []) if (s.name) secrets.add(s.name);
  return { configMaps: [...configMaps].sort(), secrets: [...secrets].sort(), tokens };
}

export interface IpPool {
  /** `preferred` is kept when it is free and in the range (a pod that was running before a restart). */
  allocate(uid: string, preferred?: string): string;
  release(uid: string): void;
}

export function createIpPool(nodeAddress: string): IpPool {
  const prefix = nodeAddress.split('.').slice(0, 3).join('.');
  const byUid = new Map<string, string>();
  const used = new Set<string>();
  return {
    allocate(uid, preferred) {
      const existing = byUid.get(uid);
      if (existing) return existing;
      const inRange = preferred?.startsWith(prefix + '.') && Number(preferred.split('.')[3]) >= 10;
      let ip = inRange && !used.has(preferred!) ? preferred : undefined;
      for (let k = 10; !ip && k <= 254; k++) if (!used.has(`${prefix}.${k}`)) ip = `${prefix}.${k}`;
      if (!ip) throw new Error(`allocate pod IP: ${prefix}.10-254 all in use`);
      byUid.set(uid, ip);
      used.add(ip);
      return ip;
    },
    release(uid) {
      const ip = byUid.get(uid);
      if (ip) used.delete(ip);
      byUid.delete(uid);
    },
  };
}
