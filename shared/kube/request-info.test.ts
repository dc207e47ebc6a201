import { describe, expect, test } from 'bun:test';
import { parseRequest, type RequestInfo } from './request-info.ts';

const kubeletUA = { 'User-Agent': 'kubelet/v1.34.4 (linux/amd64) kubernetes/8a3b1f2' };

/** The fields a case checks, with selectors as their canonical strings. */
function view(info: RequestInfo) {
  return {
    isResourceRequest: info.isResourceRequest,
    verb: info.verb,
    gvr: info.gvr,
    namespace: info.namespace,
    name: info.name,
    subresource: info.subresource,
    labelSelector: info.labelSelector.toString(),
    fieldSelector: info.fieldSelector.toString(),
    watch: info.watch,
  };
}

type Want = Partial<ReturnType<typeof view>> & Partial<Omit<RequestInfo, 'labelSelector' | 'fieldSelector'>>;

interface Case {
  name: string;
  method: string;
  url: string;
  headers?: Record<string, string>;
  want: Want;
}

function check(c: Case) {
  test(c.name, () => {
    const info = parseRequest(c.method, c.url, c.headers);
    const got: Record<string, unknown> = { ...info, ...view(info) };
    for (const [k, v] of Object.entries(c.want)) expect([k, got[k]]).toEqual([k, v]);
  });
}

