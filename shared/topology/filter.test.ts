import { describe, expect, test } from 'bun:test';
import { createTopologyFilter } from './filter.ts';
import { createPoolMembership } from './membership.ts';
import { filterEndpointSlice, filterEndpoints, topologyOf } from './topology.ts';

const svc = (name: string, topology?: string, namespace = 'shop') => ({
  kind: 'Service',
  metadata: { name, namespace, ...(topology ? { annotations: { 'apps.tether.dev/topology': topology } } : {}) },
});
const slice = (service: string, nodes: (string | undefined)[], namespace = 'shop') => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: `${service}-abc`, namespace, labels: { 'kubernetes.io/service-name': service }, resourceVersion: '42' },
  addressType: 'IPv4',
  endpoints: nodes.map((n, i) => ({ addresses: [`10.0.0.${i + 1}`], ...(n ? { nodeName: n } : {}) })),
  ports: [{ port: 80 }],
});
const endpoints = (service: string, ready: string[], notReady: string[] = []) => ({
  apiVersion: 'v1',
  kind: 'Endpoints',
  metadata: { name: service, namespace: 'shop' },
  subsets: [
    {
      addresses: ready.map((n, i) => ({ ip: `10.0.1.${i + 1}`, nodeName: n })),
      ...(notReady.length ? { notReadyAddresses: notReady.map((n, i) => ({ ip: `10.0.2.${i + 1}`, nodeName: n })) } : {}),
      ports: [{ port: 80 }],
    },
  ],
});
const pool = (name: string, nodes: string[]) => ({ metadata: { name }, status: { nodes } });
const nodesOf = (s: { endpoints: { nodeName?: string }[] }) => s.endpoints.map((e) => e.nodeName);

function setup() {
  const f = createTopologyFilter({ nodeName: 'n1' });
  f.replaceNodePools([pool('north', ['n1', 'n2']), pool('south', ['n3'])]);
  f.replaceServices([svc('by-pool', 'apps.tether.dev/pool'), svc('by-node', 'kubernetes.io/hostname'), svc('plain')]);
  return f;
}

describe('topology of a Service', () => {
  test('reads the annotation; unknown values and no annotation mean no filtering', () => {
    expect(topologyOf(svc('a', 'kubernetes.io/hostname'))).toBe('hostname');
    expect(topologyOf(svc('a', 'apps.tether.dev/pool'))).toBe('pool');
    expect(topologyOf(svc('a', 'zone'))).toBeUndefined();
    expect(topologyOf(svc('a'))).toBeUndefined();
  });
});

describe('pure filtering', () => {
  test('hostname keeps same-node endpoints; endpoints without a node are dropped', () => {
    const out = filterEndpointSlice(slice('s', ['n1', 'n2', undefined, 'n1']), { topology: 'hostname', nodeName: 'n1', poolNodes: undefined });
    expect(nodesOf(out)).toEqual(['n1', 'n1']);
  });
  test('pool keeps same-pool endpoints; a node in no pool sees everything', () => {
    const s = slice('s', ['n1', 'n2', 'n3']);
    expect(nodesOf(filterEndpointSlice(s, { topology: 'pool', nodeName: 'n1', poolNodes: new Set(['n1', 'n2']) }))).toEqual(['n1', 'n2']);
    expect(filterEndpointSlice(s, { topology: 'pool', nodeName: 'n1', poolNodes: undefined })).toBe(s);
  });
  test('the input object is not changed', () => {
    const s = slice('s', ['n1', 'n3']);
    filterEndpointSlice(s, { topology: 'hostname', nodeName: 'n1', poolNodes: undefined });
    expect(s.endpoints.length).toBe(2);
  });
  test('Endpoints: ready and not-ready addresses filtered, emptied subsets removed', () => {
    const e = filterEndpoints(endpoints('s', ['n1', 'n3'], ['n3']), { topology: 'pool', nodeName: 'n1', poolNodes: new Set(['n1', 'n2']) });
    expect(e.subsets).toEqual([{ addresses: [{ ip: '10.0.1.1', nodeName: 'n1' }], ports: [{ port: 80 }] }]);
    const none = filterEndpoints(endpoints('s', ['n3']), { topology: 'hostname', nodeName: 'n1', poolNodes: undefined });
    expect(none.subsets).toEqual([]);
  });
});

