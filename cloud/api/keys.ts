/**
 * Names of the apps.tether.dev API: the group and version of the CRDs, and the label and
 * annotation keys the controllers read and write on other objects. The edge filter keeps its own
 * copy of the two keys it needs (shared/ never imports cloud/); shared/topology/keys.ts says so.
 */
export const GROUP = 'apps.tether.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** Node label naming the NodePool a node belongs to (set by the operator or the join flow). */
export const POOL_LABEL = `${GROUP}/pool`;
/** Node annotation recording what the NodePool controller applied to the node (JSON, see node-pool/applied.ts). */
export const POOL_APPLIED_ANNOTATION = `${GROUP}/pool-applied`;
/** Node annotation: how long pods stay bound when the node is unreachable (Go duration, `0` = forever). */
export const AUTONOMY_ANNOTATION = `${GROUP}/autonomy-duration`;
/** Pod annotation recording the tolerations the autonomy controller changed, to restore them. */
export const AUTONOMY_ORIGINAL_ANNOTATION = `${GROUP}/original-tolerations`;
/** Labels on workloads a PoolSet owns (and on their pod templates and selectors). */
export const POOLSET_LABEL = `${GROUP}/poolset`;
export const POOLSET_POOL_LABEL = POOL_LABEL;
/** Annotation on a PoolSet workload: hash of the desired object last applied. */
export const POOLSET_HASH_ANNOTATION = `${GROUP}/desired-hash`;
/** Service annotation choosing the topology filter of tether-edge. */
export const TOPOLOGY_ANNOTATION = `${GROUP}/topology`;
export const TOPOLOGY_HOSTNAME = 'kubernetes.io/hostname';
export const TOPOLOGY_POOL = POOL_LABEL;

/** Field manager name of every write the hub makes. */
export const FIELD_MANAGER = 'tether-hub';

/**
 * Node annotations of over-the-air upgrades: the hub's target, the agent's status and running
 * version. Defined by the hub↔agent contract in shared/upgrade/contract.ts (re-exported here so
 * the cloud side finds every apps.tether.dev key in one place).
 */
export { EDGE_VERSION_ANNOTATION, UPGRADE_STATUS_ANNOTATION, UPGRADE_TARGET_ANNOTATION } from '../../shared/upgrade/contract.ts';
