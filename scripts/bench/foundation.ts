#!/usr/bin/env bun
/**
 * Foundation figures for docs/benchmarks.md, each measured side by side with a baseline in one run:
 *   - artifact sizes in dist/ (raw and .xz), against the bare Bun runtime of the same target;
 *   - start-up time of `tether-edge --version` against `bun -e 0` (the runtime starting an empty script);
 *   - idle RSS of a started agent (`tether-edge run`) against an idle bare Bun process.
 * Needs a full `npm run build` first. Prints a markdown section; `--write` replaces the
 * "Foundation" section of docs/benchmarks.md with it.
 */
import { publishSection } from './doc.ts';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryOf } from './edge-agent/http.ts';

const root = join(import.meta.dir, '../..');
const dist = join(root, 'dist');
const edgeBin = join(dist, 'tether-edge-linux-x64');
if (!existsSync(edgeBin)) {
  console.error('bench: dist/tether-edge-linux-x64 is missing; run `npm run build` first');
  process.exit(1);
}
const bunBin = process.execPath;
const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

function sizes(): string[] {
  const rows = ['| artifact | raw | .xz |', '|---|---:|---:|'];
  for (const line of readFileSync(join(dist, 'SHA256SUMS'), 'utf8').trim().split('\n')) {
    const name = line.slice(66);
    if (name.endsWith('.xz')) continue;
    const xz = join(dist, `${name}.xz`);
    rows.push(`| ${name} | ${mb(statSync(join(dist, name)).size)} | ${existsSync(xz) ? mb(statSync(xz).size) : '–'} |`);
  }
  rows.push(`| (baseline) bun runtime, linux-x64 | ${mb(statSync(bunBin).size)} | |`);
  return rows;
}

function timeRuns(cmd: string[], n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const r = spawnSync(cmd[0]!, cmd.slice(1), { stdio: 'ignore' });
    out.push(performance.now() - t);
    if (r.status !== 0) throw new Error(`${cmd.join(' ')} exited with ${r.status}`);
  }
  return out.sort((a, b) => a - b);
}
const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;


async function idleRss(cmd: string[], ready: (out: string) => boolean): Promise<{ rss: number; anon: number }> {
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`${cmd[0]} did not become ready`)), 15_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (ready(out)) {
        clearTimeout(deadline);
        resolve();
      }
    });
  });
  await new Promise((r) => setTimeout(r, 3000)); // let start-up garbage settle before reading RSS
  const rss = memoryOf(child.pid!);
  child.kill('SIGTERM');
  return rss;
}

const N = 30;
timeRuns([edgeBin, '--version'], 3); // warm the page cache
const edgeT = timeRuns([edgeBin, '--version'], N);
const bunT = timeRuns([bunBin, '-e', '0'], N);
const dir = mkdtempSync(join(tmpdir(), 'tether-bench-'));
const edgeRss = await idleRss(
  [edgeBin, 'run', '--data-dir', dir, '--admin-listen', '127.0.0.1:0', '--listen', '127.0.0.1:0', '--servers', 'https://127.0.0.1:1'],
  (o) => o.includes('admin on'),
);
const bareRss = await idleRss(
  [bunBin, '-e', 'console.log("ready"); setInterval(() => {}, 1000)'],
  (o) => o.includes('ready'),
);
rmSync(dir, { recursive: true, force: true });

const section = [
  '## Foundation',
  '',
  `Measured ${new Date().toISOString().slice(0, 10)} on this machine (2 cores), \`bun scripts/bench/foundation.ts\` after \`npm run build\`.`,
  '',
  '### Artifact sizes',
  '',
  ...sizes(),
  '',
  '### Start-up and idle memory',
  '',
  '| measure | tether-edge | baseline | ratio |',
  '|---|---:|---:|---:|',
  `| \`--version\` wall time p50 (${N} runs) | ${pct(edgeT, 0.5).toFixed(1)} ms | ${pct(bunT, 0.5).toFixed(1)} ms (\`bun -e 0\`) | ${(pct(edgeT, 0.5) / pct(bunT, 0.5)).toFixed(2)}× |`,
  `| \`--version\` wall time p90 | ${pct(edgeT, 0.9).toFixed(1)} ms | ${pct(bunT, 0.9).toFixed(1)} ms | ${(pct(edgeT, 0.9) / pct(bunT, 0.9)).toFixed(2)}× |`,
  `| idle RSS of \`tether-edge run\` (store open, proxy and admin serving) | ${mb(edgeRss.rss)} | ${mb(bareRss.rss)} (idle \`bun -e\`) | ${(edgeRss.rss / bareRss.rss).toFixed(2)}× |`,
  `| of which private (anonymous) memory | ${mb(edgeRss.anon)} | ${mb(bareRss.anon)} | ${(edgeRss.anon / bareRss.anon).toFixed(2)}× |`,
  '',
];
publishSection('Foundation', section.join('\n'));
