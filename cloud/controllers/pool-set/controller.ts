/**
 * The PoolSet controller (key: namespace/name). Each reconcile re-reads the PoolSet, the
 * NodePools and the PoolSet's workloads from the informer caches and:
 *   1. selects pools (names + selector; named pools that do not exist → PoolsFound=False);
 *   2. renders the workload for every selected pool (render.ts); a pool whose tweaks overlap
 *      keeps its current workload (TweaksValid=False names the overlap);
 *   3. server-side applies each rendered workload whose desired hash or generation changed
 *      since this replica last applied it (one apply per workload after a restart, then only
 *      on change: a template change rolls out to every pool, hand edits of owned fields revert);
 *   4. deletes workloads it owns for pools no longer selected, or of the other kind;
 *   5. writes status: per pool desired/ready/updated, totals, and the TweaksValid, PoolsFound,
 *      Synced and Ready conditions.
 * Workloads carry an owner reference to the PoolSet, so deleting it deletes them (the garbage
 * collector does that; the controller does nothing on deletion).
 */
import { messageOf } from '../../../shared/errors.ts';
import { API_VERSION, FIELD_MANAGER, POOLSET_HASH_ANNOTATION, POOLSET_LABEL, POOLSET_POOL_LABEL } from '../../api/keys.ts';
import { poolSetSchema, type PoolSet } from '../../api/pool-set.ts';
import type { Condition } from '../../api/_schema.ts';
import { jsonEqual, setCondition } from '../conditions.ts';
import type { ControllerContext } from '../context.ts';
import { keyOf, splitKey, type Workload } from '../kube-types.ts';
import { createController, type Controller } from '../runner.ts';
import { renderWorkload } from './render.ts';
import { selectPools } from './select.ts';
import { poolStatuses, totals } from './set-status.ts';

const plural = { Deployment: 'deployments', StatefulSet: 'statefulsets' } as const;
const workloadPath = (kind: keyof typeof plural, ns: string, name?: string) =>
  `/apis/apps/v1/namespaces/${ns}/${plural[kind]}${name ? `/${encodeURIComponent(name)}` : ''}`;

interface ManagedFields {
  manager?: string;
  subresource?: string;
  fieldsV1?: Record<string, unknown>;
}

/** Whether a manager other than the hub owns spec fields, labels or owner references (outside status). */
export function foreignSpec(w: Workload): boolean {
  const entries = ((w.metadata as { managedFields?: ManagedFields[] }).managedFields ?? []);
  return entries.some((e) => {
    if (e.manager === FIELD_MANAGER || e.subresource === 'status') return false;
    const f = e.fieldsV1 ?? {};
    const meta = (f['f:metadata'] ?? {}) as Record<string, unknown>;
    return 'f:spec' in f || 'f:labels' in meta || 'f:ownerReferences' in meta;
  });
}

export interface PoolSetOptions {
  /** Status updates caused by workload changes wait this long, so a burst makes one write. */
  statusBatchMs: number;
}

