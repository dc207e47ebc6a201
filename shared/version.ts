/**
 * Build information. The release build (scripts/build.ts) bakes these in with `--define`;
 * when running from source they fall back to the package version and "dev".
 */
declare const TETHER_VERSION: string | undefined;
declare const TETHER_COMMIT: string | undefined;
declare const TETHER_TARGET: string | undefined;

import pkg from '../package.json' with { type: 'json' };

export const buildInfo = {
  version: typeof TETHER_VERSION === 'string' ? TETHER_VERSION : pkg.version,
  commit: typeof TETHER_COMMIT === 'string' ? TETHER_COMMIT : 'dev',
  target: typeof TETHER_TARGET === 'string' ? TETHER_TARGET : `source-${process.platform}-${process.arch}`,
};

/** "0.1.0 (commit 1a2b3c4, bun-linux-arm64)" */
export function versionLine(): string {
  return `${buildInfo.version} (commit ${buildInfo.commit}, ${buildInfo.target})`;
}
