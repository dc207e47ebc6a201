/**
 * Runs tether-hub (from source, `cloud/main.ts run`) as a process, the way it runs in a cluster,
 * with a configuration file written from `config` (any keys of cloud/config.ts). Resolves once it
 * printed its listening line; keeps its log lines for assertions.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

const hubMain = fileURLToPath(new URL('../../cloud/main.ts', import.meta.url));

export interface HubProcess {
  child: ChildProcess;
  /** Every line the hub wrote (JSON log lines and its start line). */
  log: string[];
  /** wss://…/tunnel as printed. */
  agentUrl: string;
  /** host:port of the TLS CONNECT listener. */
  connectAddress: string;
  adminUrl: string;
  exited: Promise<number | null>;
  /** Log lines (parsed JSON) whose msg contains `text`. */
  lines(text: string): Record<string, unknown>[];
  metrics(): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function spawnHub(dir: string, name: string, config: Record<string, unknown>): Promise<HubProcess> {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify({ logLevel: 'debug', ...config }));
  const child = spawn(process.execPath, [hubMain, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  let started: ((line: string) => void) | undefined;
  const keep = (d: Buffer) => {
    for (const line of String(d).split('\n').filter(Boolean)) {
      log.push(line);
      if (/^tether-hub .*agents on wss:/.test(line)) started?.(line);
    }
    log.splice(0, Math.max(0, log.length - 5000));
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const line = await Promise.race([
    new Promise<string>((r) => (started = r)),
    exited.then((code) => {
      throw new Error(`tether-hub ${name} exited (${code}) before listening:\n${log.slice(-30).join('\n')}`);
    }),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`tether-hub ${name} did not start:\n${log.slice(-30).join('\n')}`)), 30_000)),
  ]);
  const m = /agents on (wss:\/\/\S+?), CONNECT on (\S+?)(?: and \S+)?, admin on (http:\/\/\S+)$/.exec(line);
  if (!m) throw new Error(`tether-hub ${name}: unexpected start line ${line}`);
  const adminUrl = m[3]!;
  return {
    child,
    log,
    agentUrl: m[1]!,
    connectAddress: m[2]!,
    adminUrl,
    exited,
    lines(text) {
      return log.flatMap((l) => {
        try {
          const j = JSON.parse(l) as Record<string, unknown>;
          return String(j.msg).includes(text) ? [j] : [];
        } catch {
          return [];
        }
      });
    },
    metrics: async () => (await fetch(`${adminUrl}/metrics`)).text(),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
