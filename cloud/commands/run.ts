/** `tether-hub run`: the tunnel hub (agents' wss listener, CONNECT endpoint), the controllers and the admin endpoints. */
import { defineCommand } from 'citty';
import { createAdminApp } from '../../shared/admin.ts';
import { configArgs, configFromArgs, guard } from '../../shared/cli.ts';
import { createLogger } from '../../shared/log.ts';
import { Registry, registerProcessMetrics } from '../../shared/metrics.ts';
import { serveFetch } from '../../shared/serve.ts';
import { buildInfo } from '../../shared/version.ts';
import { HUB_ENV_PREFIX, hubConfigSchema } from '../config.ts';
import { startHub } from '../hub.ts';
import { kubeHubBackend } from '../tunnel/backend.ts';
import { startControllers } from '../controllers/index.ts';
import { loadKubeConfig } from '../kube/client.ts';

export default defineCommand({
  meta: { name: 'run', description: 'Run the hub' },
  args: configArgs(hubConfigSchema),
  run: ({ args }) =>
    guard('tether-hub', async () => {
      const config = configFromArgs(hubConfigSchema, args, process.env, HUB_ENV_PREFIX);
      const log = createLogger({ level: config.logLevel, format: config.logFormat }).child({ replica: config.replicaId });
      const registry = new Registry();
      registerProcessMetrics(registry, buildInfo);
      // The tunnel needs its serving certificate; without one the hub runs without it (and says so).
      const tunnelConfigured = !!(config.tlsCertFile && config.tlsKeyFile);
      const hub = tunnelConfigured
        ? await startHub({ config, backend: kubeHubBackend({ kubeconfig: config.kubeconfig, leaseNamespace: config.leaseNamespace, log }), log, registry })
        : undefined;
      if (!hub) log.warn('tunnel disabled: set tlsCertFile and tlsKeyFile to accept edge agents and CONNECT requests');
      // Controllers elect one leader among the replicas through a Lease; the others stand by.
      const controllers = config.controllers.enabled
        ? startControllers({
            kubeconfig: loadKubeConfig(config.kubeconfig),
            log: log.child({ part: 'controllers' }),
            registry,
            identity: config.replicaId,
            leaseNamespace: config.controllers.leaseNamespace,
            config: config.controllers,
          })
        : undefined;
      const admin = await serveFetch(createAdminApp({ registry, checks: hub?.checks ?? {} }).fetch, config.adminListen);
      log.info('tether-hub started', { version: buildInfo.version, admin: admin.address, agents: hub?.agentAddress, connect: hub?.connectAddress });
      process.stdout.write(
        `tether-hub ${buildInfo.version}: ` +
          (hub
            ? `agents on wss://${hub.agentAddress}/tunnel, CONNECT on ${hub.connectAddress ?? '-'}${config.connectSocket ? ` and ${config.connectSocket}` : ''}, `
            : 'tunnel disabled, ') +
          `admin on http://${admin.address}\n`,
      );
      const signal = await new Promise<string>((resolve) => {
        process.once('SIGINT', () => resolve('SIGINT'));
        process.once('SIGTERM', () => resolve('SIGTERM'));
      });
      log.info('stopping', { signal });
      await controllers?.stop();
      await hub?.close();
      await admin.close();
    }),
});
