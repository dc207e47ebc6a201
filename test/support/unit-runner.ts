/**
 * Runs a systemd unit's [Service] as systemd would, inside an edge site, for the upgrade suite:
 * every ExecStartPre in order (a `-` prefix ignores its failure, as a missing executable's is),
 * then ExecStart; when it exits, Restart=always (or on-failure after a failure) starts it all again
 * after RestartSec; more than StartLimitBurst starts (default 5) within StartLimitIntervalSec
 * (default 10 s) puts the unit in "failed" and stops restarting, as systemd's start limit does.
 *
 * The unit names paths as on a node (/usr/local/bin/tether-edge, /etc/tether/edge.yaml,
 * /var/lib/tether/upgrade/known-good); every word under a rooted prefix is moved under `root`, and
 * so are the string values of each `--config` file (edge.yaml) before the first start.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import type { EdgeSite } from './netns.ts';

export const ROOTED_PREFIXES = ['/etc/tether', '/var/lib/tether', '/usr/local/bin', '/etc/kubernetes'];

export interface ServiceSection {
  pre: { command: string[]; ignoreFailure: boolean }[];
  start: string[];
  restart: 'no' | 'always' | 'on-failure';
  restartSec: number;
  startLimitBurst: number;
  startLimitIntervalSec: number;
}

/** The [Service] lines this runner understands; anything it would run differently is refused. */
export function parseService(unit: string): ServiceSection {
  const s: ServiceSection = { pre: [], start: [], restart: 'no', restartSec: 0.1, startLimitBurst: 5, startLimitIntervalSec: 10 };
  let section = '';
  for (const raw of unit.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      section = sec[1]!;
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!kv) throw new Error(`unit: cannot read ${JSON.stringify(line)}`);
    const [, key, value] = kv as unknown as [string, string, string];
    if (section === 'Unit' && key === 'StartLimitBurst') s.startLimitBurst = Number(value);
    if (section === 'Unit' && key === 'StartLimitIntervalSec') s.startLimitIntervalSec = Number(value);
    if (section !== 'Service') continue;
    if (key === 'ExecStartPre' || key === 'ExecStart') {
      const ignoreFailure = value.startsWith('-');
      const words = value.replace(/^-/, '').trim().split(/\s+/);
      if (/^[@+!:]/.test(words[0]!)) throw new Error(`unit: ${key} prefix ${words[0]![0]} is not supported here`);
      if (/["'\\$%]/.test(value)) throw new Error(`unit: ${key} uses quoting or specifiers, which this runner does not expand: ${value}`);
      if (key === 'ExecStartPre') s.pre.push({ command: words, ignoreFailure });
      else s.start = words;
    } else if (key === 'Restart') {
      if (value !== 'no' && value !== 'always' && value !== 'on-failure') throw new Error(`unit: Restart=${value} is not supported here`);
      s.restart = value;
    } else if (key === 'RestartSec') s.restartSec = Number(value.replace(/s$/, ''));
  }
  if (!s.start.length) throw new Error('unit: no ExecStart');
  return s;
}

export interface UnitEvent {
  /** Monotonic order of events. */
  at: number;
  kind: 'pre-exit' | 'start' | 'exit' | 'failed';
  command?: string;
  code?: number | null;
  signal?: string | null;
}

export interface UnitRunner {
  /** Lines the unit's processes wrote, prefixed with the program's name, newest last. */
  log: string[];
  events: UnitEvent[];
  /** Starts of ExecStart so far. */
  starts(): number;
  /** systemd's "failed": the start limit was hit, no more restarts. */
  failed(): boolean;
  /** Kills the running process (as `kill -9 <MainPID>`); the unit restarts as systemd would. */
  killMain(signal?: NodeJS.Signals): void;
  stop(): Promise<void>;
}

export interface RunUnitOptions {
  site: EdgeSite;
  unit: string;
  root: string;
  env?: Record<string, string>;
}

export function rooted(root: string, path: string): string {
  return ROOTED_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`)) ? join(root, path) : path;
}

/** Rewrites the string values of a YAML/JSON configuration file that name rooted paths. */
export function rootConfigFile(root: string, file: string): void {
  const doc = parseYaml(readFileSync(file, 'utf8')) as unknown;
  const walk = (v: unknown): unknown =>
    typeof v === 'string' ? rooted(root, v) : Array.isArray(v) ? v.map(walk) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)])) : v;
  writeFileSync(file, stringify(walk(doc)));
}

export function runUnit(o: RunUnitOptions): UnitRunner {
  const svc = parseService(o.unit);
  const words = (c: string[]) => c.map((w) => rooted(o.root, w));
  for (const c of [svc.start, ...svc.pre.map((p) => p.command)]) {
    const i = c.indexOf('--config');
    if (i >= 0 && c[i + 1]) rootConfigFile(o.root, rooted(o.root, c[i + 1]!));
  }
  const log: string[] = [];
  const events: UnitEvent[] = [];
  let seq = 0;
  let stopped = false;
  let failed = false;
  let main: ChildProcess | undefined;
  let wake: (() => void) | undefined;
  const startTimes: number[] = [];

  const runOne = (command: string[], name: string, isMain: boolean) =>
    new Promise<{ code: number | null; signal: string | null }>((resolve) => {
      const child = o.site.spawn(words(command), { env: o.env });
      if (isMain) main = child;
      const keep = (d: Buffer) => {
        log.push(...String(d).trimEnd().split('\n').map((l) => `${name}: ${l}`));
        log.splice(0, Math.max(0, log.length - 2000));
      };
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
      child.once('exit', (code, signal) => {
        if (isMain) main = undefined;
        resolve({ code, signal });
      });
    });

  const loop = (async () => {
    while (!stopped) {
      const now = performance.now();
      startTimes.push(now);
      while (startTimes.length && startTimes[0]! < now - svc.startLimitIntervalSec * 1000) startTimes.shift();
      if (startTimes.length > svc.startLimitBurst) {
        failed = true;
        events.push({ at: ++seq, kind: 'failed' });
        return;
      }
      let ok = true;
      for (const p of svc.pre) {
        const r = await runOne(p.command, 'pre', false);
        events.push({ at: ++seq, kind: 'pre-exit', command: p.command.join(' '), code: r.code, signal: r.signal });
        if ((r.code !== 0 || r.signal) && !p.ignoreFailure) {
          ok = false;
          break;
        }
        if (stopped) return;
      }
      let clean = false;
      if (ok) {
        events.push({ at: ++seq, kind: 'start', command: svc.start.join(' ') });
        const r = await runOne(svc.start, 'main', true);
        events.push({ at: ++seq, kind: 'exit', code: r.code, signal: r.signal });
        clean = r.code === 0;
      }
      if (stopped || svc.restart === 'no' || (svc.restart === 'on-failure' && clean)) return;
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, svc.restartSec * 1000);
      });
    }
  })();

  return {
    log,
    events,
    starts: () => events.filter((e) => e.kind === 'start').length,
    failed: () => failed,
    killMain(signal = 'SIGKILL') {
      main?.kill(signal);
    },
    async stop() {
      stopped = true;
      wake?.();
      const m = main;
      if (m && m.exitCode === null && m.signalCode === null) {
        m.kill('SIGTERM');
        const t = setTimeout(() => m.kill('SIGKILL'), 10_000);
        await new Promise((r) => (m.exitCode !== null || m.signalCode !== null ? r(undefined) : m.once('exit', r)));
        clearTimeout(t);
      }
      await loop;
    },
  };
}
