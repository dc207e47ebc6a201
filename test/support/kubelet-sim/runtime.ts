/**
 * The container runtime behind exec, attach and port-forward: the streams module's process
 * runtime (commands run as processes of the simulator, inside its network namespace;
 * port-forward dials 127.0.0.1:<port> there), restricted to the pods and containers this node
 * runs, so that a request for anything else answers 404 as the kubelet's does.
 */
import { ErrorCode, TetherError } from '../../../shared/errors.ts';
import type { PodManager } from './pods.ts';
import { createProcessRuntime, type ContainerRuntime, type PodTarget } from './streams/index.ts';

export interface SimRuntime extends ContainerRuntime {
  close(): void;
}

export function createSimRuntime(pods: Pick<PodManager, 'lookup'>): SimRuntime {
  const base = createProcessRuntime();
  const check = (t: PodTarget & { container?: string }) => {
    const pod = pods.lookup(t.namespace, t.pod);
    if (!pod) throw new TetherError(ErrorCode.BadRequest, `pod "${t.pod}" in namespace "${t.namespace}" not found`);
    if (t.container !== undefined && !pod.containers.includes(t.container)) {
      throw new TetherError(ErrorCode.BadRequest, `container "${t.container}" not found in pod "${t.pod}"`);
    }
  };
  return {
    exec: (t, command, opts) => (check(t), base.exec(t, command, opts)),
    portTarget: (t, port) => (check(t), base.portTarget(t, port)),
    attach: (t, opts) => (check(t), base.attach(t, opts)),
    close: () => base.close(),
  };
}
