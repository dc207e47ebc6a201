/** `tether-edge run`: the agent: caching proxy, snapshot store, admin endpoints. */
import { hostname } from 'node:os';
import { defineCommand } from 'citty';
import { configArgs, configFromArgs, guard } from '../../shared/cli.ts';
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import { createLogger } from '../../shared/log.ts';
import { buildInfo } from '../../shared/version.ts';
import { startAgent } from '../agent.ts';
import { EDGE_ENV_PREFIX, edgeConfigSchema } from '../config.ts';

const args = configArgs(edgeConfigSchema);
// A switch, so that `--upstream-via-hub --hub-urls …` does not take the next flag as its value
// (`--upstream-via-hub=false` or `--no-upstream-via-hub` turn it off over a config file's true).
args['upstream-via-hub'] = { type: 'boolean', description: (args['upstream-via-hub'] as { description?: string }).description };

export default defineCommand({
  meta: { name: 'run', description: 'Run the edge agent' },
  args,
  run: ({ args }) =>
    guard('tether-edge', async () => {
      // `--upstream-via-hub false` would leave "false" behind as a word; run takes no words.
      if (args._.length) throw new TetherError(ErrorCode.BadConfig, `run: unexpected argument ${JSON.stringify(args._[0])} (a switch takes --flag=false, not --flag false)`);
      const config = configFromArgs(edgeConfigSchema, args, process.env, EDGE_ENV_PREFIX);
      const log = createLogger({ level: config.logLevel, format: config.logFormat });
      const nodeName = config.nodeName ?? hostname();
      // An upgrade swapped the binary (or rolled it back): stop as on SIGTERM, exit 0, and systemd
      // (Restart=always) starts what is now installed.
      let restartNow: (reason: string) => void = () => {};
      const restartAsked = new Promise<string>((resolve) => (restartNow = resolve));
      const agent = await startAgent({ config, nodeName, log, upgrade: { restart: (reason) => restartNow(reason) } });
      const st = agent.status();
      log.info('tether-edge started', { version: buildInfo.version, node: nodeName, proxy: agent.proxy.address, admin: agent.admin.address, store: st.store.path });
      process.stdout.write(
        `tether-edge ${buildInfo.version}: node ${nodeName}, proxy on ${agent.proxy.url}, admin on http://${agent.admin.address}, store ${st.store.path ?? `unavailable (${st.store.problem})`}\n`,
      );
      const why = await new Promise<'signal' | 'restart'>((resolve) => {
        const stop = (signal: string) => {
          log.info('stopping', { signal });
          resolve('signal');
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
        void restartAsked.then((reason) => {
          log.info('stopping to restart', { reason });
          resolve('restart');
        });
      });
      await agent.close();
      // Exit now (0), whatever timers remain: for a restart, so systemd starts the new binary at once;
      // for a stop, so that a trial being settled (settleTrial polls until its deadline) does not
      // outlive the agent and judge a closed proxy unhealthy. The next start's guard takes it up.
      log.info(why === 'restart' ? 'stopped; exiting to be restarted' : 'stopped');
      process.exit(0);
    }),
});
