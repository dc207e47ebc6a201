/**
 * PoolSet (namespaced): one Deployment or StatefulSet per selected NodePool, named
 * `<poolset>-<pool>`, pinned to the pool's nodes, with per-pool tweaks. The order tweaks are
 * applied in, and what happens when two touch the same field, is in docs/controllers.md
 * ("PoolSet tweaks") and implemented in cloud/controllers/pool-set/render.ts.
 */
import { z } from 'zod';
import { annotationMap, dnsLabelName, patterned, conditionSchema, labelMap, labelSelectorSchema, objectMetaSchema, withRules, type Rule } from './_schema.ts';

const preserve = { 'x-kubernetes-preserve-unknown-fields': true };

const poolNames = (max: number) => z.array(dnsLabelName).max(max);

/** JSON pointer (RFC 6901) into the generated workload, e.g. /spec/template/spec/containers/0/env/- */
const jsonPointer = patterned(1024, '^(/([^~/]|~[01])*)+$', 'must be a JSON pointer such as /spec/template/spec/containers/0/env/-');

export const patchSchema = withRules(
  z.object({
    op: z.enum(['add', 'replace', 'remove']).describe('JSON patch operation: add, replace or remove'),
    path: jsonPointer.describe('JSON pointer into the generated workload'),
    value: z.unknown().meta(preserve).optional().describe('Value for add and replace; strings may contain {{pool}}'),
  }),
  // CEL cannot see `value` (it preserves unknown fields), so the controller checks this rule.
  [{ check: (p) => p.op === 'remove' || p.value !== undefined, message: 'add and replace patches need a value' }],
);

export const tweakSchema = withRules(
  z.object({
    pools: poolNames(200).optional().describe('Pools this tweak applies to'),
    poolSelector: labelSelectorSchema.optional().describe('Pools (by NodePool labels) this tweak applies to'),
    replicas: z.number().int().min(0).max(1_000_000).optional().describe('Replicas of the workload in these pools'),
    containerImages: z
      .array(z.object({ name: z.string().min(1).max(253).describe('Container name'), image: z.string().min(1).max(1024).describe('Image to use') }))
      .max(64)
      .optional()
      .describe('Container images by container name (containers and initContainers)'),
    patches: z.array(patchSchema).max(64).optional().describe('JSON patches applied to the workload, in order'),
  }),
  [
    {
      cel: 'has(self.pools) || has(self.poolSelector)',
      check: (t) => t.pools !== undefined || t.poolSelector !== undefined,
      message: 'a tweak names its pools (pools) or selects them (poolSelector)',
    },
    {
      cel: 'has(self.replicas) || has(self.containerImages) || has(self.patches)',
      check: (t) => t.replicas !== undefined || t.containerImages !== undefined || t.patches !== undefined,
      message: 'a tweak must change something: replicas, containerImages or patches',
    },
  ],
);

const workloadSpec = z
  .looseObject({
    template: z.looseObject({}).meta(preserve).describe('Pod template'),
  })
  .meta(preserve)
  .describe('Deployment or StatefulSet spec; selector and nodeSelector are completed per pool');

export const workloadTemplateSchema = z
  .object({
    kind: z.enum(['Deployment', 'StatefulSet']).describe('Deployment or StatefulSet'),
    metadata: z
      .object({
        labels: labelMap('Labels of every generated workload').optional(),
        annotations: annotationMap('Annotations of every generated workload').optional(),
      })
      .optional(),
    spec: workloadSpec,
  })
  .describe('The workload created in every selected pool');

const selectsPools: Rule<{ pools?: string[] | undefined; poolSelector?: unknown }> = {
  cel: 'has(self.pools) || has(self.poolSelector)',
  check: (s) => s.pools !== undefined || s.poolSelector !== undefined,
  message: 'a PoolSet names its pools (pools) or selects them (poolSelector), or both',
};

export const poolSetSpecSchema = withRules(
  z.object({
    workload: workloadTemplateSchema,
    pools: poolNames(1000).optional().describe('Pools to run in, by name'),
    poolSelector: labelSelectorSchema.optional().describe('Pools to run in, by NodePool labels (added to pools)'),
    tweaks: z.array(tweakSchema).max(32).optional().describe('Per-pool changes, applied in order; overlapping changes are refused'),
  }),
  [selectsPools],
);

export const poolStatusSchema = z.object({
  name: z.string().describe('Pool name'),
  workload: z.string().describe('Name of the workload in this pool'),
  desired: z.number().int().min(0).describe('Replicas wanted'),
  ready: z.number().int().min(0).describe('Ready replicas'),
  updated: z.number().int().min(0).describe('Replicas of the current template'),
  available: z.number().int().min(0).optional().describe('Available replicas'),
});

export const poolSetStatusSchema = z.object({
  observedGeneration: z.number().int().min(0).optional().describe('Generation of the spec last reconciled'),
  poolCount: z.number().int().min(0).optional().describe('Pools with a workload'),
  replicas: z.number().int().min(0).optional().describe('Replicas wanted, all pools'),
  readyReplicas: z.number().int().min(0).optional().describe('Ready replicas, all pools'),
  updatedReplicas: z.number().int().min(0).optional().describe('Replicas of the current template, all pools'),
  pools: z.array(poolStatusSchema).optional().describe('Per pool, sorted by name'),
  conditions: z.array(conditionSchema).optional().describe('TweaksValid, PoolsFound, Ready'),
});

export const poolSetSchema = z.object({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: objectMetaSchema,
  spec: poolSetSpecSchema,
  status: poolSetStatusSchema.optional(),
});

export type PoolSet = z.output<typeof poolSetSchema>;
export type PoolSetSpec = z.output<typeof poolSetSpecSchema>;
export type PoolSetStatus = z.output<typeof poolSetStatusSchema>;
export type Tweak = z.output<typeof tweakSchema>;
export type WorkloadPatch = z.output<typeof patchSchema>;
export type PoolStatus = z.output<typeof poolStatusSchema>;
