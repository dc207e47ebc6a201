import { describe, expect, test } from 'bun:test';
import { ErrorCode, isTetherError } from '../errors.ts';
import { parseFieldSelector } from './field-selector.ts';
import { convertFieldSelector, matchesFieldSelector, objectFields, supportedFieldLabels } from './fields.ts';

function convertError(gvr: string, selector: string): string {
  try {
    convertFieldSelector(gvr, parseFieldSelector(selector));
  } catch (e) {
    expect(isTetherError(e, ErrorCode.BadRequest)).toBe(true);
    return (e as Error).message;
  }
  throw new Error(`expected ${selector} on ${gvr} to be rejected`);
}

const pod = {
  metadata: { name: 'web-1', namespace: 'default' },
  spec: {
    nodeName: 'edge-1',
    restartPolicy: 'Always',
    schedulerName: 'default-scheduler',
    serviceAccountName: 'web',
    hostNetwork: true,
  },
  status: { phase: 'Running', podIP: '10.0.0.5', podIPs: [{ ip: '10.0.0.5' }, { ip: 'fd00::5' }], nominatedNodeName: 'edge-2' },
};

describe('objectFields: the values the apiserver selects on', () => {
  // [gvr, object, field, value]
  const cases: [string, unknown, string, string][] = [
    ['v1/pods', pod, 'metadata.name', 'web-1'],
    ['v1/pods', pod, 'metadata.namespace', 'default'],
    ['v1/pods', pod, 'spec.nodeName', 'edge-1'],
    ['v1/pods', pod, 'spec.restartPolicy', 'Always'],
    ['v1/pods', pod, 'spec.schedulerName', 'default-scheduler'],
    ['v1/pods', pod, 'spec.serviceAccountName', 'web'],
    ['v1/pods', pod, 'spec.hostNetwork', 'true'],
    ['v1/pods', { spec: {} }, 'spec.hostNetwork', 'false'],
    ['v1/pods', pod, 'status.phase', 'Running'],
    ['v1/pods', pod, 'status.podIP', '10.0.0.5'],
    ['v1/pods', { status: { podIP: '10.1.1.1' } }, 'status.podIP', '10.1.1.1'],
    ['v1/pods', pod, 'status.podIPs', ''],
    ['v1/pods', pod, 'status.nominatedNodeName', 'edge-2'],
    ['v1/pods', {}, 'spec.nodeName', ''],
    ['v1/pods', null, 'metadata.name', ''],
    ['v1/nodes', { metadata: { name: 'edge-1' }, spec: { unschedulable: true } }, 'spec.unschedulable', 'true'],
    ['v1/nodes', { metadata: { name: 'edge-1' } }, 'spec.unschedulable', 'false'],
    ['v1/secrets', { type: 'kubernetes.io/tls' }, 'type', 'kubernetes.io/tls'],
    ['v1/services', { spec: { clusterIP: '10.96.0.10', type: 'ClusterIP' } }, 'spec.clusterIP', '10.96.0.10'],
    ['v1/services', { spec: { clusterIP: '10.96.0.10', type: 'ClusterIP' } }, 'spec.type', 'ClusterIP'],
    ['v1/namespaces', { status: { phase: 'Terminating' } }, 'status.phase', 'Terminating'],
    ['v1/replicationcontrollers', { status: { replicas: 3 } }, 'status.replicas', '3'],
    ['v1/replicationcontrollers', { status: {} }, 'status.replicas', '0'],
    ['batch/v1/jobs', { status: { succeeded: 2 } }, 'status.successful', '2'],
    ['certificates.k8s.io/v1/certificatesigningrequests', { spec: { signerName: 'kubernetes.io/kubelet-serving' } }, 'spec.signerName', 'kubernetes.io/kubelet-serving'],
    ['resource.k8s.io/v1/resourceslices', { spec: { nodeName: 'edge-1', driver: 'gpu.example.com' } }, 'spec.driver', 'gpu.example.com'],
    ['resource.k8s.io/v1/resourceslices', { spec: { allNodes: true } }, 'spec.nodeName', ''],
    ['v1/configmaps', { metadata: { name: 'kube-proxy', namespace: 'kube-system' } }, 'metadata.namespace', 'kube-system'],
    ['v1/configmaps', { metadata: { name: 'kube-proxy' }, data: { a: 'b' } }, 'data.a', ''],
    // Custom resources: any scalar by its dotted path.
    ['example.com/v1/widgets', { spec: { color: 'red', size: 3, on: false } }, 'spec.color', 'red'],
    ['example.com/v1/widgets', { spec: { color: 'red', size: 3, on: false } }, 'spec.size', '3'],
    ['example.com/v1/widgets', { spec: { color: 'red', size: 3, on: false } }, 'spec.on', 'false'],
    ['example.com/v1/widgets', { spec: { list: [1] } }, 'spec.list', ''],
    ['example.com/v1/widgets', { metadata: { name: 'w' } }, 'metadata.name', 'w'],
  ];
  for (const [gvr, object, field, value] of cases) {
    test(`${gvr} ${field} = ${JSON.stringify(value)}`, () => {
      expect(objectFields(gvr, object)(field)).toBe(value);
    });
  }

  const coreEvent = {
    metadata: { name: 'e1', namespace: 'default' },
    involvedObject: { kind: 'Pod', namespace: 'default', name: 'web-1', uid: 'u1', apiVersion: 'v1', resourceVersion: '7', fieldPath: 'spec.containers{c}' },
    reason: 'Started',
    reportingComponent: 'kubelet',
    source: { component: '' },
    type: 'Normal',
  };
  const newEvent = {
    metadata: { name: 'e2', namespace: 'default' },
    regarding: { kind: 'Node', namespace: '', name: 'edge-1', uid: 'u2', apiVersion: 'v1', resourceVersion: '9', fieldPath: '' },
    reason: 'NodeReady',
    reportingController: 'kubelet',
    deprecatedSource: { component: 'kubelet-old' },
    type: 'Normal',
  };
  test('core events: involvedObject.*, reason, reportingComponent, source (falls back), type', () => {
    const get = objectFields('v1/events', coreEvent);
    expect(get('involvedObject.kind')).toBe('Pod');
    expect(get('involvedObject.uid')).toBe('u1');
    expect(get('involvedObject.fieldPath')).toBe('spec.containers{c}');
    expect(get('reason')).toBe('Started');
    expect(get('reportingComponent')).toBe('kubelet');
    expect(get('source')).toBe('kubelet');
    expect(get('type')).toBe('Normal');
  });
  test('events.k8s.io events: regarding maps onto involvedObject', () => {
    const get = objectFields('events.k8s.io/v1/events', newEvent);
    expect(get('involvedObject.kind')).toBe('Node');
    expect(get('involvedObject.name')).toBe('edge-1');
    expect(get('reportingComponent')).toBe('kubelet');
    expect(get('source')).toBe('kubelet-old');
    const sel = convertFieldSelector('events.k8s.io/v1/events', parseFieldSelector('regarding.kind=Node,reportingController=kubelet'));
    expect(sel.toString()).toBe('involvedObject.kind=Node,reportingComponent=kubelet');
    expect(matchesFieldSelector(sel, 'events.k8s.io/v1/events', newEvent)).toBe(true);
    expect(matchesFieldSelector(sel, 'events.k8s.io/v1/events', { ...newEvent, regarding: { kind: 'Pod' } })).toBe(false);
  });
});

