#!/usr/bin/env bun
/**
 * The hub's controllers alone, for the pools benchmark and manual trials until `tether-hub run`
 * starts them: `bun scripts/bench/pools-hub.ts --kubeconfig F [--identity ID]
 * [--lease-namespace NS] [--admin-listen 127.0.0.1:0] [--workers N]`. Prints
 * "pools-hub: admin on http://<address>" once serving; SIGTERM stops the controllers and
 * releases the lease.
 */
import { parseArgs } from 'node:util';
import { createAdminApp } from '../../shared/admin.ts';
import { createLogger } from '../../shared/log.ts';
import { Registry, registerProcessMetrics } from '../../shared/metrics.ts';
import { serveFetch } from '../../shared/serve.ts';
import { buildInfo } from '../../shared/version.ts';
import { loadKubeConfig } from '../../cloud/kube/client.ts';
import { startControllers } from '../../cloud/controllers/index.ts';

const { values } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    identity: { type: 'string', default: `pools-hub-${process.pid}` },
    'lease-namespace': { type: 'string', default: 'kube-system' },
    'admin-listen': { type: 'string', default: '127.0.0.1:0' },
    workers: { type: 'string', default: '4' },
    'log-level': { type: 'string', default: 'info' },
  },
});
const log = createLogger({ level: values['log-level'] as 'info', format: 'json' });
const registry = new Registry();
registerProcessMetrics(registry, buildInfo);
const controllers = startControllers({
  kubeconfig: loadKubeConfig(values.kubeconfig),
  log,
  registry,
  identity: values.identity!,
  leaseNamespace: values['lease-namespace']!,
  config: { workers: Number(values.workers) },
});
const admin = await serveFetch(createAdminApp({ registry, checks: {} }).fetch, values['admin-listen']!);
console.log(`pools-hub: admin on http://${admin.address}`);
await new Promise<void>((resolve) => {
  process.once('SIGINT', () => resolve());
  process.once('SIGTERM', () => resolve());
});
await controllers.stop();
await admin.close();
process.exit(0);
