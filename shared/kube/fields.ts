/**
 * Which field selectors each resource supports, and the values of those fields on an object,
 * following kube-apiserver v1.34: the field label conversion functions of pkg/apis/<group>/<v>
 * (AddFieldLabelConversionsFor…, which decide what a selector may name and rename some labels)
 * and the GetAttrs/ToSelectableFields of pkg/registry/... (which compute the values).
 *
 * Three cases, by the gvr ("v1/pods", "apps/v1/deployments"):
 * - a resource with its own conversion (pods, nodes, events, …): only its labels are accepted;
 * - any other resource of a built-in API group: only metadata.name and metadata.namespace;
 * - a resource of another group (custom resources, aggregated APIs): no check here (a CRD may
 *   declare selectableFields we cannot see), and a field is read by its dotted JSON path.
 * A rejected label gets the apiserver's own message, so an answer from the cache reads the same
 * as one from the apiserver. Selectors in a parsed request are already converted; convert once.
 */
import { apiserverBadRequest } from './_bad-request.ts';
import type { FieldSelector } from './field-selector.ts';

type Obj = Record<string, unknown>;
type Getter = (o: Obj) => string;

interface ResourceFields {
  /** Label accepted in a selector → the field name it is evaluated as. */
  labels: Readonly<Record<string, string>>;
  /** Field name → its value on an object of this resource. */
  values: Readonly<Record<string, Getter>>;
  unsupported: (label: string) => string;
}

const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const int = (v: unknown): string => (typeof v === 'number' && Number.isInteger(v) ? String(v) : '0');
const bool = (v: unknown): string => String(v === true);
const path =
  (...keys: string[]): Getter =>
  (o) => {
    let cur: unknown = o;
    for (const k of keys) cur = obj(cur)[k];
    return str(cur);
  };

const meta: Record<string, Getter> = {
  'metadata.name': path('metadata', 'name'),
  'metadata.namespace': path('metadata', 'namespace'),
};
const identity = (...labels: string[]) => Object.fromEntries(labels.map((l) => [l, l]));
const notSupported = (label: string) => `field label not supported: ${label}`;
const byDefault = (label: string) =>
  `"${label}" is not a known field selector: only "metadata.name", "metadata.namespace"`;

const pods: ResourceFields = {
  labels: {
    ...identity(
      'metadata.name',
      'metadata.namespace',
      'spec.nodeName',
      'spec.restartPolicy',
      'spec.schedulerName',
      'spec.serviceAccountName',
      'spec.hostNetwork',
      'status.phase',
      'status.podIP',
      'status.podIPs',
      'status.nominatedNodeName',
    ),
    'spec.host': 'spec.nodeName',
  },
  values: {
    ...meta,
    'spec.nodeName': path('spec', 'nodeName'),
    'spec.restartPolicy': path('spec', 'restartPolicy'),
    'spec.schedulerName': path('spec', 'schedulerName'),
    'spec.serviceAccountName': path('spec', 'serviceAccountName'),
    'spec.hostNetwork': (o) => bool(obj(o.spec).hostNetwork),
    'status.phase': path('status', 'phase'),
    // The first of status.podIPs (v1 objects keep status.podIP equal to it).
    'status.podIP': (o) => {
      const status = obj(o.status);
      const first = Array.isArray(status.podIPs) ? obj(status.podIPs[0]).ip : undefined;
      return str(first) || str(status.podIP);
    },
    // Accepted by the apiserver but absent from the pod's field set, so it always reads ''.
    'status.podIPs': () => '',
    'status.nominatedNodeName': path('status', 'nominatedNodeName'),
  },
  unsupported: notSupported,
};

const coreEvents: ResourceFields = {
  labels: identity(
    'involvedObject.kind',
    'involvedObject.namespace',
    'involvedObject.name',
    'involvedObject.uid',
    'involvedObject.apiVersion',
    'involvedObject.resourceVersion',
    'involvedObject.fieldPath',
    'reason',
    'reportingComponent',
    'source',
    'type',
    'metadata.namespace',
    'metadata.name',
  ),
  values: {
    ...meta,
    ...Object.fromEntries(
      ['kind', 'namespace', 'name', 'uid', 'apiVersion', 'resourceVersion', 'fieldPath'].map((k) => [
        `involvedObject.${k}`,
        path('involvedObject', k),
      ]),
    ),
    reason: path('reason'),
    reportingComponent: path('reportingComponent'),
    source: (o) => path('source', 'component')(o) || str(o.reportingComponent),
    type: path('type'),
  },
  unsupported: notSupported,
};

