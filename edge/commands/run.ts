/** `tether-edge run`: open the snapshot store and serve the admin endpoints. */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { defineCommand } from 'citty';
import { openDb } from '#store-driver';
import { createAdminApp } from '../../shared/admin.ts';
import { configArgs, configFromArgs, guard } from '../../shared/cli.ts';
import { createLogger } from '../../shared/log.ts';
import { Registry, registerProcessMetrics } from '../../shared/metrics.ts';
import { serveFetch } from '../../shared/serve.ts';
import { buildInfo } from '../../shared/version.ts';
import { EDGE_ENV_PREFIX, edgeConfigSchema } from '../config.ts';
import { createSnapshotStore } from '../store/snapshot-store.ts';

export default defineCommand({
  meta: { name: 'run', description: 'Run the edge agent' },
  args: configArgs(edgeConfigSchema),
  run: ({ args }) =>
    guard('tether-edge', async () => {
      const config = configFromArgs(edgeConfigSchema, args, process.env, EDGE_ENV_PREFIX);
      const log = createLogger({ level: config.logLevel, format: config.logFormat });
      const nodeName = config.nodeName ?? hostname();
      const db = openDb({ path: join(config.dataDir, 'tether.db') });
      const store = createSnapshotStore(db);

      const registry = new Registry();
      registerProcessMetrics(registry, buildInfo);
      registry.gauge('tether_store_objects', 'Objects in the snapshot store by resource', () =>
        Object.entries(store.counts()).map(([gvr, value]) => ({ labels: { gvr }, value })),
      );
      const admin = await serveFetch(
        createAdminApp({ registry, checks: { store: () => null } }).fetch,
        config.adminListen,
      );
      log.info('tether-edge started', { version: buildInfo.version, node: nodeName, admin: admin.address, store: db.path });
      process.stdout.write(`tether-edge ${buildInfo.version}: node ${nodeName}, admin on http://${admin.address}, store ${db.path}\n`);

      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          log.info('stopping', { signal });
          resolve();
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
      await admin.close();
      db.close();
    }),
});
