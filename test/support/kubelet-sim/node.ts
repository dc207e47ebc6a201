/**
 * The Node object and its status, as the kubelet registers and reports them.
 *
 * Registration (kubelet's registerWithAPIServer): POST /api/v1/nodes with the full object; on
 * 409 AlreadyExists GET the node and PATCH its status subresource (strategic merge) to put back
 * the default labels and the current status. Status (kubelet's updateNodeStatus): GET the node
 * with resourceVersion=0 (from the apiserver cache), then PATCH /api/v1/nodes/<n>/status with
 * `application/strategic-merge-patch+json` carrying the conditions with a fresh heartbeat; a
 * condition's lastTransitionTime moves only when its status changes (say the node lifecycle
 * controller had set Ready=Unknown while the node was cut off).
 */
import { randomUUID } from 'node:crypto';
import { release } from 'node:os';
import { ErrorCode, TetherError } from '../../../shared/errors.ts';
import { GOARCH, KUBELET_VERSION, type ApiClient } from './api-client.ts';

export interface NodeIdentity {
  nodeName: string;
  /** InternalIP */
  address: string;
  /** The kubelet's HTTPS port (daemonEndpoints.kubeletEndpoint.Port). */
  port: number;
  cpu?: string;
  memory?: string;
}

const STRATEGIC = 'application/strategic-merge-patch+json';
const machineId = randomUUID().replace(/-/g, '');
const bootId = randomUUID();

export function defaultLabels(id: NodeIdentity): Record<string, string> {
  return {
    'beta.kubernetes.io/arch': GOARCH,
    'beta.kubernetes.io/os': 'linux',
    'kubernetes.io/arch': GOARCH,
    'kubernetes.io/hostname': id.nodeName,
    'kubernetes.io/os': 'linux',
  };
}

const CONDITIONS = [
  ['MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'],
  ['DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'],
  ['PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'],
  ['Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'],
] as const;

/** Conditions with a heartbeat at `now`; transition times are kept from `previous` unless the status changed. */
export function nodeConditions(now: Date, previous: any[] = []): any[] {
  const ts = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return CONDITIONS.map(([type, status, reason, message]) => {
    const prev = previous.find((c) => c?.type === type);
    return {
      type,
      status,
      lastHeartbeatTime: ts,
      lastTransitionTime: prev?.status === status && prev.lastTransitionTime ? prev.lastTransitionTime : ts,
      reason,
      message,
    };
  });
}

export function nodeStatus(id: NodeIdentity, now: Date, previousConditions: any[] = []): any {
  const resources = { cpu: id.cpu ?? '4', memory: id.memory ?? '8Gi', pods: '110', 'ephemeral-storage': '50Gi' };
  return {
    capacity: resources,
    allocatable: resources,
    conditions: nodeConditions(now, previousConditions),
    addresses: [
      { type: 'InternalIP', address: id.address },
      { type: 'Hostname', address: id.nodeName },
    ],
    daemonEndpoints: { kubeletEndpoint: { Port: id.port } },
    nodeInfo: {
      machineID: machineId,
      systemUUID: machineId,
      bootID: bootId,
      kernelVersion: release(),
      osImage: 'Tether kubelet simulator',
      containerRuntimeVersion: 'tether-sim://0.1.0',
      kubeletVersion: KUBELET_VERSION,
      operatingSystem: 'linux',
      architecture: GOARCH,
    },
  };
}

export function buildNode(id: NodeIdentity, now: Date): any {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: id.nodeName,
      labels: defaultLabels(id),
      annotations: { 'volumes.kubernetes.io/controller-managed-attach-detach': 'true' },
    },
    spec: {},
    status: nodeStatus(id, now),
  };
}

const setElementOrder = (conditions: any[]) => conditions.map((c) => ({ type: c.type }));

/** Registers the node; resolves with the node object the apiserver holds. */
export async function registerNode(client: ApiClient, id: NodeIdentity, now: Date): Promise<any> {
  const created = await client.request('POST', '/api/v1/nodes', { body: buildNode(id, now) });
  if (created.status === 201 || created.status === 200) return created.body;
  if (created.status !== 409) {
    throw new TetherError(ErrorCode.UpstreamUnavailable, `register node: POST status ${created.status}: ${created.body?.message ?? ''}`);
  }
  const existing = await client.request('GET', `/api/v1/nodes/${id.nodeName}`);
  if (existing.status !== 200) {
    throw new TetherError(ErrorCode.UpstreamUnavailable, `register node: GET status ${existing.status}`);
  }
  const status = nodeStatus(id, now, existing.body.status?.conditions);
  const patch = {
    metadata: { labels: defaultLabels(id) },
    status: { ...status, '$setElementOrder/conditions': setElementOrder(status.conditions) },
  };
  const patched = await client.request('PATCH', `/api/v1/nodes/${id.nodeName}/status`, { body: patch, contentType: STRATEGIC });
  if (patched.status !== 200) {
    throw new TetherError(ErrorCode.UpstreamUnavailable, `register node: PATCH status ${patched.status}: ${patched.body?.message ?? ''}`);
  }
  return patched.body;
}

/** One status update; `full` also sends addresses, capacity, nodeInfo and the endpoint. */
export async function postNodeStatus(client: ApiClient, id: NodeIdentity, now: Date, full: boolean): Promise<any> {
  const current = await client.request('GET', `/api/v1/nodes/${id.nodeName}?resourceVersion=0`);
  if (current.status !== 200) {
    throw new TetherError(ErrorCode.UpstreamUnavailable, `node status: GET status ${current.status}`);
  }
  const status = nodeStatus(id, now, current.body.status?.conditions);
  const body = {
    status: {
      '$setElementOrder/conditions': setElementOrder(status.conditions),
      ...(full ? status : { conditions: status.conditions }),
    },
  };
  const res = await client.request('PATCH', `/api/v1/nodes/${id.nodeName}/status`, { body, contentType: STRATEGIC });
  if (res.status !== 200) {
    throw new TetherError(ErrorCode.UpstreamUnavailable, `node status: PATCH status ${res.status}: ${res.body?.message ?? ''}`);
  }
  return res.body;
}
