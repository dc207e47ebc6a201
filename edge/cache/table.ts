/**
 * Server-side printing for the store's answers: kubectl asks for `as=Table` and prints the columns
 * the apiserver computes. Offline, the agent computes the same columns for the kinds an operator
 * looks at first on a node — pods and nodes — following the apiserver's printers (pkg/printers/
 * internalversion). Other kinds get the plain list, which kubectl prints as names and ages.
 */
import type { KubeObject } from '../store/index.ts';

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): Obj[] => (Array.isArray(v) ? (v as Obj[]) : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

export function wantsTable(accept: string | undefined): boolean {
  return /as=Table;v=v1;g=meta\.k8s\.io/.test(accept ?? '');
}

/** The apiserver's short human durations ("45s", "3m12s", "5h", "12d"). */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < -1) return '<invalid>';
  if (s < 0) return '0s';
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (h < 192) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (d < 365 * 2) return `${d}d`;
  const y = Math.floor(d / 365);
  if (d < 365 * 8) return d % 365 === 0 ? `${y}y` : `${y}y${d % 365}d`;
  return `${y}y`;
}

interface Column {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}
const col = (name: string, priority = 0, type = 'string', format = ''): Column => ({ name, type, format, description: name, priority });

function age(o: KubeObject, now: number): string {
  const t = Date.parse(str(o.metadata.creationTimestamp));
  return Number.isNaN(t) ? '<unknown>' : humanDuration(now - t);
}

function podRow(p: KubeObject, now: number): unknown[] {
  const spec = obj(p.spec);
  const status = obj(p.status);
  const statuses = arr(status.containerStatuses);
  const total = arr(spec.containers).length;
  const ready = statuses.filter((c) => c.ready === true).length;
  const restarts = statuses.reduce((n, c) => n + (typeof c.restartCount === 'number' ? c.restartCount : 0), 0);
  let reason = str(status.reason) || str(status.phase) || 'Unknown';
  for (const c of statuses) {
    const state = obj(c.state);
    const waiting = str(obj(state.waiting).reason);
    const terminated = obj(state.terminated);
    if (waiting) reason = waiting;
    else if (str(terminated.reason)) reason = str(terminated.reason);
    else if (Object.keys(terminated).length) reason = typeof terminated.signal === 'number' && terminated.signal ? `Signal:${terminated.signal}` : `ExitCode:${terminated.exitCode}`;
  }
  if (p.metadata.deletionTimestamp) reason = status.reason === 'NodeLost' ? 'Unknown' : 'Terminating';
  const gates = arr(spec.readinessGates);
  const conditions = arr(status.conditions);
  const gateCell = gates.length
    ? `${gates.filter((g) => conditions.some((c) => c.type === g.conditionType && c.status === 'True')).length}/${gates.length}`
    : '<none>';
  return [p.metadata.name, `${ready}/${total}`, reason, String(restarts), age(p, now), str(status.podIP) || '<none>', str(spec.nodeName) || '<none>', str(status.nominatedNodeName) || '<none>', gateCell];
}

function nodeRow(n: KubeObject, now: number): unknown[] {
  const status = obj(n.status);
  const ready = arr(status.conditions).find((c) => c.type === 'Ready');
  const states = [ready ? (ready.status === 'True' ? 'Ready' : ready.status === 'False' ? 'NotReady' : 'Unknown') : 'Unknown'];
  if (obj(n.spec).unschedulable === true) states.push('SchedulingDisabled');
  const labels = (n.metadata.labels ?? {}) as Record<string, string>;
  const roles = Object.keys(labels)
    .filter((k) => k.startsWith('node-role.kubernetes.io/'))
    .map((k) => k.slice('node-role.kubernetes.io/'.length))
    .filter((r) => r);
  const address = (type: string) => str(arr(status.addresses).find((a) => a.type === type)?.address) || '<none>';
  const info = obj(status.nodeInfo);
  return [n.metadata.name, states.join(','), roles.length ? roles.sort().join(',') : '<none>', age(n, now), str(info.kubeletVersion), address('InternalIP'), address('ExternalIP'), str(info.osImage), str(info.kernelVersion), str(info.containerRuntimeVersion)];
}

const PRINTERS: Record<string, { columns: Column[]; row: (o: KubeObject, now: number) => unknown[] }> = {
  'v1/pods': {
    columns: [col('Name'), col('Ready'), col('Status'), col('Restarts', 0, 'string'), col('Age'), col('IP', 1), col('Node', 1), col('Nominated Node', 1), col('Readiness Gates', 1)],
    row: podRow,
  },
  'v1/nodes': {
    columns: [col('Name'), col('Status'), col('Roles'), col('Age'), col('Version'), col('Internal-IP', 1), col('External-IP', 1), col('OS-Image', 1), col('Kernel-Version', 1), col('Container-Runtime', 1)],
    row: nodeRow,
  },
};

export function canPrint(gvr: string): boolean {
  return gvr in PRINTERS;
}

/** A meta.k8s.io/v1 Table of the objects, rows carrying their metadata as kubectl expects by default. */
export function toTable(gvr: string, items: KubeObject[], listMeta: Record<string, unknown>, now = Date.now()): unknown {
  const p = PRINTERS[gvr];
  if (!p) throw new Error(`no printer for ${gvr}`);
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: p.columns,
    rows: items.map((o) => ({
      cells: p.row(o, now),
      object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
    })),
  };
}
