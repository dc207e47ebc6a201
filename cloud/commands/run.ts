/** `tether-hub run`: serve the admin endpoints (the tunnel server and controllers attach here). */
import { defineCommand } from 'citty';
import { createAdminApp } from '../../shared/admin.ts';
import { configArgs, configFromArgs, guard } from '../../shared/cli.ts';
import { createLogger } from '../../shared/log.ts';
import { Registry, registerProcessMetrics } from '../../shared/metrics.ts';
import { serveFetch } from '../../shared/serve.ts';
import { buildInfo } from '../../shared/version.ts';
import { HUB_ENV_PREFIX, hubConfigSchema } from '../config.ts';

export default defineCommand({
  meta: { name: 'run', description: 'Run the hub' },
  args: configArgs(hubConfigSchema),
  run: ({ args }) =>
    guard('tether-hub', async () => {
      const config = configFromArgs(hubConfigSchema, args, process.env, HUB_ENV_PREFIX);
      const log = createLogger({ level: config.logLevel, format: config.logFormat });
      const registry = new Registry();
      registerProcessMetrics(registry, buildInfo);
      const admin = await serveFetch(createAdminApp({ registry, checks: {} }).fetch, config.adminListen);
      log.info('tether-hub started', { version: buildInfo.version, admin: admin.address });
      process.stdout.write(`tether-hub ${buildInfo.version}: admin on http://${admin.address}\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
      await admin.close();
    }),
});
