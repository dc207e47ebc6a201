/**
 * Runs a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
 * kube-scheduler) for the demo and for tests, in the foreground until SIGINT or SIGTERM.
 *
 *   bun scripts/cluster.ts up [--dir D] [--hub-connect URL [--hub-ca F] [--hub-cert F --hub-key F] | --hub-uds PATH]
 *                             [--node-monitor-grace-period 20s] [--cluster-signing-duration 8760h]
 *                             [--apiserver-arg=--flag=value …] [--controller-manager-arg=…] [--scheduler-arg=…]
 *
 * Writes D/cluster.json (see scripts/cluster/state.ts) and D/admin.kubeconfig. A test run finds
 * the cluster with TETHER_TEST_CLUSTER=D. Needs root for the 198.18.0.1 interface.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { messageOf } from '../shared/errors.ts';
import { createLogger, type Level } from '../shared/log.ts';
import { controlPlaneBinDir } from './cluster/binaries.ts';
import { startControlPlane } from './cluster/control-plane.ts';
import type { HubEgress } from './cluster/egress.ts';

const usage = `usage: bun scripts/cluster.ts up [--dir D] [--hub-connect URL [--hub-ca F] [--hub-cert F --hub-key F] | --hub-uds PATH]
       [--node-monitor-grace-period 20s] [--cluster-signing-duration 8760h]
       [--apiserver-arg=--x=y ...] [--controller-manager-arg=--x=y ...] [--scheduler-arg=--x=y ...] [--log-level info]`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      dir: { type: 'string', default: '.tether/cluster' },
      'hub-connect': { type: 'string' },
      'hub-ca': { type: 'string' },
      'hub-cert': { type: 'string' },
      'hub-key': { type: 'string' },
      'hub-uds': { type: 'string' },
      'node-monitor-grace-period': { type: 'string' },
      'cluster-signing-duration': { type: 'string' },
      'apiserver-arg': { type: 'string', multiple: true },
      'controller-manager-arg': { type: 'string', multiple: true },
      'scheduler-arg': { type: 'string', multiple: true },
      'log-level': { type: 'string', default: 'info' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals[0] !== 'up' || positionals.length !== 1) {
    console.error(usage);
    return values.help ? 0 : 2;
  }
  if (values['hub-connect'] && values['hub-uds']) {
    console.error('--hub-connect and --hub-uds exclude each other\n' + usage);
    return 2;
  }
  const abs = (f: string | undefined) => (f ? resolve(f) : undefined);
  let hub: HubEgress | undefined;
  if (values['hub-uds']) hub = { udsName: resolve(values['hub-uds']) };
  else if (values['hub-connect']) {
    hub = { url: values['hub-connect'], caFile: abs(values['hub-ca']), certFile: abs(values['hub-cert']), keyFile: abs(values['hub-key']) };
  }

  const log = createLogger({ level: values['log-level'] as Level, format: process.stderr.isTTY ? 'text' : 'json' });
  const t0 = performance.now();
  const binDir = await controlPlaneBinDir((line) => log.info(line));
  const cp = await startControlPlane({
    dir: resolve(values.dir),
    binDir,
    log,
    hub,
    nodeMonitorGracePeriod: values['node-monitor-grace-period'],
    clusterSigningDuration: values['cluster-signing-duration'],
    apiserverArgs: values['apiserver-arg'],
    controllerManagerArgs: values['controller-manager-arg'],
    schedulerArgs: values['scheduler-arg'],
  });
  const s = cp.state;
  console.log(
    [
      `cluster ready: Kubernetes ${s.kubernetesVersion} in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      `  state        ${s.dir}/cluster.json (logs in ${s.dir}/logs)`,
      `  server       ${s.server}`,
      `  edge server  ${s.edgeServer}`,
      ...(s.files.egressSelector ? [`  egress       ${s.files.egressSelector}`] : []),
      `  export KUBECONFIG=${s.files.adminKubeconfig}`,
      `  export TETHER_TEST_CLUSTER=${s.dir}`,
      'Ctrl-C stops it.',
    ].join('\n'),
  );
  // Signals are handled by the supervisor (graceful stop, then exit 130/143). Stay alive until
  // then; a component that dies on its own ends the run.
  const keepAlive = setInterval(() => {}, 1 << 30);
  try {
    await cp.crashed;
  } catch (e) {
    log.error('component crashed, stopping the cluster', { error: messageOf(e) });
  }
  clearInterval(keepAlive);
  await cp.stop();
  return 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`cluster: ${messageOf(e)}`);
    process.exit(1);
  },
);
