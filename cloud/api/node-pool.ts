/**
 * NodePool (cluster-scoped): a group of nodes, usually one edge site. A node is a member when it
 * carries the label `apps.tether.dev/pool=<pool name>`. The pool's labels, annotations and taints
 * are merged into its members by the NodePool controller; status lists the members and counts.
 */
import { z } from 'zod';
import { AUTONOMY_ANNOTATION } from './keys.ts';
import { annotationMap, conditionSchema, labelMap, objectMetaSchema, taintSchema, withRules, type Rule } from './_schema.ts';

type Taint = z.infer<typeof taintSchema>;

const uniqueTaints: Rule<Taint[]> = {
  cel: 'self.all(t, self.exists_one(u, u.key == t.key && u.effect == t.effect))',
  check: (ts) => ts.every((t) => ts.filter((u) => u.key === t.key && u.effect === t.effect).length === 1),
  message: 'taints must be unique by key and effect',
};

export const nodePoolSpecSchema = z
  .object({
    type: z.enum(['Edge', 'Cloud']).default('Edge').describe('Edge (nodes behind a WAN link) or Cloud'),
    labels: labelMap('Labels merged into every member node').optional(),
    annotations: annotationMap('Annotations merged into every member node', [AUTONOMY_ANNOTATION]).optional(),
    taints: withRules(z.array(taintSchema).max(32).describe('Taints merged into every member node'), [uniqueTaints]).optional(),
  })
  .describe('What the pool applies to its member nodes');

export const nodePoolStatusSchema = z
  .object({
    nodes: z.array(z.string()).optional().describe('Names of the member nodes, sorted'),
    readyNodeNum: z.number().int().min(0).optional().describe('Members whose Ready condition is True'),
    unreadyNodeNum: z.number().int().min(0).optional().describe('Members whose Ready condition is not True'),
    observedGeneration: z.number().int().min(0).optional().describe('Generation of the spec last applied'),
    conditions: z.array(conditionSchema).optional().describe('Applied: every member carries the pool labels, annotations and taints'),
  })
  .describe('Observed state of the pool');

const poolName: Rule<{ metadata: { name: string } }> = {
  cel: "self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
  check: (o) => o.metadata.name.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(o.metadata.name),
  message: 'a NodePool name must be a DNS label (up to 63 lower-case letters, digits and "-"): it is used as a label value',
};

export const nodePoolSchema = withRules(
  z.object({
    apiVersion: z.string().optional(),
    kind: z.string().optional(),
    metadata: objectMetaSchema,
    spec: nodePoolSpecSchema.prefault({}),
    status: nodePoolStatusSchema.optional(),
  }),
  [poolName],
);

export type NodePool = z.output<typeof nodePoolSchema>;
export type NodePoolSpec = z.output<typeof nodePoolSpecSchema>;
export type NodePoolStatus = z.output<typeof nodePoolStatusSchema>;