// events.k8s.io names its fields differently and maps them onto the core Event's field set.
const eventsK8sIo: ResourceFields = {
  labels: {
    ...identity('reason', 'type', 'metadata.namespace', 'metadata.name'),
    ...Object.fromEntries(
      ['kind', 'namespace', 'name', 'uid', 'apiVersion', 'resourceVersion', 'fieldPath'].map((k) => [
        `regarding.${k}`,
        `involvedObject.${k}`,
      ]),
    ),
    reportingController: 'reportingComponent',
  },
  values: {
    ...meta,
    ...Object.fromEntries(
      ['kind', 'namespace', 'name', 'uid', 'apiVersion', 'resourceVersion', 'fieldPath'].map((k) => [
        `involvedObject.${k}`,
        path('regarding', k),
      ]),
    ),
    reason: path('reason'),
    reportingComponent: path('reportingController'),
    source: (o) => path('deprecatedSource', 'component')(o) || str(o.reportingController),
    type: path('type'),
  },
  unsupported: notSupported,
};

/** CertificateSigningRequest and ClusterTrustBundle. */
const csr: ResourceFields = {
  labels: identity('metadata.name', 'spec.signerName'),
  values: { ...meta, 'spec.signerName': path('spec', 'signerName') },
  unsupported: notSupported,
};

const podCertificateRequests: ResourceFields = {
  labels: identity('metadata.name', 'spec.signerName', 'spec.podName', 'spec.nodeName'),
  values: {
    ...meta,
    'spec.signerName': path('spec', 'signerName'),
    'spec.podName': path('spec', 'podName'),
    'spec.nodeName': path('spec', 'nodeName'),
  },
  unsupported: notSupported,
};

const resourceSlices = (version: string): ResourceFields => ({
  labels: identity('metadata.name', 'spec.nodeName', 'spec.driver'),
  values: { ...meta, 'spec.nodeName': path('spec', 'nodeName'), 'spec.driver': path('spec', 'driver') },
  unsupported: (l) => `field label not supported for resource.k8s.io/${version}, Kind=ResourceSlice: ${l}`,
});

/** Resources with their own field label conversion, by gvr. */
const specific: Readonly<Record<string, ResourceFields>> = {
  'v1/pods': pods,
  'v1/nodes': {
    labels: identity('metadata.name', 'spec.unschedulable'),
    values: { ...meta, 'spec.unschedulable': (o) => bool(obj(o.spec).unschedulable) },
    unsupported: notSupported,
  },
  'v1/replicationcontrollers': {
    labels: identity('metadata.name', 'metadata.namespace', 'status.replicas'),
    values: { ...meta, 'status.replicas': (o) => int(obj(o.status).replicas) },
    unsupported: notSupported,
  },
  'v1/events': coreEvents,
  'v1/namespaces': {
    labels: identity('status.phase', 'metadata.name'),
    values: { ...meta, 'status.phase': path('status', 'phase') },
    unsupported: notSupported,
  },
  'v1/secrets': {
    labels: identity('type', 'metadata.namespace', 'metadata.name'),
    values: { ...meta, type: path('type') },
    unsupported: notSupported,
  },
  'v1/services': {
    labels: identity('metadata.namespace', 'metadata.name', 'spec.clusterIP', 'spec.type'),
    values: { ...meta, 'spec.clusterIP': path('spec', 'clusterIP'), 'spec.type': path('spec', 'type') },
    unsupported: notSupported,
  },
  'events.k8s.io/v1/events': eventsK8sIo,
  'events.k8s.io/v1beta1/events': eventsK8sIo,
  'certificates.k8s.io/v1/certificatesigningrequests': csr,
  'certificates.k8s.io/v1beta1/certificatesigningrequests': csr,
  'certificates.k8s.io/v1alpha1/clustertrustbundles': csr,
  'certificates.k8s.io/v1beta1/clustertrustbundles': csr,
  'certificates.k8s.io/v1/clustertrustbundles': csr,
  // The kubelet (v1.37) watches its node's PodCertificateRequests by spec.nodeName.
  'certificates.k8s.io/v1alpha1/podcertificaterequests': podCertificateRequests,
  'certificates.k8s.io/v1beta1/podcertificaterequests': podCertificateRequests,
  'certificates.k8s.io/v1/podcertificaterequests': podCertificateRequests,
  'batch/v1/jobs': {
    labels: identity('metadata.name', 'metadata.namespace', 'status.successful'),
    values: { ...meta, 'status.successful': (o) => int(obj(o.status).succeeded) },
    unsupported: (l) => `field label "${l}" not supported for Job`,
  },
  'resource.k8s.io/v1/resourceslices': resourceSlices('v1'),
  'resource.k8s.io/v1beta1/resourceslices': resourceSlices('v1beta1'),
  'resource.k8s.io/v1beta2/resourceslices': resourceSlices('v1beta2'),
};

