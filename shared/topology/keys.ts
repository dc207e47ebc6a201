/**
 * The names the topology filter reads. They belong to the apps.tether.dev API defined in
 * cloud/api/keys.ts; shared/ never imports cloud/, so the few strings it needs are repeated here
 * (test/pools-api.e2e.test.ts checks both copies agree).
 */
export const TOPOLOGY_ANNOTATION = 'apps.tether.dev/topology';
export const TOPOLOGY_HOSTNAME = 'kubernetes.io/hostname';
export const TOPOLOGY_POOL = 'apps.tether.dev/pool';
/** Label linking an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
