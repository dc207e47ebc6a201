#!/usr/bin/env bun
/**
 * Release build. Compiles tether-edge and tether-hub for four Linux targets, plus tether-edge.mjs,
 * a Node >= 20 bundle for 32-bit ARM (better-sqlite3 stays external). Writes everything to dist/
 * with .xz copies and SHA256SUMS, prints each artifact's size, and checks the modules bundled into
 * tether-edge against scripts/edge-modules.txt.
 *
 *   bun scripts/build.ts                  # everything
 *   bun scripts/build.ts --target bun-linux-x64 --no-xz   # a quick local build
 *   bun scripts/build.ts --update-modules # accept a change in the edge module list
 *   bun scripts/build.ts --out DIR        # write somewhere else than dist/ (tests)
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import pkg from '../package.json' with { type: 'json' };
import { checkEdgeModules, modulesOf } from './build/modules.ts';

const root = join(import.meta.dir, '..');

const TARGETS = ['bun-linux-x64', 'bun-linux-arm64', 'bun-linux-x64-musl', 'bun-linux-arm64-musl'] as const;

const { values: opts } = parseArgs({
  options: {
    target: { type: 'string', multiple: true },
    'no-xz': { type: 'boolean' },
    'no-node': { type: 'boolean' },
    'update-modules': { type: 'boolean' },
    out: { type: 'string' },
  },
});
const dist = opts.out ?? join(root, 'dist');
const targets = (opts.target ?? [...TARGETS]) as (typeof TARGETS)[number][];
for (const t of targets) {
  if (!(TARGETS as readonly string[]).includes(t)) fail(`unknown target ${t}; one of ${TARGETS.join(', ')}`);
}

function fail(msg: string): never {
  console.error(`build: ${msg}`);
  process.exit(1);
}

function commit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

const defines = (target: string, runtime: 'bun' | 'node') => ({
  TETHER_VERSION: JSON.stringify(pkg.version),
  TETHER_COMMIT: JSON.stringify(commit()),
  TETHER_TARGET: JSON.stringify(target),
  TETHER_RUNTIME: JSON.stringify(runtime),
});

const artifacts: string[] = [];
const started = performance.now();
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

for (const [binary, entry] of [
  ['tether-edge', 'edge/main.ts'],
  ['tether-hub', 'cloud/main.ts'],
] as const) {
  for (const target of targets) {
    const outfile = join(dist, `${binary}-${target.replace(/^bun-/, '')}`);
    const result = await Bun.build({
      entrypoints: [join(root, entry)],
      target: 'bun',
      minify: true,
      bytecode: true,
      metafile: binary === 'tether-edge',
      define: defines(target, 'bun'),
      compile: { target, outfile },
    });
    if (!result.success) fail(`compile ${binary} for ${target}:\n${result.logs.join('\n')}`);
    if (binary === 'tether-edge' && target === targets[0] && result.metafile) {
      const problems = checkEdgeModules(root, modulesOf(root, result.metafile), Boolean(opts['update-modules']));
      if (problems.length) fail(`tether-edge module check:\n  ${problems.join('\n  ')}`);
    }
    artifacts.push(outfile);
  }
}

if (!opts['no-node']) {
  const outfile = join(dist, 'tether-edge.mjs');
  const result = await Bun.build({
    entrypoints: [join(root, 'edge/main.ts')],
    target: 'node',
    format: 'esm',
    minify: true,
    external: ['better-sqlite3'],
    define: defines('node-linux', 'node'),
  });
  if (!result.success || !result.outputs[0]) fail(`bundle tether-edge.mjs:\n${result.logs.join('\n')}`);
  // The entry's own `#!/usr/bin/env bun` line is kept by the bundler; the Node bundle runs under node.
  const code = (await result.outputs[0].text()).replace(/^((#!|\/\/ @bun)[^\n]*\n)+/, '');
  writeFileSync(outfile, `#!/usr/bin/env node\n${code}`, { mode: 0o755 });
  artifacts.push(outfile);
}

// The installer, with the release location stamped in when the release process names one.
{
  const base = process.env.TETHER_RELEASE_BASE ?? '';
  if (base && !/^https:\/\/[^\s"$`]+$/.test(base)) fail(`TETHER_RELEASE_BASE must be an https URL, got ${JSON.stringify(base)}`);
  const script = readFileSync(join(root, 'scripts/install.sh'), 'utf8').replace(/^RELEASES=""$/m, `RELEASES="${base.replace(/\/$/, '')}"`);
  writeFileSync(join(dist, 'install.sh'), script, { mode: 0o755 });
  artifacts.push(join(dist, 'install.sh'));
}

const sums: string[] = [];
const rows: string[] = [];
for (const file of artifacts) {
  const name = relative(dist, file);
  const raw = statSync(file).size;
  let xzSize = 0;
  if (!opts['no-xz'] && !file.endsWith('.sh')) {
    execFileSync('xz', ['-T0', '-6', '-k', '-f', file]);
    xzSize = statSync(`${file}.xz`).size;
    sums.push(`${sha256(`${file}.xz`)}  ${name}.xz`);
  }
  sums.push(`${sha256(file)}  ${name}`);
  rows.push(`${name.padEnd(34)} ${mb(raw).padStart(9)}${xzSize ? `  ${mb(xzSize).padStart(9)} .xz` : ''}`);
}
writeFileSync(join(dist, 'SHA256SUMS'), sums.sort((a, b) => a.slice(66).localeCompare(b.slice(66))).join('\n') + '\n');
console.log(rows.join('\n'));
console.log(`build: ${artifacts.length} artifacts in dist/ (${((performance.now() - started) / 1000).toFixed(1)} s)`);

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}
function mb(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