/** Any other resource of a built-in group: the apiserver's default conversion. */
const metaOnly: ResourceFields = {
  labels: identity('metadata.name', 'metadata.namespace'),
  values: meta,
  unsupported: byDefault,
};

const builtinGroups = new Set([
  '',
  'admissionregistration.k8s.io',
  'apiextensions.k8s.io',
  'apiregistration.k8s.io',
  'apps',
  'authentication.k8s.io',
  'authorization.k8s.io',
  'autoscaling',
  'batch',
  'certificates.k8s.io',
  'coordination.k8s.io',
  'discovery.k8s.io',
  'events.k8s.io',
  'flowcontrol.apiserver.k8s.io',
  'internal.apiserver.k8s.io',
  'networking.k8s.io',
  'node.k8s.io',
  'policy',
  'rbac.authorization.k8s.io',
  'resource.k8s.io',
  'scheduling.k8s.io',
  'storage.k8s.io',
  'storagemigration.k8s.io',
]);

/** The group of a gvr string: '' for "v1/pods", "apps" for "apps/v1/deployments". */
function groupOf(gvr: string): string {
  const parts = gvr.split('/');
  return parts.length >= 3 ? (parts[0] ?? '') : '';
}

function tableFor(gvr: string): ResourceFields | undefined {
  return specific[gvr] ?? (builtinGroups.has(groupOf(gvr)) ? metaOnly : undefined);
}

/**
 * The labels a selector may name for this resource (including renamed ones such as
 * "spec.host"), or undefined when the resource is not built in and anything is passed on.
 */
export function supportedFieldLabels(gvr: string): string[] | undefined {
  const t = tableFor(gvr);
  return t ? Object.keys(t.labels) : undefined;
}

/**
 * Checks and renames a selector's fields as the apiserver does before listing `gvr`; throws
 * TetherError(E_BAD_REQUEST) with the apiserver's message for a field the resource lacks.
 */
export function convertFieldSelector(gvr: string, selector: FieldSelector): FieldSelector {
  const t = tableFor(gvr);
  if (!t || selector.empty) return selector;
  return selector.transform((field, value) => {
    const to = Object.hasOwn(t.labels, field) ? t.labels[field] : undefined;
    if (to === undefined) throw apiserverBadRequest(t.unsupported(field));
    return { field: to, value };
  });
}

/** The selectable fields of an object of `gvr`, as a lookup; unknown fields read as ''. */
export function objectFields(gvr: string, object: unknown): (field: string) => string {
  const o = obj(object);
  const t = tableFor(gvr);
  if (t) return (f) => (Object.hasOwn(t.values, f) ? (t.values[f] as Getter)(o) : '');
  // Not built in: read the dotted path; scalars print as the apiserver would.
  return (f) => {
    if (Object.hasOwn(meta, f)) return (meta[f] as Getter)(o);
    let cur: unknown = o;
    for (const k of f.split('.')) cur = obj(cur)[k];
    return typeof cur === 'string' || typeof cur === 'number' || typeof cur === 'boolean' ? String(cur) : '';
  };
}

/** True when the object of `gvr` satisfies a (converted) field selector. */
export function matchesFieldSelector(selector: FieldSelector, gvr: string, object: unknown): boolean {
  return selector.empty || selector.matches(objectFields(gvr, object));
}