describe('convertFieldSelector: what each resource accepts', () => {
  // [gvr, selector, converted]
  const ok: [string, string, string][] = [
    ['v1/pods', 'spec.nodeName=edge-1', 'spec.nodeName=edge-1'],
    ['v1/pods', 'spec.host=edge-1', 'spec.nodeName=edge-1'],
    ['v1/pods', 'status.podIPs=x,status.podIP=y', 'status.podIP=y,status.podIPs=x'],
    ['v1/pods', 'metadata.namespace!=kube-system,status.phase!=Succeeded', 'metadata.namespace!=kube-system,status.phase!=Succeeded'],
    ['v1/nodes', 'metadata.name=edge-1', 'metadata.name=edge-1'],
    ['v1/nodes', 'spec.unschedulable=false', 'spec.unschedulable=false'],
    ['v1/secrets', 'type=kubernetes.io/service-account-token', 'type=kubernetes.io/service-account-token'],
    ['v1/services', 'spec.clusterIP!=None', 'spec.clusterIP!=None'],
    ['v1/events', 'involvedObject.name=web-1,source=kubelet', 'involvedObject.name=web-1,source=kubelet'],
    ['v1/namespaces', 'status.phase=Active', 'status.phase=Active'],
    ['v1/replicationcontrollers', 'status.replicas=0', 'status.replicas=0'],
    ['v1/configmaps', 'metadata.name=kube-proxy', 'metadata.name=kube-proxy'],
    ['v1/persistentvolumeclaims', 'metadata.namespace=default', 'metadata.namespace=default'],
    ['apps/v1/deployments', 'metadata.name=web', 'metadata.name=web'],
    ['batch/v1/jobs', 'status.successful=1', 'status.successful=1'],
    ['certificates.k8s.io/v1/certificatesigningrequests', 'spec.signerName=kubernetes.io/kubelet-serving', 'spec.signerName=kubernetes.io/kubelet-serving'],
    ['certificates.k8s.io/v1beta1/clustertrustbundles', 'spec.signerName=example.com/x', 'spec.signerName=example.com/x'],
    ['resource.k8s.io/v1/resourceslices', 'spec.nodeName=edge-1', 'spec.nodeName=edge-1'],
    ['example.com/v1/widgets', 'spec.color=red', 'spec.color=red'],
  ];
  for (const [gvr, selector, converted] of ok) {
    test(`${gvr} accepts ${selector}`, () => {
      expect(convertFieldSelector(gvr, parseFieldSelector(selector)).toString()).toBe(converted);
    });
  }

  // [gvr, selector, the apiserver's message]
  const rejected: [string, string, string][] = [
    ['v1/pods', 'spec.containers=x', 'field label not supported: spec.containers'],
    ['v1/nodes', 'metadata.namespace=x', 'field label not supported: metadata.namespace'],
    ['v1/nodes', 'status.phase=Ready', 'field label not supported: status.phase'],
    ['v1/namespaces', 'name=default', 'field label not supported: name'],
    ['v1/secrets', 'data=x', 'field label not supported: data'],
    ['v1/services', 'spec.ports=x', 'field label not supported: spec.ports'],
    ['v1/events', 'message=x', 'field label not supported: message'],
    ['events.k8s.io/v1/events', 'involvedObject.kind=Pod', 'field label not supported: involvedObject.kind'],
    ['v1/configmaps', 'data.a=b', '"data.a" is not a known field selector: only "metadata.name", "metadata.namespace"'],
    ['v1/persistentvolumeclaims', 'name=x', '"name" is not a known field selector: only "metadata.name", "metadata.namespace"'],
    ['apps/v1/replicasets', 'status.replicas=1', '"status.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"'],
    ['coordination.k8s.io/v1/leases', 'spec.holderIdentity=x', '"spec.holderIdentity" is not a known field selector: only "metadata.name", "metadata.namespace"'],
    ['batch/v1/jobs', 'status.active=1', 'field label "status.active" not supported for Job'],
    ['certificates.k8s.io/v1/certificatesigningrequests', 'metadata.namespace=x', 'field label not supported: metadata.namespace'],
    ['resource.k8s.io/v1/resourceslices', 'spec.pool=x', 'field label not supported for resource.k8s.io/v1, Kind=ResourceSlice: spec.pool'],
  ];
  for (const [gvr, selector, message] of rejected) {
    test(`${gvr} rejects ${selector} with the apiserver's message`, () => {
      expect(convertError(gvr, selector)).toBe(message);
    });
  }

  test('an empty selector is accepted for every resource', () => {
    expect(convertFieldSelector('v1/nodes', parseFieldSelector('')).empty).toBe(true);
  });

  test('supportedFieldLabels lists the accepted labels, undefined for custom resources', () => {
    expect(supportedFieldLabels('v1/pods')).toContain('spec.host');
    expect(supportedFieldLabels('v1/nodes')?.sort()).toEqual(['metadata.name', 'spec.unschedulable']);
    expect(supportedFieldLabels('v1/configmaps')?.sort()).toEqual(['metadata.name', 'metadata.namespace']);
    expect(supportedFieldLabels('example.com/v1/widgets')).toBeUndefined();
  });
});

