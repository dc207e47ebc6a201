/**
 * The controllers' section of tether-hub's configuration (merged into cloud/config.ts as
 * `controllers`). Every field has a default and a description.
 */
import { z } from 'zod';

const seconds = (d: number, what: string) => z.number().positive().default(d).describe(what);

export const controllersConfigSchema = z.strictObject({
  enabled: z.boolean().default(true).describe('Run the controllers (node pools, pool sets, autonomy, CSR approval, edge upgrades)'),
  nodePools: z.boolean().default(true).describe('Run the NodePool controller'),
  poolSets: z.boolean().default(true).describe('Run the PoolSet controller'),
  autonomy: z.boolean().default(true).describe('Run the autonomy controller (pod eviction tolerations)'),
  csrApproval: z.boolean().default(true).describe('Run the CSR approver for node client certificates'),
  edgeUpgrades: z.boolean().default(true).describe('Run the EdgeUpgrade controller (over-the-air upgrades of tether-edge, pool by pool)'),
  leaseNamespace: z
    .string()
    .min(1)
    .default('tether-system')
    .describe("Namespace of the controllers' Lease (deploy/ sets the hub's own namespace)"),
  leaseName: z.string().min(1).default('tether-hub-controllers').describe('Lease that elects the replica running the controllers'),
  leaseDurationSeconds: seconds(15, 'How long a leader holds the lease without renewing'),
  renewDeadlineSeconds: seconds(10, 'How long the leader keeps trying to renew before it steps down'),
  retryPeriodSeconds: seconds(2, 'Interval of lease renewals and acquisition attempts'),
  workers: z.number().int().min(1).max(64).default(4).describe('Concurrent reconciles per controller'),
  statusBatchMs: z
    .number()
    .int()
    .min(0)
    .default(500)
    .describe('Status updates caused by member or workload changes wait this long, so a burst of changes makes one status write'),
  retryBaseMs: z.number().int().min(1).default(50).describe('First retry delay of a failed reconcile (doubles per failure)'),
  retryMaxMs: z.number().int().min(1).default(300_000).describe('Longest retry delay of a failed reconcile'),
  autonomyRestoreSeconds: z
    .number()
    .int()
    .min(0)
    .default(300)
    .describe('tolerationSeconds given, when autonomy ends, to eviction tolerations the pod did not have before (they cannot be removed)'),
  csrBootstrapSigners: z
    .array(z.enum(['kubernetes.io/kube-apiserver-client', 'kubernetes.io/kube-apiserver-client-kubelet']))
    .default(['kubernetes.io/kube-apiserver-client-kubelet'])
    .describe('Signers for which a bootstrap token may obtain a node certificate'),
  csrBootstrapGroups: z.array(z.string().min(1)).default(['system:bootstrappers']).describe('Groups whose members are bootstrap tokens'),
  csrBootstrapExistingNodes: z
    .enum(['allow', 'deny'])
    .default('deny')
    .describe(
      'Whether a bootstrap token that names no node may obtain a certificate for a node that already exists; deny: only a token from `token create --node-name <node>` re-joins an existing node',
    ),
});

export type ControllersConfig = z.output<typeof controllersConfigSchema>;
export const defaultControllersConfig: ControllersConfig = controllersConfigSchema.parse({});
