/**
 * What the node tells the hub, as annotations of its own Node: the upgrade status (one JSON
 * value per the contract) and the running version. Each is a JSON merge patch of
 * metadata.annotations only, sent as the node (the Node authorizer and NodeRestriction let a
 * node change its own Node's annotations), through the agent's upstream like its other requests.
 */
import { messageOf } from '../../shared/errors.ts';
import { EDGE_VERSION_ANNOTATION, UPGRADE_STATUS_ANNOTATION, type UpgradeStatus } from '../../shared/upgrade/contract.ts';

/** Sends a merge patch of the Node (`/api/v1/nodes/<name>`); resolves with the answer's status code. */
export type NodePatch = (body: string) => Promise<{ status: number; body: string }>;

export interface Reporter {
  /** Writes the status annotation; resolves true when the apiserver took it. */
  status(s: UpgradeStatus): Promise<boolean>;
  /** Writes the running version annotation. */
  version(v: string): Promise<boolean>;
}

export function createReporter(o: { patch: NodePatch; onError?: (what: string, reason: string) => void }): Reporter {
  const send = async (what: string, annotations: Record<string, string>): Promise<boolean> => {
    try {
      const r = await o.patch(JSON.stringify({ metadata: { annotations } }));
      if (r.status >= 200 && r.status < 300) return true;
      o.onError?.(what, `HTTP ${r.status}: ${r.body.slice(0, 200)}`);
    } catch (e) {
      o.onError?.(what, messageOf(e));
    }
    return false;
  };
  return {
    status: (s) => send(`status ${s.phase}`, { [UPGRADE_STATUS_ANNOTATION]: JSON.stringify(s) }),
    version: (v) => send('version', { [EDGE_VERSION_ANNOTATION]: v }),
  };
}