describe('parseRequest: what the kubelet sends', () => {
  const cases: Case[] = [
    {
      name: 'initial pod list of its node',
      method: 'GET',
      url: '/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1&limit=500&resourceVersion=0',
      headers: kubeletUA,
      want: {
        isResourceRequest: true, verb: 'list', gvr: 'v1/pods', apiPrefix: 'api', apiGroup: '', apiVersion: 'v1',
        resource: 'pods', namespace: '', name: '', fieldSelector: 'spec.nodeName=edge-1', rawFieldSelector: 'spec.nodeName=edge-1',
        limit: 500, resourceVersion: '0', watch: false, component: 'kubelet', longRunning: false, parts: ['pods'],
      },
    },
    {
      name: 'pod watch of its node',
      method: 'GET',
      url: '/api/v1/pods?allowWatchBookmarks=true&fieldSelector=spec.nodeName%3Dedge-1&resourceVersion=123&timeoutSeconds=342&watch=true',
      headers: kubeletUA,
      want: {
        verb: 'watch', watch: true, gvr: 'v1/pods', allowWatchBookmarks: true, resourceVersion: '123',
        timeoutSeconds: 342, fieldSelector: 'spec.nodeName=edge-1', longRunning: true, limit: undefined,
        sendInitialEvents: undefined, resourceVersionMatch: undefined,
      },
    },
    {
      name: 'configmap watch by name (watch=1)',
      method: 'GET',
      url: '/api/v1/namespaces/kube-system/configmaps?fieldSelector=metadata.name%3Dkube-proxy&watch=1',
      want: {
        verb: 'watch', watch: true, gvr: 'v1/configmaps', namespace: 'kube-system', name: 'kube-proxy',
        fieldSelector: 'metadata.name=kube-proxy', subresource: '',
      },
    },
    {
      name: 'lease renewal',
      method: 'PUT',
      url: '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-1',
      headers: kubeletUA,
      want: {
        verb: 'update', gvr: 'coordination.k8s.io/v1/leases', apiPrefix: 'apis', apiGroup: 'coordination.k8s.io',
        apiVersion: 'v1', namespace: 'kube-node-lease', resource: 'leases', name: 'edge-1', watch: false,
        patchType: undefined, parts: ['leases', 'edge-1'],
      },
    },
    {
      name: 'node status patch (strategic merge)',
      method: 'PATCH',
      url: '/api/v1/nodes/edge-1/status',
      headers: { 'Content-Type': 'application/strategic-merge-patch+json', ...kubeletUA },
      want: { verb: 'patch', gvr: 'v1/nodes', name: 'edge-1', subresource: 'status', namespace: '', patchType: 'strategic-merge-patch' },
    },
    {
      name: 'pod status patch (merge, with charset)',
      method: 'PATCH',
      url: '/api/v1/namespaces/default/pods/web-1/status',
      headers: { 'content-type': 'application/merge-patch+json; charset=utf-8' },
      want: { verb: 'patch', gvr: 'v1/pods', namespace: 'default', name: 'web-1', subresource: 'status', patchType: 'merge-patch' },
    },
    {
      name: 'node get',
      method: 'GET',
      url: '/api/v1/nodes/edge-1?resourceVersion=0',
      want: { verb: 'get', gvr: 'v1/nodes', name: 'edge-1', resourceVersion: '0', watch: false },
    },
    {
      name: 'node create',
      method: 'POST',
      url: '/api/v1/nodes',
      want: { verb: 'create', gvr: 'v1/nodes', name: '' },
    },
    {
      name: 'service account token',
      method: 'POST',
      url: '/api/v1/namespaces/default/serviceaccounts/default/token',
      want: { verb: 'create', gvr: 'v1/serviceaccounts', namespace: 'default', name: 'default', subresource: 'token' },
    },
    {
      name: 'event create',
      method: 'POST',
      url: '/api/v1/namespaces/default/events',
      want: { verb: 'create', gvr: 'v1/events', namespace: 'default', name: '' },
    },
    {
      name: 'exec over websocket (GET)',
      method: 'GET',
      url: '/api/v1/namespaces/default/pods/p/exec?command=sh&stdin=true&tty=true',
      want: { verb: 'get', method: 'GET', gvr: 'v1/pods', namespace: 'default', name: 'p', subresource: 'exec', longRunning: true, watch: false },
    },
    {
      name: 'exec over SPDY (POST)',
      method: 'POST',
      url: '/api/v1/namespaces/default/pods/p/exec?command=sh',
      want: { verb: 'create', method: 'POST', subresource: 'exec', longRunning: true },
    },
    {
      name: 'legacy /watch/ prefix',
      method: 'GET',
      url: '/api/v1/watch/pods',
      want: { verb: 'watch', watch: true, gvr: 'v1/pods', namespace: '', name: '', longRunning: true, parts: ['pods'] },
    },
    {
      name: 'legacy named watch selects the name',
      method: 'GET',
      url: '/api/v1/watch/namespaces/default/pods/p',
      want: { verb: 'watch', gvr: 'v1/pods', namespace: 'default', name: 'p', fieldSelector: 'metadata.name=p' },
    },
    {
      name: 'legacy named watch with the same name in its selector',
      method: 'GET',
      url: '/api/v1/watch/namespaces/default/pods/p?fieldSelector=metadata.name%3Dp',
      want: { verb: 'watch', name: 'p', fieldSelector: 'metadata.name=p' },
    },
    {
      name: 'endpointslices with label selector (kube-proxy)',
      method: 'GET',
      url: '/apis/discovery.k8s.io/v1/endpointslices?labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service.kubernetes.io%2Fservice-proxy-name&limit=500&resourceVersion=0',
      want: {
        verb: 'list', gvr: 'discovery.k8s.io/v1/endpointslices',
        labelSelector: '!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name',
        rawLabelSelector: '!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name',
      },
    },
    {
      name: 'list namespaces',
      method: 'GET',
      url: '/api/v1/namespaces',
      want: { verb: 'list', gvr: 'v1/namespaces', resource: 'namespaces', namespace: '', name: '' },
    },
    {
      name: 'get a namespace (cluster-scoped: namespace is empty)',
      method: 'GET',
      url: '/api/v1/namespaces/default',
      want: { verb: 'get', gvr: 'v1/namespaces', resource: 'namespaces', namespace: '', name: 'default', parts: ['namespaces', 'default'] },
    },
    {
      name: 'namespace status subresource',
      method: 'PUT',
      url: '/api/v1/namespaces/default/status',
      want: { verb: 'update', gvr: 'v1/namespaces', namespace: '', name: 'default', subresource: 'status' },
    },
    {
      name: 'namespace finalize subresource',
      method: 'PUT',
      url: '/api/v1/namespaces/default/finalize',
      want: { verb: 'update', gvr: 'v1/namespaces', namespace: '', name: 'default', subresource: 'finalize' },
    },
    {
      name: 'a namespaced resource called like a namespace subresource is still namespaced',
      method: 'GET',
      url: '/api/v1/namespaces/default/pods/status',
      want: { verb: 'get', gvr: 'v1/pods', namespace: 'default', name: 'status' },
    },
    {
      name: 'csr watch by name',
      method: 'GET',
      url: '/apis/certificates.k8s.io/v1/certificatesigningrequests?fieldSelector=metadata.name%3Dcsr-abc&watch=true',
      want: { verb: 'watch', gvr: 'certificates.k8s.io/v1/certificatesigningrequests', name: 'csr-abc' },
    },
    {
      name: 'pod list with the legacy spec.host label is renamed',
      method: 'GET',
      url: '/api/v1/pods?fieldSelector=spec.host%3Dedge-1',
      want: { verb: 'list', fieldSelector: 'spec.nodeName=edge-1', rawFieldSelector: 'spec.host=edge-1' },
    },
  ];
  for (const c of cases) check(c);
});

