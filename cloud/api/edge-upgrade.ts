/**
 * EdgeUpgrade (cluster-scoped): one over-the-air rollout of tether-edge to `version`, from the
 * release files at `baseURL`, through NodePools in the order listed, `maxUnavailable` nodes at a
 * time with `pauseSeconds` between pools. The EdgeUpgrade controller sets the target annotation
 * of shared/upgrade/contract.ts on the nodes of the current wave and follows what they report;
 * docs/controllers.md ("EdgeUpgrade") has the algorithm and why this is an object of its own
 * rather than a NodePool field.
 */
import { z } from 'zod';
import { UPGRADE_PHASES } from '../../shared/upgrade/contract.ts';
import { conditionSchema, dnsLabelName, objectMetaSchema, patterned, withRules, type Rule } from './_schema.ts';

/** As scripts/build.ts accepts for --version: it names a directory on the node and is compared by the agent. */
export const RELEASE_VERSION = '^[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?$';

const releaseVersion = patterned(64, RELEASE_VERSION, 'must be a release version such as 1.2.3 or 1.2.3-rc.1');

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'https:' || u.protocol === 'http:') && u.hostname !== '' && !s.includes('?') && !s.includes('#');
  } catch {
    return false;
  }
}

// The agent appends `/<file>` to baseURL, so a query or fragment would end up in the wrong place.
const baseURL = withRules(z.string().min(1).max(2048), [
  {
    cel: "isURL(self) && (url(self).getScheme() == 'https' || url(self).getScheme() == 'http') && url(self).getHostname() != '' && !self.contains('?') && !self.contains('#')",
    check: isHttpUrl,
    message: 'must be an http(s) URL with a host and no query or fragment, e.g. https://releases.example.com/tether/0.2.0',
  },
]);

const uniquePools: Rule<string[]> = {
  cel: 'self.all(p, self.exists_one(q, q == p))',
  check: (ps) => new Set(ps).size === ps.length,
  message: 'pools must be listed once each',
};

const httpsUnlessInsecure: Rule<{ baseURL: string; insecure: boolean }> = {
  cel: "self.baseURL.startsWith('https://') || (self.insecure && self.baseURL.startsWith('http://'))",
  check: (s) => s.baseURL.startsWith('https://') || (s.insecure && s.baseURL.startsWith('http://')),
  message: 'baseURL must be https (http only with insecure: true)',
  field: 'baseURL',
};

const IMMUTABLE_MESSAGE = 'version, baseURL, insecure and pools cannot change: create a new EdgeUpgrade (the nodes check each rollout by its uid)';

/**
 * A CEL transition rule (old and new object) the apiserver enforces on updates; zod never sees an
 * old object, so it has no TypeScript twin. Added to the CEL rules `withRules` put on the schema.
 */
function immutableFields<S extends z.ZodType>(schema: S, fields: string[], message: string): S {
  const meta = (schema.meta() ?? {}) as { 'x-kubernetes-validations'?: unknown[] };
  const rule = fields.map((f) => `self.${f} == oldSelf.${f}`).join(' && ');
  return schema.meta({ ...meta, 'x-kubernetes-validations': [...(meta['x-kubernetes-validations'] ?? []), { rule, message }] }) as S;
}

export const edgeUpgradeSpecSchema = immutableFields(
  withRules(
    z
      .object({
        version: releaseVersion.describe('The tether-edge version to run, as in the release file VERSION (e.g. 0.2.0)'),
        baseURL: baseURL.describe('Where the release files are (SHA256SUMS, SHA256SUMS.sig, VERSION, the binaries); https unless insecure'),
        insecure: z.boolean().default(false).describe('Allow an http baseURL (the files are still checked against the pinned release key)'),
        pools: withRules(z.array(dnsLabelName).min(1).max(100), [uniquePools]).describe('NodePools to upgrade, in this order'),
        maxUnavailable: z.number().int().min(1).max(10_000).default(1).describe('Nodes of a pool upgrading at the same time'),
        pauseSeconds: z.number().int().min(0).max(604_800).default(0).describe('Wait between one pool done and the next one started'),
        nodeTimeoutSeconds: z
          .number()
          .int()
          .min(1)
          .max(604_800)
          .default(900)
          .describe('A node that neither reports Healthy nor fails this long after it was targeted counts as failed'),
      })
      .describe('What to roll out, where, and how fast'),
    [httpsUnlessInsecure],
  ),
  ['version', 'baseURL', 'insecure', 'pools'],
  IMMUTABLE_MESSAGE,
);

export const EDGE_UPGRADE_PHASES = ['Pending', 'Progressing', 'Paused', 'Complete', 'Failed'] as const;
export type EdgeUpgradePhase = (typeof EDGE_UPGRADE_PHASES)[number];
/** Phases a rollout never leaves (a retry is a new object). */
export const TERMINAL_PHASES: ReadonlySet<string> = new Set(['Complete', 'Failed']);

/** A node's phase in the status: what it reported for this rollout (contract), or Waiting. */
export const NODE_UPGRADE_PHASES = ['Waiting', ...UPGRADE_PHASES] as const;

export const nodeUpgradeStatusSchema = z.object({
  name: z.string().describe('Node name'),
  pool: z.string().describe('NodePool of the node'),
  phase: z.enum(NODE_UPGRADE_PHASES).describe('Waiting (not targeted, or no report yet), or what the node reported for this rollout'),
  version: z.string().optional().describe('The tether-edge version the node runs (its apps.tether.dev/edge-version annotation)'),
  reason: z.string().max(4096).optional().describe('Why the node failed, rolled back or is waiting'),
  targetedAt: z.string().optional().describe('When the hub set the target on the node (RFC 3339); the node timeout counts from here'),
});

export const edgeUpgradeStatusSchema = z
  .object({
    phase: z.enum(EDGE_UPGRADE_PHASES).optional().describe('Pending, Progressing, Paused, Complete or Failed'),
    updated: z.number().int().min(0).optional().describe('Nodes of the listed pools that run the version'),
    total: z.number().int().min(0).optional().describe('Nodes of the listed pools'),
    progress: z.string().optional().describe('updated/total, for kubectl get'),
    currentPool: z.string().optional().describe('The pool being upgraded (while Paused: the next one)'),
    pausedUntil: z.string().optional().describe('While Paused: when the next pool starts (RFC 3339)'),
    message: z.string().max(32768).optional().describe('What the rollout does or waits for, or why it failed'),
    observedGeneration: z.number().int().min(0).optional().describe('Generation of the spec last reconciled'),
    nodes: z.array(nodeUpgradeStatusSchema).max(10_000).optional().describe('Every node of the listed pools, in rollout order'),
    conditions: z.array(conditionSchema).optional().describe('Complete and Failed'),
  })
  .describe('Where the rollout stands');

export const edgeUpgradeSchema = z.object({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: objectMetaSchema,
  spec: edgeUpgradeSpecSchema,
  status: edgeUpgradeStatusSchema.optional(),
});

export type EdgeUpgrade = z.output<typeof edgeUpgradeSchema>;
export type EdgeUpgradeSpec = z.output<typeof edgeUpgradeSpecSchema>;
export type EdgeUpgradeStatus = z.output<typeof edgeUpgradeStatusSchema>;
export type NodeUpgradeStatus = z.output<typeof nodeUpgradeStatusSchema>;