export function createPoolSetController(ctx: ControllerContext, opts: PoolSetOptions): Controller {
  const poolSets = ctx.informers.poolSets();
  const pools = ctx.informers.nodePools();
  const informers = { Deployment: ctx.informers.deployments(), StatefulSet: ctx.informers.statefulSets() };
  const log = ctx.log.child({ controller: 'pool-set' });
  /** workload key → generation this replica last applied with the hash in its annotation. */
  const applied = new Map<string, { hash: string; generation: number }>();

  const owned = (ps: PoolSet) =>
    (['Deployment', 'StatefulSet'] as const).flatMap((kind) =>
      informers[kind]
        .list(ps.metadata.namespace)
        .filter((w) => w.metadata.labels?.[POOLSET_LABEL] === ps.metadata.name && w.metadata.ownerReferences?.some((o) => o.uid === ps.metadata.uid))
        .map((w) => ({ kind, w })),
    );

  const ctl = createController(
    'pool-set',
    [poolSets, pools, informers.Deployment, informers.StatefulSet],
    async (key) => {
      const { namespace, name } = splitKey(key);
      const raw = poolSets.get(name, namespace);
      if (!raw || raw.metadata.deletionTimestamp || !namespace) return;
      const now = ctx.now();
      const generation = raw.metadata.generation ?? 0;
      let conditions = raw.status?.conditions;
      const cond = (c: Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>) =>
        (conditions = setCondition(conditions, { ...c, observedGeneration: generation }, now));

      const parsed = poolSetSchema.safeParse(raw);
      if (!parsed.success) {
        cond({ type: 'Synced', status: 'False', reason: 'InvalidSpec', message: messageOf(parsed.error).slice(0, 2000) });
        await writeStatus(raw, { ...raw.status, observedGeneration: generation, conditions });
        return;
      }
      const ps = parsed.data;
      const { selected, missing } = selectPools(
        ps.spec.pools,
        ps.spec.poolSelector,
        pools.list().filter((p) => !p.metadata.deletionTimestamp).map((p) => ({ name: p.metadata.name, labels: p.metadata.labels ?? {} })),
      );
      const kind = ps.spec.workload.kind;
      const tweakErrors: string[] = [];
      const applyErrors: string[] = [];
      for (const pool of selected) {
        const r = renderWorkload(ps, pool);
        if (!r.ok) {
          tweakErrors.push(...r.errors);
          continue;
        }
        const wkey = `${kind}/${namespace}/${r.name}`;
        const current = informers[kind].get(r.name, namespace);
        const memo = applied.get(wkey);
        // Skip when this replica applied this very object and nobody changed the spec since (a cache
        // lagging behind our own write shows a lower generation: also skip) …
        if (current && memo && memo.hash === r.hash && memo.generation >= (current.metadata.generation ?? 0)) continue;
        // … or, after a restart, when the live object carries this hash and no other manager owns
        // any of its spec (nobody edited it since the last apply).
        if (current && !memo && current.metadata.annotations?.[POOLSET_HASH_ANNOTATION] === r.hash && !foreignSpec(current)) {
          applied.set(wkey, { hash: r.hash, generation: current.metadata.generation ?? 0 });
          continue;
        }
        try {
          const out = await ctx.api.apply<Workload>(workloadPath(kind, namespace, r.name), r.object);
          applied.set(wkey, { hash: r.hash, generation: out.metadata.generation ?? 0 });
          if (!current || current.metadata.annotations?.[POOLSET_HASH_ANNOTATION] !== r.hash) {
            log.info('workload applied', { poolSet: key, pool: pool.name, kind, workload: r.name });
          }
        } catch (e) {
          applyErrors.push(`${pool.name}: ${messageOf(e)}`);
        }
      }
      const wanted = new Set(selected.map((p) => p.name));
      for (const { kind: k, w } of owned(ps)) {
        const pool = w.metadata.labels?.[POOLSET_POOL_LABEL] ?? '';
        if (k === kind && wanted.has(pool)) continue;
        await ctx.api.delete(workloadPath(k, namespace, w.metadata.name), { propagationPolicy: 'Background', uid: w.metadata.uid });
        applied.delete(`${k}/${namespace}/${w.metadata.name}`);
        log.info('workload removed', { poolSet: key, pool, kind: k, workload: w.metadata.name });
      }

      const current = owned(ps).filter(({ kind: k, w }) => k === kind && wanted.has(w.metadata.labels?.[POOLSET_POOL_LABEL] ?? ''));
      const perPool = poolStatuses(current.map((c) => c.w));
      const sum = totals(perPool);
      cond(
        tweakErrors.length
          ? { type: 'TweaksValid', status: 'False', reason: 'TweakConflict', message: tweakErrors.slice(0, 10).join('; ') }
          : { type: 'TweaksValid', status: 'True', reason: 'NoConflict', message: 'every tweak applies cleanly' },
      );
      cond(
        missing.length
          ? { type: 'PoolsFound', status: 'False', reason: 'PoolNotFound', message: `no NodePool named ${missing.join(', ')}` }
          : { type: 'PoolsFound', status: 'True', reason: 'AllFound', message: `${selected.length} pool(s) selected` },
      );
      cond(
        applyErrors.length
          ? { type: 'Synced', status: 'False', reason: 'ApplyFailed', message: applyErrors.slice(0, 10).join('; ').slice(0, 4000) }
          : tweakErrors.length
            ? { type: 'Synced', status: 'False', reason: 'TweakConflict', message: 'some pools keep their previous workload; see TweaksValid' }
            : { type: 'Synced', status: 'True', reason: 'Applied', message: `${selected.length} workload(s) applied` },
      );
      const allReady = perPool.length === selected.length && perPool.every((p) => p.ready >= p.desired && p.updated >= p.desired);
      cond(
        allReady
          ? { type: 'Ready', status: 'True', reason: 'AllPoolsReady', message: `${sum.readyReplicas} replica(s) ready` }
          : { type: 'Ready', status: 'False', reason: 'RollingOut', message: `${sum.readyReplicas}/${sum.replicas} ready, ${sum.updatedReplicas} updated` },
      );
      await writeStatus(raw, { observedGeneration: generation, ...sum, pools: perPool, conditions });
      if (applyErrors.length) throw new Error(`apply workloads of ${key}: ${applyErrors.join('; ')}`);
    },
    ctx.queue,
  );

  async function writeStatus(ps: PoolSet, status: PoolSet['status']) {
    if (jsonEqual(status, ps.status)) return;
    await ctx.api.mergePatch(`/apis/${API_VERSION}/namespaces/${ps.metadata.namespace}/poolsets/${encodeURIComponent(ps.metadata.name)}/status`, {
      status,
    });
  }

  const enqueueAll = () => poolSets.list().forEach((p) => ctl.queue.add(keyOf(p)));
  poolSets.on({
    add: (p) => ctl.queue.add(keyOf(p)),
    update: (p, old) => {
      if (p.metadata.generation !== old.metadata.generation || p.metadata.deletionTimestamp !== old.metadata.deletionTimestamp) ctl.queue.add(keyOf(p));
    },
    delete: (p) => {
      for (const k of [...applied.keys()]) if (k.includes(`/${p.metadata.namespace}/${p.metadata.name}-`)) applied.delete(k);
    },
  });
  // Workload status changes come in bursts (a rollout): one reconcile per burst.
  const owner = (w: Workload) => {
    const ps = w.metadata.labels?.[POOLSET_LABEL];
    if (ps && w.metadata.namespace) ctl.queue.addAfter(`${w.metadata.namespace}/${ps}`, opts.statusBatchMs);
  };
  for (const inf of Object.values(informers)) inf.on({ add: owner, update: owner, delete: owner });
  pools.on({
    add: enqueueAll,
    delete: enqueueAll,
    update: (p, old) => {
      if (!jsonEqual(p.metadata.labels, old.metadata.labels) || p.metadata.deletionTimestamp !== old.metadata.deletionTimestamp) enqueueAll();
    },
  });
  return ctl;
}