describe('parseRequest: what kubectl sends', () => {
  const discovery: [string, Want][] = [
    ['/version', { discovery: true, apiPrefix: '' }],
    ['/version/', { discovery: true }],
    ['/api', { discovery: true, apiPrefix: 'api', apiVersion: '' }],
    ['/api/v1', { discovery: true, apiPrefix: 'api', apiVersion: 'v1' }],
    ['/api/v1/', { discovery: true, apiPrefix: 'api', apiVersion: 'v1' }],
    ['/apis', { discovery: true, apiPrefix: 'apis', apiGroup: '' }],
    ['/apis/apps', { discovery: true, apiPrefix: 'apis', apiGroup: 'apps', apiVersion: '' }],
    ['/apis/apps/v1', { discovery: true, apiPrefix: 'apis', apiGroup: 'apps', apiVersion: 'v1' }],
    ['/apis/coordination.k8s.io/v1', { discovery: true, apiGroup: 'coordination.k8s.io', apiVersion: 'v1' }],
    ['/openapi/v2', { discovery: true }],
    ['/openapi/v3', { discovery: true }],
    ['/openapi/v3/api/v1?hash=ABCDEF', { discovery: true }],
    ['/openapi/v3/apis/apps/v1?hash=0123', { discovery: true, apiGroup: '' }],
    ['/healthz', { discovery: false }],
    ['/readyz?verbose', { discovery: false }],
    ['/livez/etcd', { discovery: false }],
    ['/metrics', { discovery: false }],
    ['/', { discovery: false, path: '/' }],
    ['/openapi/v2/extra', { discovery: false }],
    ['/logs/kube-apiserver.log', { discovery: false }],
  ];
  for (const [url, want] of discovery) {
    check({ name: `GET ${url}`, method: 'GET', url, want: { isResourceRequest: false, verb: 'get', gvr: '', resource: '', longRunning: false, ...want } });
  }

  const cases: Case[] = [
    {
      name: 'get pods -l in a namespace',
      method: 'GET',
      url: '/api/v1/namespaces/default/pods?labelSelector=app%3Dweb%2Ctier+in+%28front%2Cedge%29&limit=500',
      headers: { 'User-Agent': 'kubectl/v1.34.4 (linux/amd64) kubernetes/8a3b1f2' },
      want: { verb: 'list', gvr: 'v1/pods', namespace: 'default', labelSelector: 'app=web,tier in (edge,front)', limit: 500, component: 'kubectl' },
    },
    {
      name: 'get deployments -w',
      method: 'GET',
      url: '/apis/apps/v1/namespaces/default/deployments?resourceVersion=4711&watch=true',
      want: { verb: 'watch', gvr: 'apps/v1/deployments', resourceVersion: '4711' },
    },
    {
      name: 'apply (server side)',
      method: 'PATCH',
      url: '/apis/apps/v1/namespaces/default/deployments/web?fieldManager=kubectl&force=true',
      headers: { 'Content-Type': 'application/apply-patch+yaml' },
      want: { verb: 'patch', name: 'web', patchType: 'apply-patch' },
    },
    {
      name: 'json patch',
      method: 'PATCH',
      url: '/api/v1/nodes/edge-1',
      headers: { 'Content-Type': 'application/json-patch+json' },
      want: { verb: 'patch', patchType: 'json-patch' },
    },
    {
      name: 'patch with an unsupported content type has no patch type',
      method: 'PATCH',
      url: '/api/v1/nodes/edge-1',
      headers: { 'Content-Type': 'application/json' },
      want: { verb: 'patch', patchType: undefined },
    },
    {
      name: 'delete one pod',
      method: 'DELETE',
      url: '/api/v1/namespaces/default/pods/web-1',
      want: { verb: 'delete', name: 'web-1' },
    },
    {
      name: 'delete pods -l (deletecollection)',
      method: 'DELETE',
      url: '/api/v1/namespaces/default/pods?labelSelector=app%3Dweb',
      want: { verb: 'deletecollection', name: '', labelSelector: 'app=web' },
    },
    {
      name: 'eviction',
      method: 'POST',
      url: '/api/v1/namespaces/default/pods/web-1/eviction',
      want: { verb: 'create', subresource: 'eviction', longRunning: false },
    },
    {
      name: 'logs -f',
      method: 'GET',
      url: '/api/v1/namespaces/default/pods/web-1/log?follow=true&container=c',
      want: { verb: 'get', subresource: 'log', longRunning: true },
    },
    {
      name: 'port-forward',
      method: 'POST',
      url: '/api/v1/namespaces/default/pods/web-1/portforward',
      want: { verb: 'create', subresource: 'portforward', longRunning: true },
    },
    {
      name: 'node proxy subresource keeps the rest of the path in parts',
      method: 'GET',
      url: '/api/v1/nodes/edge-1/proxy/metrics/cadvisor',
      want: { verb: 'get', gvr: 'v1/nodes', name: 'edge-1', subresource: 'proxy', parts: ['nodes', 'edge-1', 'proxy', 'metrics', 'cadvisor'], longRunning: true },
    },
    {
      name: 'legacy /proxy/ prefix has no subresource',
      method: 'GET',
      url: '/api/v1/proxy/namespaces/default/pods/web-1/healthz',
      want: { verb: 'proxy', gvr: 'v1/pods', namespace: 'default', name: 'web-1', subresource: '', parts: ['pods', 'web-1', 'healthz'], longRunning: true },
    },
    {
      name: 'an empty namespace segment means all namespaces, as upstream',
      method: 'GET',
      url: '/api/v1/namespaces//pods',
      want: { verb: 'list', gvr: 'v1/pods', namespace: '' },
    },
    {
      name: 'HEAD on a collection is a list',
      method: 'HEAD',
      url: '/api/v1/pods',
      want: { verb: 'list' },
    },
    {
      name: 'method is upper-cased',
      method: 'get',
      url: '/api/v1/pods',
      want: { verb: 'list', method: 'GET' },
    },
    {
      name: 'percent-encoded path segments are decoded',
      method: 'GET',
      url: '/api/v1/namespaces/d%65fault/configmaps/kube%2Droot-ca.crt',
      want: { namespace: 'default', name: 'kube-root-ca.crt', path: '/api/v1/namespaces/default/configmaps/kube-root-ca.crt' },
    },
    {
      name: 'a GET with a name ignores list parameters, even invalid ones',
      method: 'GET',
      url: '/api/v1/namespaces/default/pods/p?labelSelector=((&limit=x&watch=true',
      want: { verb: 'get', watch: false, labelSelector: '', rawLabelSelector: '', limit: undefined },
    },
  ];
  for (const c of cases) check(c);
});

describe('parseRequest: inputs', () => {
  const url = '/api/v1/namespaces/default/pods?watch=true';
  test('a URL, an absolute URL string and a path give the same answer', () => {
    const a = parseRequest('GET', new URL(`https://127.0.0.1:10261${url}`));
    const b = parseRequest('GET', `http://127.0.0.1:10261${url}`);
    const c = parseRequest('GET', url);
    for (const x of [b, c]) expect(view(x)).toEqual(view(a));
    expect(a.verb).toBe('watch');
  });

  test('headers as a Headers object or a record, any case; component is lower-cased', () => {
    expect(parseRequest('GET', url, new Headers({ 'user-agent': 'Kube-Proxy/v1.34.4' })).component).toBe('kube-proxy');
    expect(parseRequest('GET', url, { 'USER-AGENT': 'coredns/1.12.0' }).component).toBe('coredns');
    expect(parseRequest('GET', url, { 'user-agent': undefined }).component).toBe('');
    expect(parseRequest('GET', url).component).toBe('');
  });

  test('a path starting with // stays a path', () => {
    expect(parseRequest('GET', '//api/v1/pods').gvr).toBe('v1/pods');
  });
});
