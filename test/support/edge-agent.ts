/**
 * Runs tether-edge (from source) inside an edge site, the way it runs on a node: the proxy on the
 * site's 127.0.0.1:10261, pointed at the control plane through the site's link.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { EdgeSite } from './netns.ts';

export { until } from './wait.ts';

const edgeMain = fileURLToPath(new URL('../../edge/main.ts', import.meta.url));

export interface EdgeAgentProcess {
  child: ChildProcess;
  /** Lines the agent wrote (stdout and stderr), newest last. */
  log: string[];
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function spawnAgent(site: EdgeSite, args: string[]): EdgeAgentProcess {
  const child = site.spawn([process.execPath, edgeMain, 'run', ...args]);
  const log: string[] = [];
  const keep = (d: Buffer) => {
    log.push(...String(d).trimEnd().split('\n'));
    log.splice(0, Math.max(0, log.length - 400));
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    log,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** The proxy and admin URLs tether-edge prints when it has started. */
export function parseAddresses(out: string): { proxy: string; admin: string } | undefined {
  const m = out.match(/proxy on (http:\/\/\S+), admin on (http:\/\/\S+),/);
  return m ? { proxy: m[1]!, admin: m[2]! } : undefined;
}
