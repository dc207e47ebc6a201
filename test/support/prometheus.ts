/**
 * A real Prometheus (Debian's `prometheus` package, 2.42) for tests: started with a configuration
 * the test writes, listening on loopback at a free port, its TSDB in a temporary folder; queried
 * through its own HTTP API; stopped and its folder removed by stop().
 *
 * The configuration is checked before Prometheus starts, because Prometheus dials whatever it is
 * told to: only static_configs, no remote_write, alerting, rule files or other service discovery,
 * and every target and proxy_url on loopback or in 198.18.0.0/15 (the test networks).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePorts } from '../../scripts/cluster/ports.ts';
import { until } from './wait.ts';

export interface ScrapeConfig {
  job_name: string;
  static_configs: { targets: string[]; labels?: Record<string, string> }[];
  [key: string]: unknown;
}

export interface PrometheusConfig {
  global?: Record<string, unknown>;
  scrape_configs: ScrapeConfig[];
}

/** One series of an instant query: its labels and its value (as Prometheus prints it). */
export interface Sample {
  metric: Record<string, string>;
  value: string;
}

/** One entry of /api/v1/targets' activeTargets (the fields tests read). */
export interface ActiveTarget {
  labels: Record<string, string>;
  scrapeUrl: string;
  health: 'up' | 'down' | 'unknown';
  lastError: string;
}

export interface PrometheusServer {
  /** http://127.0.0.1:<port> */
  url: string;
  log: string[];
  query(promql: string): Promise<Sample[]>;
  targets(): Promise<ActiveTarget[]>;
  stop(): Promise<void>;
}

/** The prometheus binary on PATH, or undefined (scripts/setup.sh installs Debian's package). */
export function prometheusBinary(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v prometheus'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

/** 127.0.0.0/8 or 198.18.0.0/15. */
function isTestAddress(host: string): boolean {
  if (!isIPv4(host)) return false;
  const [a, b] = host.split('.').map(Number) as [number, number];
  return a === 127 || (a === 198 && (b === 18 || b === 19));
}

function hostOf(hostPort: string): string {
  return hostPort.slice(0, hostPort.lastIndexOf(':'));
}

/** Throws unless the configuration can only make Prometheus dial test addresses. */
export function checkConfig(config: PrometheusConfig): void {
  const refuse = (why: string): never => {
    throw new Error(`prometheus test config: ${why}`);
  };
  for (const key of Object.keys(config)) if (key !== 'global' && key !== 'scrape_configs') refuse(`${key} is not allowed`);
  for (const job of config.scrape_configs) {
    for (const key of Object.keys(job)) if (key.endsWith('_sd_configs')) refuse(`${job.job_name}: ${key} is not allowed (static_configs only)`);
    for (const sc of job.static_configs) {
      for (const t of sc.targets) if (!isTestAddress(hostOf(t))) refuse(`${job.job_name}: target ${t} is not on loopback or 198.18.0.0/15`);
    }
    if (job.proxy_url !== undefined && !isTestAddress(new URL(String(job.proxy_url)).hostname)) {
      refuse(`${job.job_name}: proxy_url ${String(job.proxy_url)} is not on loopback or 198.18.0.0/15`);
    }
    if (job.proxy_from_environment) refuse(`${job.job_name}: proxy_from_environment is not allowed`);
    // Relabeling could rewrite __address__ to anywhere; the tests do not need it.
    if (job.relabel_configs !== undefined) refuse(`${job.job_name}: relabel_configs is not allowed`);
  }
}

export async function startPrometheus(config: PrometheusConfig): Promise<PrometheusServer> {
  checkConfig(config);
  const bin = prometheusBinary();
  if (!bin) throw new Error('prometheus is not installed (bash scripts/setup.sh installs Debian\'s package)');
  const dir = mkdtempSync(join(tmpdir(), 'tether-prometheus-'));
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, stringify(config));
  const [port] = await freePorts(1);
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(bin, [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
  ], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  const log: string[] = [];
  const keep = (d: Buffer) => {
    log.push(...String(d).split('\n').filter(Boolean));
    log.splice(0, Math.max(0, log.length - 2000));
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));

  async function stop(): Promise<void> {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  }

  async function api<T>(path: string): Promise<T> {
    const res = await fetch(`${url}${path}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${res.status} ${body.error ?? ''}`);
    return body.data;
  }

  try {
    await until('prometheus ready', async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode})`);
      return (await fetch(`${url}/-/ready`)).status;
    }, (s) => s === 200, 60_000);
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}\n${log.slice(-20).join('\n')}`);
  }

  return {
    url,
    log,
    async query(promql) {
      const data = await api<{ resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }>(
        `/api/v1/query?query=${encodeURIComponent(promql)}`,
      );
      if (data.resultType !== 'vector') throw new Error(`prometheus query ${promql}: result type ${data.resultType}, want vector`);
      return data.result.map((r) => ({ metric: r.metric, value: r.value[1] }));
    },
    async targets() {
      return (await api<{ activeTargets: ActiveTarget[] }>('/api/v1/targets?state=active')).activeTargets;
    },
    stop,
  };
}
