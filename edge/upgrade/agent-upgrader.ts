/**
 * The upgrader as the agent runs it: the real install (install.ts), download (download.ts) and
 * health (health.ts) behind the upgrader, the Node followed through the store (target.ts), and
 * reports patched through the agent's upstream. edge/agent.ts hands in the agent's parts; nothing
 * here reads the configuration file or the environment.
 */
import type { Logger } from '../../shared/log.ts';
import type { KubeObject } from '../store/index.ts';
import { download, fetchSmall, removeDownloads } from './download.ts';
import { installLayout, markReported, readState, settleTrial, swapIn } from './install.ts';
import type { HubFetch } from './ports.ts';
import { type NodePatch, createReporter } from './report.ts';
import { type WatchHandle, followNode } from './target.ts';
import { type UpgradeSummary, createUpgrader } from './upgrader.ts';

export interface AgentUpgraderOptions {
  nodeName: string;
  running: { version: string; target: string };
  config: {
    dataDir: string;
    releaseKey?: string;
    /** `caFile`: CA bundle of the release location (default: the system CAs). */
    upgrade: { binary: string; dir?: string; healthDeadlineSeconds: number; allowDowngrade: boolean; caFile?: string };
  };
  /** The Node as the store has it; undefined without a store. */
  storedNode?: () => KubeObject | undefined;
  online: () => boolean;
  watch: (path: string, onLine: (line: string) => void) => WatchHandle;
  patch: NodePatch;
  healthy: () => Promise<boolean>;
  hub?: HubFetch;
  restart: (reason: string) => void;
  log: Logger;
  fallbackAfterMs?: number;
}

export interface AgentUpgrader {
  /** The store recorded objects of `gvr`. */
  recorded(gvr: string): void;
  linkChanged(): void;
  summary(): UpgradeSummary;
  /** Settling the trial and the first report; resolves with settleTrial's answer. */
  started: Promise<'none' | 'committed' | 'rolledBack'>;
  stop(): void;
}

export function startAgentUpgrader(o: AgentUpgraderOptions): AgentUpgrader {
  const log = o.log;
  const layout = { ...installLayout(o.config), log };
  const upgrader = createUpgrader({
    running: o.running,
    releaseKey: o.config.releaseKey,
    allowDowngrade: o.config.upgrade.allowDowngrade,
    deadlineSeconds: o.config.upgrade.healthDeadlineSeconds,
    layout,
    install: { readState, markReported, swapIn, settleTrial },
    download: { download, fetchSmall, removeDownloads },
    hub: o.hub,
    caFile: o.config.upgrade.caFile,
    report: createReporter({ patch: o.patch, onError: (what, reason) => log.warn('upgrade: report failed', { what, reason }) }),
    online: o.online,
    healthy: o.healthy,
    restart: o.restart,
    log,
  });
  const node = followNode({
    nodeName: o.nodeName,
    stored: o.storedNode,
    online: o.online,
    watch: o.watch,
    onNode: (v) => upgrader.nodeSeen(v),
    log,
    fallbackAfterMs: o.fallbackAfterMs,
  });
  return {
    recorded: (gvr) => gvr === 'v1/nodes' && node.recorded(),
    linkChanged() {
      node.linkChanged();
      upgrader.linkChanged();
    },
    summary: () => upgrader.summary(),
    started: upgrader.start(),
    stop() {
      node.stop();
      upgrader.stop();
    },
  };
}
