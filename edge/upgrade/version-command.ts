/**
 * `tether-edge version [--json] [--config F]`: the running build, and the previous version an
 * upgrade kept for rollback (from the install state in the upgrade directory the configuration
 * names). A configuration that cannot be read still prints the build: the version must always
 * answer.
 */
import { defineCommand } from 'citty';
import { guard } from '../../shared/cli.ts';
import { buildInfo, versionLine } from '../../shared/version.ts';
import { layoutFromFile } from '../commands/upgrade-guard.ts';
import { readState } from './install.ts';
import type { InstallLayout } from './ports.ts';

export interface VersionReport {
  version: string;
  commit: string;
  target: string;
  /** The version kept in <dir>/releases/ for a rollback, when an upgrade ran here. */
  previous?: string;
}

export function versionReport(layout: InstallLayout | undefined): VersionReport {
  const previous = layout ? readState(layout).previous : undefined;
  return { version: buildInfo.version, commit: buildInfo.commit, target: buildInfo.target, ...(previous ? { previous } : {}) };
}

export default defineCommand({
  meta: { name: 'version', description: 'Print the version of this build (--json: with the previous version kept for rollback)' },
  args: {
    json: { type: 'boolean', description: 'Print JSON: {"version","commit","target","previous"?}' },
    config: { type: 'string', alias: 'c', description: 'The agent configuration file (for the upgrade directory)', default: '/etc/tether/edge.yaml' },
  },
  run: ({ args }) =>
    guard('tether-edge', () => {
      let layout: InstallLayout | undefined;
      try {
        layout = layoutFromFile(args.config);
      } catch {
        layout = undefined; // an unreadable configuration: the build alone
      }
      const r = versionReport(layout);
      process.stdout.write(args.json ? `${JSON.stringify(r)}\n` : `${versionLine()}${r.previous ? `; previous ${r.previous}` : ''}\n`);
    }),
});
