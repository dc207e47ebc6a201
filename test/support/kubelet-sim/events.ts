/**
 * Events the kubelet posts (POST /api/v1/namespaces/<ns>/events, core/v1, source.component
 * "kubelet"): for its Node (Starting, NodeReady …, in namespace "default", the node reference's
 * uid being the node name, as the kubelet writes it) and for pods (Pulled, Created, Started,
 * Killing). Fire and forget: a failed POST is logged at debug level and dropped, as the kubelet's
 * event broadcaster drops events it cannot deliver.
 */
import { randomBytes } from 'node:crypto';
import { messageOf } from '../../../shared/errors.ts';
import type { Logger } from '../../../shared/log.ts';
import type { ApiClient } from './api-client.ts';

export interface ObjectRef {
  kind: string;
  apiVersion: string;
  name: string;
  namespace?: string;
  uid: string;
  fieldPath?: string;
}

export type RecordEvent = (ref: ObjectRef, reason: string, message: string, type?: 'Normal' | 'Warning') => void;

export function createEventRecorder(client: ApiClient, nodeName: string, log: Logger, now = () => new Date()): RecordEvent {
  return (ref, reason, message, type = 'Normal') => {
    const namespace = ref.namespace ?? 'default';
    const t = now().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${ref.name}.${randomBytes(8).toString('hex')}`, namespace },
      involvedObject: ref,
      reason,
      message,
      source: { component: 'kubelet', host: nodeName },
      firstTimestamp: t,
      lastTimestamp: t,
      count: 1,
      type,
      eventTime: null,
      reportingComponent: 'kubelet',
      reportingInstance: nodeName,
    };
    client
      .request('POST', `/api/v1/namespaces/${namespace}/events`, { body })
      .then((r) => r.status >= 300 && log.debug('event dropped', { reason, status: r.status }))
      .catch((e: unknown) => log.debug('event dropped', { reason, error: messageOf(e) }));
  };
}

export const nodeRef = (nodeName: string): ObjectRef => ({ kind: 'Node', apiVersion: 'v1', name: nodeName, uid: nodeName });

export const containerRef = (pod: any, container: string): ObjectRef => ({
  kind: 'Pod',
  apiVersion: 'v1',
  name: pod.metadata.name,
  namespace: pod.metadata.namespace,
  uid: pod.metadata.uid,
  fieldPath: `spec.containers{${container}}`,
});
