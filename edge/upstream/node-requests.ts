/**
 * The agent's own requests to the apiserver, as the node, on the upstream the pool picks: outbox
 * replay and discovery refresh after a reconnect (edge/reconnect.ts), the NodePool list and watch
 * (edge/topology-feed.ts), and the upgrader's watch and patch of its own Node (edge/upgrade/).
 *
 * Contract
 *   createNodeRequests({ upstreams, nodeName, userAgent }): NodeRequests
 *   requests.online()        some upstream is healthy
 *   requests.pinned()        calls on the upstream picked now, for work that stays on one upstream
 *                            (one pick, so round-robin moves on once); undefined when none is healthy.
 *                            `pinned()(kind)` is an UpstreamCall whose bytes count as `kind`
 *   requests.watch(p, f)     one watch on the upstream picked now, tracked (a cut aborts it, and it
 *                            ends with status 0); offline it ends at once with status 0
 *   requests.patchNode(b)    a merge patch of this node's Node; rejects E_UPSTREAM_UNAVAILABLE offline
 * Every request carries `userAgent` (tether-edge/<version>).
 */
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import { type CallResult, type UpstreamCall, type WatchLines, callUpstream, watchUpstream } from './calls.ts';
import type { UpstreamTargets } from './targets.ts';
import type { TrafficKind } from './traffic.ts';

export type RequestKind = Exclude<TrafficKind, 'probe'>;

export interface NodeRequests {
  online(): boolean;
  pinned(): ((kind: RequestKind) => UpstreamCall) | undefined;
  watch(path: string, onLine: (line: string) => void): WatchLines;
  patchNode(body: string): Promise<CallResult>;
}

export function createNodeRequests(opts: {
  upstreams: UpstreamTargets;
  nodeName: string;
  userAgent: string;
}): NodeRequests {
  const { upstreams, userAgent } = opts;
  const nodePath = `/api/v1/nodes/${encodeURIComponent(opts.nodeName)}`;
  return {
    online: () => upstreams.online,
    pinned() {
      const t = upstreams.pick();
      if (!t) return undefined;
      return (kind) => (method, path, o = {}) => callUpstream(t, method, path, { ...o, userAgent, kind });
    },
    watch(path, onLine) {
      const t = upstreams.pick();
      if (!t) return { done: Promise.resolve({ status: 0 }), stop: () => {} };
      const abort = new AbortController();
      const untrack = upstreams.track(t, abort);
      const w = watchUpstream(t, path, onLine, { signal: abort.signal, userAgent });
      void w.done.finally(untrack);
      return w;
    },
    patchNode(body) {
      const t = upstreams.pick();
      if (!t) return Promise.reject(new TetherError(ErrorCode.UpstreamUnavailable, `patch node ${opts.nodeName}: offline`));
      return callUpstream(t, 'PATCH', nodePath, { contentType: 'application/merge-patch+json', body, userAgent });
    },
  };
}
