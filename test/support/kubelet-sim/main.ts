#!/usr/bin/env bun
/**
 * kubelet-sim: a kubelet at the API level, for tests and the demo.
 *
 *   bun test/support/kubelet-sim/main.ts --node-name N (--server URL [--ca F --cert F --key F] | --kubeconfig F)
 *       --address IP [--port 10250] [--serving-cert F --serving-key F] [--log-level info]
 *
 * --kubeconfig reads the server, CA and client certificate as the kubelet does (e.g. the one
 * tether-edge join writes, for the agent's HTTPS listener with the kubelet's local certificate).
 *
 * Stops cleanly on SIGTERM or SIGINT. Logs JSON lines on stderr.
 */
import { parseArgs } from 'node:util';
import { createLogger, type Level } from '../../../shared/log.ts';
import { readKubeconfig } from './kubeconfig.ts';
import { createKubeletSim, readPemFile } from './sim.ts';

const usage =
  'usage: main.ts --node-name N (--server URL [--ca F --cert F --key F] | --kubeconfig F) --address IP [--port 10250] ' +
  '[--serving-cert F --serving-key F] [--log-level debug|info|warn|error]';

let values: Record<string, string | undefined>;
try {
  values = parseArgs({
    options: {
      'node-name': { type: 'string' },
      server: { type: 'string' },
      kubeconfig: { type: 'string' },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      address: { type: 'string' },
      port: { type: 'string', default: '10250' },
      'serving-cert': { type: 'string' },
      'serving-key': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
    },
    strict: true,
  }).values as Record<string, string | undefined>;
} catch (e) {
  console.error(`${(e as Error).message}\n${usage}`);
  process.exit(2);
}

const nodeName = values['node-name'];
const fromKubeconfig = values.kubeconfig ? readKubeconfig(values.kubeconfig) : undefined;
const server = values.server ?? fromKubeconfig?.server;
const address = values.address;
const port = Number(values.port);
if (!nodeName || !server || !address || !Number.isInteger(port)) {
  console.error(usage);
  process.exit(2);
}

const log = createLogger({ level: (values['log-level'] ?? 'info') as Level }).child({ node: nodeName });
const sim = createKubeletSim({
  nodeName,
  server,
  address,
  port,
  caPem: readPemFile(values.ca) ?? fromKubeconfig?.caPem,
  certPem: readPemFile(values.cert) ?? fromKubeconfig?.certPem,
  keyPem: readPemFile(values.key) ?? fromKubeconfig?.keyPem,
  servingCertPem: readPemFile(values['serving-cert']),
  servingKeyPem: readPemFile(values['serving-key']),
  log,
});

let stopping = false;
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal: sig });
    void sim.stop().then(() => process.exit(0));
  });
}

try {
  await sim.start();
} catch (e) {
  log.error('start failed', { error: e });
  process.exit(1);
}