describe('matchesFieldSelector', () => {
  const cases: [string, string, unknown, boolean][] = [
    ['v1/pods', 'spec.nodeName=edge-1', pod, true],
    ['v1/pods', 'spec.host=edge-1', pod, true],
    ['v1/pods', 'spec.nodeName=edge-2', pod, false],
    ['v1/pods', 'spec.nodeName=edge-1,status.phase!=Succeeded,status.phase!=Failed', pod, true],
    ['v1/pods', 'spec.nodeName=edge-1,status.phase!=Running', pod, false],
    ['v1/pods', 'spec.hostNetwork=true', pod, true],
    ['v1/pods', 'status.podIPs=10.0.0.5', pod, false],
    ['v1/pods', 'spec.nodeName=', { spec: {} }, true],
    ['v1/nodes', 'metadata.name=edge-1', { metadata: { name: 'edge-1' } }, true],
    ['v1/services', 'spec.clusterIP!=None', { spec: { clusterIP: 'None' } }, false],
    ['v1/secrets', 'type=Opaque', { type: 'Opaque' }, true],
    ['v1/events', 'involvedObject.kind=Node', { involvedObject: { kind: 'Node' } }, true],
    ['v1/configmaps', 'metadata.name=kube-proxy,metadata.namespace=kube-system', { metadata: { name: 'kube-proxy', namespace: 'kube-system' } }, true],
    ['v1/configmaps', '', {}, true],
  ];
  for (const [gvr, selector, object, want] of cases) {
    test(`${gvr} ${selector} → ${want}`, () => {
      const converted = convertFieldSelector(gvr, parseFieldSelector(selector));
      expect(matchesFieldSelector(converted, gvr, object)).toBe(want);
    });
  }
});
