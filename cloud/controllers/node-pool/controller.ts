/**
 * The NodePool controllers.
 *   node-pool-members (key: node name): brings one node in line with the pool its label names
 *     (applied.ts), or takes off what a pool put there when it is in none.
 *   node-pool-status (key: pool name): writes the pool's status — member nodes, ready and
 *     not-ready counts, and the Applied condition (every member carries the pool's entries).
 * Triggers: a node's labels/annotations/taints or pool label changing, its Ready condition
 * flipping; a pool created, deleted or its spec changed (generation) re-queues its members.
 */
import { messageOf } from '../../../shared/errors.ts';
import { API_VERSION, POOL_LABEL } from '../../api/keys.ts';
import { nodePoolSchema, type NodePool } from '../../api/node-pool.ts';
import { jsonEqual, setCondition } from '../conditions.ts';
import type { ControllerContext } from '../context.ts';
import type { Node } from '../kube-types.ts';
import { createController, type Controller } from '../runner.ts';
import { isApplied, nodePatch, type Desired } from './applied.ts';

const readyOf = (n: Node) => n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
const poolOf = (n: Node | undefined) => n?.metadata.labels?.[POOL_LABEL];

export interface NodePoolOptions {
  /** Status updates caused by member changes wait this long, so a burst makes one write. */
  statusBatchMs: number;
}

export function createNodePoolControllers(ctx: ControllerContext, opts: NodePoolOptions): Controller[] {
  const nodes = ctx.informers.nodes();
  const pools = ctx.informers.nodePools();
  const log = ctx.log.child({ controller: 'node-pool' });
  const members = new Map<string, Set<string>>();
  const invalid = new Set<string>();

  const desiredFor = (poolName: string | undefined): Desired | undefined | 'invalid' => {
    if (!poolName) return undefined;
    const pool = pools.get(poolName);
    if (!pool || pool.metadata.deletionTimestamp) return undefined;
    const parsed = nodePoolSchema.safeParse(pool);
    if (!parsed.success) {
      if (!invalid.has(poolName)) log.warn('NodePool does not pass its schema; its members are left as they are', { pool: poolName, error: messageOf(parsed.error) });
      invalid.add(poolName);
      return 'invalid';
    }
    invalid.delete(poolName);
    return { pool: poolName, spec: parsed.data.spec };
  };

  const memberCtl = createController(
    'node-pool-members',
    [nodes, pools],
    async (name) => {
      const node = nodes.get(name);
      if (!node) return;
      const desired = desiredFor(poolOf(node));
      if (desired === 'invalid') return;
      const patch = nodePatch(node, desired);
      if (!patch) return;
      await ctx.api.mergePatch(`/api/v1/nodes/${encodeURIComponent(name)}`, patch);
      log.info('node updated for its pool', { node: name, pool: desired?.pool ?? null });
    },
    ctx.queue,
  );

  const statusCtl = createController(
    'node-pool-status',
    [nodes, pools],
    async (name) => {
      const pool = pools.get(name);
      if (!pool || pool.metadata.deletionTimestamp) return;
      const desired = desiredFor(name);
      const names = [...(members.get(name) ?? [])].sort();
      const memberNodes = names.map((n) => nodes.get(n)).filter((n): n is Node => n !== undefined);
      const ready = memberNodes.filter(readyOf).length;
      const pending = desired && desired !== 'invalid' ? memberNodes.filter((n) => !isApplied(n, name, desired.spec)).map((n) => n.metadata.name) : [];
      const generation = pool.metadata.generation ?? 0;
      const applied =
        desired === 'invalid'
          ? { type: 'Applied', status: 'False' as const, reason: 'InvalidSpec', message: 'the spec does not pass the NodePool schema', observedGeneration: generation }
          : pending.length
            ? {
                type: 'Applied',
                status: 'False' as const,
                reason: 'Pending',
                message: `not yet applied to ${pending.length} node(s): ${pending.slice(0, 5).join(', ')}${pending.length > 5 ? ', …' : ''}`,
                observedGeneration: generation,
              }
            : { type: 'Applied', status: 'True' as const, reason: 'AllMembers', message: `applied to ${memberNodes.length} node(s)`, observedGeneration: generation };
      const status: NodePool['status'] = {
        nodes: names,
        readyNodeNum: ready,
        unreadyNodeNum: memberNodes.length - ready,
        observedGeneration: generation,
        conditions: setCondition(pool.status?.conditions, applied, ctx.now()),
      };
      if (jsonEqual(status, pool.status)) return;
      await ctx.api.mergePatch(`/apis/${API_VERSION}/nodepools/${encodeURIComponent(name)}/status`, { status });
    },
    ctx.queue,
  );

  const join = (pool: string | undefined, node: string) => {
    if (!pool) return;
    let s = members.get(pool);
    if (!s) members.set(pool, (s = new Set()));
    s.add(node);
  };
  const leave = (pool: string | undefined, node: string) => {
    if (!pool) return;
    members.get(pool)?.delete(node);
    if (members.get(pool)?.size === 0) members.delete(pool);
  };
  // Member changes come in bursts (a site joining): one status write per burst.
  const status = (pool: string | undefined) => pool && statusCtl.queue.addAfter(pool, opts.statusBatchMs);
  const relevant = (n: Node) => JSON.stringify([n.metadata.labels, n.metadata.annotations, n.spec?.taints]);

  nodes.on({
    add(n) {
      join(poolOf(n), n.metadata.name);
      memberCtl.queue.add(n.metadata.name);
      status(poolOf(n));
    },
    update(n, old) {
      const [p, q] = [poolOf(n), poolOf(old)];
      if (p !== q) {
        leave(q, n.metadata.name);
        join(p, n.metadata.name);
        status(q);
      }
      if (p !== q || relevant(n) !== relevant(old)) {
        memberCtl.queue.add(n.metadata.name);
        status(p);
      } else if (readyOf(n) !== readyOf(old)) status(p);
    },
    delete(n) {
      leave(poolOf(n), n.metadata.name);
      status(poolOf(n));
    },
  });
  const requeueMembers = (pool: string) => {
    for (const n of members.get(pool) ?? []) memberCtl.queue.add(n);
  };
  pools.on({
    add(p) {
      requeueMembers(p.metadata.name);
      statusCtl.queue.add(p.metadata.name);
    },
    update(p, old) {
      if (p.metadata.generation !== old.metadata.generation || p.metadata.deletionTimestamp !== old.metadata.deletionTimestamp) {
        requeueMembers(p.metadata.name);
        statusCtl.queue.add(p.metadata.name);
      }
    },
    delete(p) {
      requeueMembers(p.metadata.name);
    },
  });

  return [memberCtl, statusCtl];
}
