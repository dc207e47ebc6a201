/**
 * How the agent learns its own Node's annotations (the hub's upgrade target among them) without
 * polling: WAN bytes are the scarcest thing a site has.
 *
 * The kubelet already watches its own Node through our proxy (fieldSelector metadata.name=<node>),
 * and the recorder copies each event into the store: reading that copy each time the store records
 * Nodes costs the link nothing. Only when no such copy arrives for `fallbackAfterMs` while online
 * (the kubelet is not a cached component, not running, or the store is unusable) does the agent
 * open one watch of its own Node, the same request the kubelet makes; it is stopped again as soon
 * as the store records the Node (the kubelet is back). The default wait, 6 minutes, is longer than
 * the kubelet's longest silence: it reports its Node status at least every 5 minutes, and its
 * watch echoes that write.
 *
 * A copy read from the store at start may be old (the kubelet's watch since the restart has not
 * brought anything yet): it is passed on with `fresh: false`, good for comparing the version
 * annotation but never acted on as a target. Views recorded after start, or from our own watch,
 * are fresh.
 */
import type { Logger } from '../../shared/log.ts';
import type { KubeObject } from '../store/index.ts';

export interface NodeView {
  annotations: Record<string, string>;
  resourceVersion?: string;
  /** Seen since this process started (a live watch brought it), not an old copy. */
  fresh: boolean;
}

export interface WatchHandle {
  done: Promise<{ status: number; body?: string }>;
  stop(): void;
}

export interface NodeSourceOptions {
  nodeName: string;
  /** The Node as the store has it (undefined without a store or a copy). */
  stored?: () => KubeObject | undefined;
  online: () => boolean;
  /** A watch of `path` upstream, as the node; `onLine` gets each event line. */
  watch: (path: string, onLine: (line: string) => void) => WatchHandle;
  onNode: (node: NodeView) => void;
  log: Logger;
  fallbackAfterMs?: number;
  /** Delay before a watch that ended is opened again (default 5 s, doubled up to 5 min on failures). */
  rewatchMs?: number;
  now?: () => number;
}

export interface NodeSource {
  /** The store recorded Nodes. */
  recorded(): void;
  /** The link went up or down. */
  linkChanged(): void;
  /** Whether our own watch of the Node runs (for tests and status). */
  readonly watching: boolean;
  stop(): void;
}

function viewOf(o: KubeObject, fresh: boolean): NodeView {
  const annotations = (o.metadata.annotations as Record<string, string> | undefined) ?? {};
  return { annotations, resourceVersion: o.metadata.resourceVersion as string | undefined, fresh };
}

export function followNode(o: NodeSourceOptions): NodeSource {
  const now = o.now ?? Date.now;
  // Without a store nothing will record the Node: watch it as soon as the link is up.
  const fallbackAfter = o.stored ? (o.fallbackAfterMs ?? 6 * 60_000) : 0;
  const rewatchBase = o.rewatchMs ?? 5000;
  let lastFresh = now();
  let lastRv: string | undefined;
  let stopped = false;
  let watch: WatchHandle | undefined;
  let watchRv: string | undefined;
  let failures = 0;
  let rewatchTimer: ReturnType<typeof setTimeout> | undefined;
  let checkTimer: ReturnType<typeof setTimeout> | undefined;

  const fromStore = (): KubeObject | undefined => {
    try {
      return o.stored?.();
    } catch (e) {
      o.log.warn('upgrade: reading the Node from the store failed', { error: e });
      return undefined;
    }
  };

  const stopWatch = () => {
    clearTimeout(rewatchTimer);
    rewatchTimer = undefined;
    const w = watch;
    watch = undefined;
    w?.stop();
  };

  const path = (rv: string | undefined) =>
    `/api/v1/nodes?fieldSelector=${encodeURIComponent(`metadata.name=${o.nodeName}`)}&watch=true&allowWatchBookmarks=true${rv ? `&resourceVersion=${encodeURIComponent(rv)}` : ''}`;

  const startWatch = () => {
    if (watch || stopped || !o.online()) return;
    o.log.info('upgrade: no recorded copy of the Node; watching it directly', { node: o.nodeName });
    const w = o.watch(path(watchRv), (line) => {
      let ev: { type?: string; object?: KubeObject };
      try {
        ev = JSON.parse(line) as typeof ev;
      } catch {
        return;
      }
      const obj = ev.object;
      if (!obj?.metadata) return;
      if (obj.metadata.resourceVersion) watchRv = String(obj.metadata.resourceVersion);
      if (ev.type === 'ADDED' || ev.type === 'MODIFIED') {
        failures = 0;
        lastRv = watchRv;
        o.onNode(viewOf(obj, true));
      } else if (ev.type === 'ERROR') {
        watchRv = undefined; // 410 Gone and friends: start again from the current state
      }
    });
    watch = w;
    void w.done.then((r) => {
      if (watch !== w) return; // stopped on purpose
      watch = undefined;
      if (r.status === 410) watchRv = undefined;
      if (r.status !== 200) failures++;
      if (stopped) return;
      const delay = Math.min(5 * 60_000, rewatchBase * 2 ** Math.min(failures, 6));
      rewatchTimer = setTimeout(() => {
        rewatchTimer = undefined;
        if (needWatch()) startWatch();
      }, r.status === 200 && failures === 0 ? 0 : delay);
    });
  };

  const needWatch = () => !stopped && o.online() && now() - lastFresh >= fallbackAfter;

  const scheduleCheck = () => {
    clearTimeout(checkTimer);
    if (stopped) return;
    const wait = Math.max(0, fallbackAfter - (now() - lastFresh));
    checkTimer = setTimeout(() => {
      if (needWatch()) startWatch();
      else if (o.online()) scheduleCheck(); // offline: linkChanged schedules again
    }, wait);
  };

  // The old copy, for the version annotation only.
  const initial = fromStore();
  if (initial) {
    lastRv = initial.metadata.resourceVersion as string | undefined;
    queueMicrotask(() => !stopped && o.onNode(viewOf(initial, false)));
  }
  scheduleCheck();

  return {
    recorded() {
      if (stopped) return;
      const node = fromStore();
      if (!node) return;
      lastFresh = now();
      if (watch) {
        o.log.info('upgrade: the store records the Node again; own watch stopped', { node: o.nodeName });
        stopWatch();
      }
      scheduleCheck();
      const rv = node.metadata.resourceVersion as string | undefined;
      if (rv !== undefined && rv === lastRv) return;
      lastRv = rv;
      o.onNode(viewOf(node, true));
    },
    linkChanged() {
      if (stopped) return;
      if (!o.online()) {
        stopWatch();
        return;
      }
      // Back online: give the kubelet's re-watch its time before watching ourselves.
      if (!watch) {
        lastFresh = Math.max(lastFresh, now() - fallbackAfter + Math.min(fallbackAfter, 30_000));
        scheduleCheck();
      }
    },
    get watching() {
      return watch !== undefined;
    },
    stop() {
      stopped = true;
      clearTimeout(checkTimer);
      stopWatch();
    },
  };
}
