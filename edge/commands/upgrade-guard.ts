/**
 * `tether-edge upgrade guard --config F`: systemd's ExecStartPre, run by the known-good binary
 * (<dataDir>/upgrade/known-good) before every start of the agent. During the trial of a new
 * version it counts starts and rolls back after three or past the deadline (edge/upgrade/install.ts).
 *
 * It reads only dataDir and upgrade.{binary,dir} from the file, without the agent's strict schema:
 * the known-good binary may be older than the configuration, and a key it does not know must not
 * stop the one program that can roll a crashing new version back.
 */
import { readFileSync } from 'node:fs';
import { defineCommand } from 'citty';
import { parse as parseYaml } from 'yaml';
import { guard as cliGuard } from '../../shared/cli.ts';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import { createLogger } from '../../shared/log.ts';
import { type InstallConfig, guard, installLayout } from '../upgrade/install.ts';

const DEFAULT_CONFIG = '/etc/tether/edge.yaml';

/** The install layout named by a configuration file; a missing file means the defaults. */
export function layoutFromFile(path: string): ReturnType<typeof installLayout> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return installLayout({ dataDir: '/var/lib/tether' });
    throw new TetherError(ErrorCode.BadConfig, `upgrade guard: read ${path}: ${messageOf(e)}`, { cause: e });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new TetherError(ErrorCode.BadConfig, `upgrade guard: parse ${path}: ${messageOf(e)}`, { cause: e });
  }
  const d = (doc && typeof doc === 'object' ? doc : {}) as Record<string, unknown>;
  const str = (v: unknown, key: string): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') throw new TetherError(ErrorCode.BadConfig, `upgrade guard: ${path}: ${key} must be a non-empty string`);
    return v;
  };
  const up = d.upgrade && typeof d.upgrade === 'object' ? (d.upgrade as Record<string, unknown>) : {};
  const config: InstallConfig = { dataDir: str(d.dataDir, 'dataDir') ?? '/var/lib/tether', upgrade: { binary: str(up.binary, 'upgrade.binary'), dir: str(up.dir, 'upgrade.dir') } };
  return installLayout(config);
}

const guardCommand = defineCommand({
  meta: { name: 'guard', description: 'ExecStartPre of tether-edge.service: count starts of a trial version, roll it back after 3 or past its deadline' },
  args: {
    config: { type: 'string', alias: 'c', description: 'The agent configuration file', default: DEFAULT_CONFIG },
  },
  run: ({ args }) =>
    cliGuard('tether-edge', async () => {
      const log = createLogger({ level: 'info', format: 'text' });
      const layout = { ...layoutFromFile(args.config), log };
      const r = await guard(layout);
      if (r !== 'none') process.stdout.write(`tether-edge upgrade guard: ${r === 'counted' ? 'trial start counted' : `rolled back; ${layout.binary} is the previous version again`}\n`);
    }),
});

export default defineCommand({
  meta: { name: 'upgrade', description: 'Over-the-air upgrade helpers run by systemd' },
  subCommands: { guard: guardCommand },
});
