/**
 * The wire contract of over-the-air agent upgrades between tether-hub (the EdgeUpgrade
 * controller) and tether-edge (the node's upgrader): two Node annotations, one written by each
 * side, and the names of the release files. docs/install.md tells operators how it is used;
 * docs/security.md why nothing here is trusted for content (the agent checks the signature of
 * SHA256SUMS with the release key pinned at join, and every file against SHA256SUMS).
 *
 *   hub  → node   UPGRADE_TARGET_ANNOTATION   {"upgrade","uid","version","baseURL"}
 *   node → hub    UPGRADE_STATUS_ANNOTATION   {"upgrade","uid","version","phase","reason"?,…}
 *   node → hub    EDGE_VERSION_ANNOTATION     "0.2.0"  (the running version, written at start)
 */
import { z } from 'zod';

const GROUP = 'apps.tether.dev';

/** Set by the hub on a Node it puts in the current wave; removed when the rollout no longer wants it. */
export const UPGRADE_TARGET_ANNOTATION = `${GROUP}/upgrade-target`;
/** Set by the node's agent: where its upgrade to the target stands. */
export const UPGRADE_STATUS_ANNOTATION = `${GROUP}/upgrade-status`;
/** Set by the node's agent at start: the version of tether-edge that runs. */
export const EDGE_VERSION_ANNOTATION = `${GROUP}/edge-version`;

/** Release files the agent fetches from `baseURL` (scripts/build.ts writes them). */
export const RELEASE_FILES = {
  sums: 'SHA256SUMS',
  signature: 'SHA256SUMS.sig',
  /** A one-line file holding the release's version, listed in SHA256SUMS: binds the signature to a version. */
  version: 'VERSION',
} as const;

/** The binary a node runs, e.g. `tether-edge-linux-x64-musl` (as scripts/build.ts names it). */
export function edgeArtifactName(target: string): string {
  return `tether-edge-${target.replace(/^bun-/, '')}`;
}

export const upgradeTargetSchema = z.strictObject({
  /** The EdgeUpgrade's name and uid: a new object with the same name is a new rollout. */
  upgrade: z.string().min(1),
  uid: z.string().min(1),
  version: z.string().min(1),
  /** Where the release files are, e.g. https://releases.example.com/tether/0.2.0 (no trailing slash). */
  baseURL: z.url({ protocol: /^https?$/ }),
});
export type UpgradeTarget = z.infer<typeof upgradeTargetSchema>;

/**
 * Phases the agent reports, in order; Healthy, Failed and RolledBack are final for a (uid, version).
 * - Downloading, Verifying: files are fetched and checked; nothing is swapped yet.
 * - Restarting: the binary was swapped and the agent restarts into it.
 * - Healthy: the new version runs and passed its health check within the deadline (committed).
 * - Failed: refused before any swap (bad signature, checksum mismatch, downgrade, download error
 *   after retries); `reason` says which. The old binary keeps running.
 * - RolledBack: the new version did not become healthy in time (or did not start); the previous
 *   binary was put back by itself; `reason` says why.
 */
export const UPGRADE_PHASES = ['Downloading', 'Verifying', 'Restarting', 'Healthy', 'Failed', 'RolledBack'] as const;
export type UpgradePhase = (typeof UPGRADE_PHASES)[number];
export const FINAL_PHASES: ReadonlySet<UpgradePhase> = new Set(['Healthy', 'Failed', 'RolledBack']);

export const upgradeStatusSchema = z.strictObject({
  upgrade: z.string().min(1),
  uid: z.string().min(1),
  /** The target version this status is about. */
  version: z.string().min(1),
  phase: z.enum(UPGRADE_PHASES),
  /** Readable cause for Failed and RolledBack (e.g. "SHA256SUMS.sig does not verify with the pinned release key"). */
  reason: z.string().optional(),
  /** The version that ran before (set from Restarting on). */
  previous: z.string().optional(),
  /** RFC 3339 time of this report. */
  time: z.string(),
});
export type UpgradeStatus = z.infer<typeof upgradeStatusSchema>;

/** Parses an annotation value; undefined when absent or malformed (a malformed target is ignored and logged by the caller). */
export function parseAnnotation<T>(schema: z.ZodType<T>, value: string | undefined): T | undefined {
  if (value === undefined) return undefined;
  try {
    const r = schema.safeParse(JSON.parse(value));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}
