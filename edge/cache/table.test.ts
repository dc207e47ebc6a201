import { expect, test } from 'bun:test';
import type { KubeObject } from '../store/index.ts';
import { humanDuration, toTable, wantsTable } from './table.ts';

test('durations read like the apiserver prints them', () => {
  const s = 1000;
  expect([5 * s, 119 * s, 200 * s, 600 * s, 7200 * s, 7260 * s, 30 * 3600 * s, 50 * 3600 * s, 10 * 86400 * s].map(humanDuration)).toEqual([
    '5s', '119s', '3m20s', '10m', '120m', '121m', '30h', '2d2h', '10d',
  ]);
});

test("kubectl's Accept header asks for a Table", () => {
  expect(wantsTable('application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json')).toBe(true);
  expect(wantsTable('application/json')).toBe(false);
});

test('pods print Ready, Status, Restarts, Age, IP and Node like the apiserver', () => {
  const now = Date.parse('2026-01-01T00:10:00Z');
  const pod = (name: string, extra: Record<string, unknown>): KubeObject => ({
    metadata: { name, namespace: 'default', creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: { nodeName: 'edge-1', containers: [{ name: 'a' }, { name: 'b' }] },
    ...extra,
  });
  const t = toTable('v1/pods', [
    pod('ok', { status: { phase: 'Running', podIP: '198.18.1.5', containerStatuses: [{ ready: true, restartCount: 1, state: { running: {} } }, { ready: true, restartCount: 2, state: { running: {} } }] } }),
    pod('crashing', { status: { phase: 'Running', containerStatuses: [{ ready: false, restartCount: 7, state: { waiting: { reason: 'CrashLoopBackOff' } } }] } }),
    { ...pod('going', { status: { phase: 'Running' } }), metadata: { name: 'going', creationTimestamp: '2026-01-01T00:00:00Z', deletionTimestamp: '2026-01-01T00:09:00Z' } },
  ], { resourceVersion: '9' }, now) as { columnDefinitions: { name: string }[]; rows: { cells: unknown[]; object: { metadata: { name: string } } }[] };
  expect(t.columnDefinitions.map((c) => c.name).slice(0, 5)).toEqual(['Name', 'Ready', 'Status', 'Restarts', 'Age']);
  expect(t.rows.map((r) => r.cells.slice(0, 7))).toEqual([
    ['ok', '2/2', 'Running', '3', '10m', '198.18.1.5', 'edge-1'],
    ['crashing', '0/2', 'CrashLoopBackOff', '7', '10m', '<none>', 'edge-1'],
    ['going', '0/2', 'Terminating', '0', '10m', '<none>', 'edge-1'],
  ]);
  expect(t.rows[0]!.object.metadata.name).toBe('ok');
});

test('nodes print Status with SchedulingDisabled, Roles and Version', () => {
  const t = toTable('v1/nodes', [{
    metadata: { name: 'edge-1', creationTimestamp: '2026-01-01T00:00:00Z', labels: { 'node-role.kubernetes.io/edge': '' } },
    spec: { unschedulable: true },
    status: { conditions: [{ type: 'Ready', status: 'Unknown' }], nodeInfo: { kubeletVersion: 'v1.34.4' }, addresses: [{ type: 'InternalIP', address: '198.18.1.2' }] },
  }], {}, Date.parse('2026-01-01T01:00:00Z')) as { rows: { cells: unknown[] }[] };
  expect(t.rows[0]!.cells.slice(0, 6)).toEqual(['edge-1', 'Unknown,SchedulingDisabled', 'edge', '60m', 'v1.34.4', '198.18.1.2']);
});