describe('the filter the proxy uses', () => {
  test('filters single objects by the Service of each', () => {
    const f = setup();
    expect(nodesOf(f.filter(slice('by-pool', ['n1', 'n2', 'n3'])))).toEqual(['n1', 'n2']);
    expect(nodesOf(f.filter(slice('by-node', ['n1', 'n2', 'n3'])))).toEqual(['n1']);
    expect(nodesOf(f.filter(slice('plain', ['n1', 'n2', 'n3'])))).toEqual(['n1', 'n2', 'n3']);
    expect(nodesOf(f.filter(slice('unknown', ['n3'])))).toEqual(['n3']);
    expect(f.filter(endpoints('by-node', ['n1', 'n3'])).subsets![0]!.addresses!.map((a) => a.nodeName)).toEqual(['n1']);
  });

  test('filters LIST bodies whose items carry no kind, keeping everything else of the list', () => {
    const f = setup();
    const items = [slice('by-pool', ['n1', 'n3']), slice('plain', ['n3'])].map(({ kind: _k, apiVersion: _a, ...rest }) => rest);
    const list = { kind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: '77' }, items };
    const out = f.filter(list);
    expect(out.metadata).toEqual({ resourceVersion: '77' });
    expect(out.items.map((i) => nodesOf(i as never))).toEqual([['n1'], ['n3']]);
    expect('kind' in out.items[0]!).toBe(false);
  });

  test('watch events: an event whose slice loses every endpoint is still sent, empty', () => {
    const f = setup();
    const ev = f.filterEvent({ type: 'MODIFIED', object: slice('by-node', ['n2', 'n3']) });
    expect(ev.type).toBe('MODIFIED');
    expect((ev.object as { endpoints: unknown[] }).endpoints).toEqual([]);
    const bookmark = { type: 'BOOKMARK', object: { kind: 'EndpointSlice', metadata: { resourceVersion: '9' } } };
    expect(f.filterEvent(bookmark)).toBe(bookmark);
  });

  test('a Service gaining or losing its annotation names itself for re-emission', () => {
    const f = setup();
    expect(f.observeService('MODIFIED', svc('plain', 'kubernetes.io/hostname'))).toEqual([{ namespace: 'shop', name: 'plain' }]);
    expect(nodesOf(f.reemit(slice('plain', ['n1', 'n2'])).object as never)).toEqual(['n1']);
    expect(f.observeService('MODIFIED', svc('plain', 'kubernetes.io/hostname'))).toEqual([]);
    expect(f.observeService('DELETED', svc('plain', 'kubernetes.io/hostname'))).toEqual([{ namespace: 'shop', name: 'plain' }]);
    expect(f.observeService('MODIFIED', svc('by-pool', 'kubernetes.io/hostname'))).toEqual([{ namespace: 'shop', name: 'by-pool' }]);
  });

  test("a change of this node's pool or its members names every pool-topology Service; other pools' changes name none", () => {
    const f = setup();
    expect(f.observeNodePool('MODIFIED', pool('south', ['n3', 'n4']))).toEqual([]);
    expect(f.observeNodePool('MODIFIED', pool('north', ['n1', 'n2', 'n5']))).toEqual([{ namespace: 'shop', name: 'by-pool' }]);
    expect(nodesOf(f.filter(slice('by-pool', ['n1', 'n5', 'n3'])))).toEqual(['n1', 'n5']);
    // n1 moves: leaves north, joins south
    f.observeNodePool('MODIFIED', pool('north', ['n2', 'n5']));
    f.observeNodePool('MODIFIED', pool('south', ['n1', 'n3', 'n4']));
    expect(nodesOf(f.filter(slice('by-pool', ['n1', 'n2', 'n3'])))).toEqual(['n1', 'n3']);
    expect(f.observeNodePool('DELETED', pool('south', []))).toEqual([{ namespace: 'shop', name: 'by-pool' }]);
    expect(nodesOf(f.filter(slice('by-pool', ['n1', 'n2', 'n3'])))).toEqual(['n1', 'n2', 'n3']); // in no pool now
  });

  test('belongsTo links slices (by label) and Endpoints (by name) to their Service', () => {
    const f = setup();
    const s = [{ namespace: 'shop', name: 'by-pool' }];
    expect(f.belongsTo(slice('by-pool', []), s)).toBe(true);
    expect(f.belongsTo(slice('by-pool', [], 'other'), s)).toBe(false);
    expect(f.belongsTo(endpoints('by-pool', []), s)).toBe(true);
    expect(f.belongsTo(endpoints('plain', []), s)).toBe(false);
  });

  test('handles only endpointslices and endpoints', () => {
    const f = setup();
    expect(f.handles('discovery.k8s.io', 'endpointslices')).toBe(true);
    expect(f.handles('', 'endpoints')).toBe(true);
    expect(f.handles('', 'services')).toBe(false);
  });
});

describe('pool membership', () => {
  test('replace forgets pools that are gone and reports changed pools', () => {
    const m = createPoolMembership();
    expect(m.replace([pool('a', ['x']), pool('b', ['y'])]).sort()).toEqual(['a', 'b']);
    expect(m.replace([pool('a', ['x'])])).toEqual(['b']);
    expect(m.poolOf('y')).toBeUndefined();
    expect(m.upsert(pool('a', ['x']))).toEqual([]);
    expect(m.members('a')).toEqual(new Set(['x']));
  });
});
