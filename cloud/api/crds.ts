/**
 * The CustomResourceDefinitions of apps.tether.dev, built from the zod schemas (the one source of
 * truth). `generate.ts` writes them to deploy/crds/ and checks the committed files are current.
 */
import { z } from 'zod';
import { edgeUpgradeSchema } from './edge-upgrade.ts';
import { GROUP, VERSION } from './keys.ts';
import { nodePoolSchema } from './node-pool.ts';
import { poolSetSchema } from './pool-set.ts';
import { toStructural, type JsonSchema } from './structural.ts';

interface Names {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
}

interface Column {
  name: string;
  type: 'string' | 'integer' | 'date';
  jsonPath: string;
  description: string;
  priority?: number;
}

function rootSchema(schema: z.ZodType, description: string): JsonSchema {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'throw', cycles: 'throw', reused: 'inline' }) as JsonSchema;
  // apiVersion, kind and metadata are the apiserver's: a CRD may not constrain metadata beyond name.
  const { metadata: _m, apiVersion: _a, kind: _k, ...own } = json.properties as Record<string, JsonSchema>;
  const s = toStructural({ ...json, properties: own, required: ['spec'] });
  const props = s.properties as Record<string, JsonSchema>;
  return {
    description,
    ...s,
    properties: {
      apiVersion: { type: 'string', description: 'APIVersion of the object' },
      kind: { type: 'string', description: 'Kind of the object' },
      metadata: { type: 'object' },
      spec: props.spec,
      status: props.status,
    },
  };
}

function crd(names: Names, scope: 'Cluster' | 'Namespaced', schema: JsonSchema, columns: Column[]) {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${names.plural}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'tether' } },
    spec: {
      group: GROUP,
      scope,
      names: { ...names, listKind: `${names.kind}List`, categories: ['tether'] },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            ...columns,
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Time since creation' },
          ],
          schema: { openAPIV3Schema: schema },
        },
      ],
    },
  };
}

export function nodePoolCrd() {
  return crd(
    { kind: 'NodePool', plural: 'nodepools', singular: 'nodepool', shortNames: ['np'] },
    'Cluster',
    rootSchema(nodePoolSchema, 'NodePool groups nodes (label apps.tether.dev/pool=<name>) and applies labels, annotations and taints to them'),
    [
      { name: 'Type', type: 'string', jsonPath: '.spec.type', description: 'Edge or Cloud' },
      { name: 'Ready', type: 'integer', jsonPath: '.status.readyNodeNum', description: 'Ready member nodes' },
      { name: 'NotReady', type: 'integer', jsonPath: '.status.unreadyNodeNum', description: 'Member nodes not Ready' },
    ],
  );
}

export function poolSetCrd() {
  return crd(
    { kind: 'PoolSet', plural: 'poolsets', singular: 'poolset', shortNames: ['ps'] },
    'Namespaced',
    rootSchema(poolSetSchema, 'PoolSet runs one Deployment or StatefulSet per selected NodePool, with per-pool tweaks'),
    [
      { name: 'Kind', type: 'string', jsonPath: '.spec.workload.kind', description: 'Deployment or StatefulSet' },
      { name: 'Pools', type: 'integer', jsonPath: '.status.poolCount', description: 'Pools with a workload' },
      { name: 'Desired', type: 'integer', jsonPath: '.status.replicas', description: 'Replicas wanted, all pools' },
      { name: 'Ready', type: 'integer', jsonPath: '.status.readyReplicas', description: 'Ready replicas, all pools' },
      { name: 'Updated', type: 'integer', jsonPath: '.status.updatedReplicas', description: 'Replicas of the current template' },
    ],
  );
}

export function edgeUpgradeCrd() {
  return crd(
    { kind: 'EdgeUpgrade', plural: 'edgeupgrades', singular: 'edgeupgrade', shortNames: ['eu'] },
    'Cluster',
    rootSchema(edgeUpgradeSchema, 'EdgeUpgrade rolls tether-edge out to a version, pool by pool, a few nodes at a time'),
    [
      { name: 'Version', type: 'string', jsonPath: '.spec.version', description: 'Version rolled out' },
      { name: 'Updated', type: 'string', jsonPath: '.status.progress', description: 'Nodes updated / nodes of the listed pools' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Pending, Progressing, Paused, Complete or Failed' },
      { name: 'Message', type: 'string', jsonPath: '.status.message', description: 'What the rollout does or waits for, or why it failed', priority: 1 },
    ],
  );
}

/** File name under deploy/crds/ → CRD object. */
export function allCrds(): Record<string, unknown> {
  return {
    [`${GROUP}_nodepools.yaml`]: nodePoolCrd(),
    [`${GROUP}_poolsets.yaml`]: poolSetCrd(),
    [`${GROUP}_edgeupgrades.yaml`]: edgeUpgradeCrd(),
  };
}
