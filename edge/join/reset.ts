/**
 * `tether-edge reset`: undo what join did, following the manifest it wrote: stop and disable the
 * agent (systemd on "/"), restore every file join replaced (the kubelet kubeconfig of a converted
 * node), remove everything join created (configuration, key and certificate, the agent's store,
 * units), then restart a running kubelet so it talks to the apiserver again.
 */
import { join } from 'node:path';
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { type UndoResult, readManifest, undoChanges } from './changes.ts';
import { PATHS, UNIT_NAME } from './layout.ts';
import { type Systemd, detectSystemd } from './systemd.ts';

export interface ResetOptions {
  root?: string;
  log: Logger;
  systemd?: Systemd;
}

export interface ResetResult extends UndoResult {
  node?: string;
  next: string[];
}

export async function resetNode(o: ResetOptions): Promise<ResetResult> {
  const root = o.root ?? '/';
  const manifest = readManifest(root, PATHS.manifest);
  if (!manifest) {
    throw new TetherError(ErrorCode.BadConfig, `reset: nothing to undo: ${join(root, PATHS.manifest)} does not exist (this node was not joined with tether-edge join${root === '/' ? '' : ' under this --root'})`);
  }
  const systemd = o.systemd ?? detectSystemd(root);
  const next: string[] = [];
  if (systemd) {
    const stopped = await systemd.systemctl(['disable', '--now', UNIT_NAME]);
    if (stopped.code !== 0) next.push(`could not stop ${UNIT_NAME}: ${stopped.output}`);
  }
  const undone = undoChanges(root, PATHS.manifest, manifest);
  if (systemd) {
    await systemd.systemctl(['daemon-reload']);
    const kubelet = await systemd.systemctl(['try-restart', 'kubelet.service']);
    if (kubelet.code === 0) next.push('restarted kubelet.service if it was running');
  }
  if (undone.kept.length) next.push(`left in place (not empty): ${undone.kept.join(', ')}`);
  o.log.info('reset', { restored: undone.restored, removed: undone.removed.length, kept: undone.kept });
  const node = typeof manifest.meta.node === 'string' ? manifest.meta.node : undefined;
  if (node) next.push(`the Node object stays in the cluster: \`kubectl delete node ${node}\` on the hub removes it`);
  return { ...undone, node, next };
}
