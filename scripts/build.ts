#!/usr/bin/env bun
/**
 * Release build. Compiles tether-edge and tether-hub for four Linux targets, plus tether-edge.mjs,
 * a Node >= 20 bundle for 32-bit ARM (better-sqlite3 stays external), and the container images
 * tether-hub-<v>.oci.tar and tether-edge-<v>.oci.tar (OCI layouts, one linux/amd64 + linux/arm64
 * index each, from the glibc binaries: scripts/build/images.ts) with their image indexes
 * <name>-<v>.oci-index.json, whose sha256 in SHA256SUMS is the image digest. Writes everything to
 * dist/ with .xz copies of the binaries, VERSION (one line, the version built) and SHA256SUMS,
 * prints each artifact's size, and checks the modules bundled into tether-edge against
 * scripts/edge-modules.txt. With
 * --sign-key it also writes SHA256SUMS.sig, the raw Ed25519 signature over SHA256SUMS
 * (scripts/build/sign.ts). VERSION is listed in SHA256SUMS so the signature names the version:
 * an old signed release cannot be passed off as a newer one.
 *
 *   bun scripts/build.ts                  # everything
 *   bun scripts/build.ts --target bun-linux-x64 --no-xz   # a quick local build (--target repeats)
 *   bun scripts/build.ts --only tether-edge               # one binary (tether-edge includes the
 *                                         #   Node bundle unless --no-node; --only repeats)
 *   bun scripts/build.ts --version 0.2.0  # the version baked in and written to VERSION
 *                                         #   (default: package.json's)
 *   bun scripts/build.ts --sign-key release.key           # sign SHA256SUMS (an Ed25519 private key PEM)
 *   bun scripts/build.ts --xz-level 1     # faster, larger .xz copies (default 6)
 *   bun scripts/build.ts --no-gz          # no .gz copies of the tether-edge binaries (what upgrades fetch)
 *   bun scripts/build.ts --no-images      # no container images (they are built from the
 *                                         #   bun-linux-x64/-arm64 targets built, amd64/arm64)
 *   bun scripts/build.ts --update-modules # accept a change in the edge module list
 *   bun scripts/build.ts --out DIR        # write somewhere else than dist/ (tests)
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import pkg from '../package.json' with { type: 'json' };
import { RELEASE_FILES } from '../shared/upgrade/contract.ts';
import { imageFile, imageIndexFile, type ImageArch, type ImageSpec, writeImage } from './build/images.ts';
import { checkEdgeModules, modulesOf } from './build/modules.ts';
import { readSigningKey, signRelease } from './build/sign.ts';

const root = join(import.meta.dir, '..');

const TARGETS = ['bun-linux-x64', 'bun-linux-arm64', 'bun-linux-x64-musl', 'bun-linux-arm64-musl'] as const;
const BINARIES = [
  ['tether-edge', 'edge/main.ts'],
  ['tether-hub', 'cloud/main.ts'],
] as const;
/** What a release version looks like (semver without build metadata): it names a directory and is compared by the agent. */
const VERSION_PATTERN = /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/;

const { values: opts } = parseArgs({
  options: {
    target: { type: 'string', multiple: true },
    'no-xz': { type: 'boolean' },
    'no-gz': { type: 'boolean' },
    'no-images': { type: 'boolean' },
    'no-node': { type: 'boolean' },
    'update-modules': { type: 'boolean' },
    out: { type: 'string' },
    only: { type: 'string', multiple: true },
    version: { type: 'string' },
    'sign-key': { type: 'string' },
    'xz-level': { type: 'string' },
  },
});
const dist = opts.out ?? join(root, 'dist');
const targets = (opts.target ?? [...TARGETS]) as (typeof TARGETS)[number][];
for (const t of targets) {
  if (!(TARGETS as readonly string[]).includes(t)) fail(`unknown target ${t}; one of ${TARGETS.join(', ')}`);
}
const names = BINARIES.map(([b]) => b as string);
for (const o of opts.only ?? []) {
  if (!names.includes(o)) fail(`unknown --only ${o}; one of ${names.join(', ')}`);
}
const binaries = BINARIES.filter(([b]) => !opts.only || opts.only.includes(b));
const version = opts.version ?? pkg.version;
if (!VERSION_PATTERN.test(version)) fail(`--version must look like 1.2.3 or 1.2.3-rc.1, got ${JSON.stringify(version)}`);
const xzLevel = opts['xz-level'] ?? '6';
if (!/^[0-9]$/.test(xzLevel)) fail(`--xz-level must be 0–9, got ${JSON.stringify(xzLevel)}`);
// Read the key before minutes of compiling: a wrong path or key type fails at once.
let signingKey: ReturnType<typeof readSigningKey> | undefined;
if (opts['sign-key']) {
  try {
    signingKey = readSigningKey(opts['sign-key']);
  } catch (e) {
    fail((e as Error).message);
  }
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
  TETHER_VERSION: JSON.stringify(version),
  TETHER_COMMIT: JSON.stringify(commit()),
  TETHER_TARGET: JSON.stringify(target),
  TETHER_RUNTIME: JSON.stringify(runtime),
});

const artifacts: string[] = [];
const started = performance.now();
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

for (const [binary, entry] of binaries) {
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

if (!opts['no-node'] && binaries.some(([b]) => b === 'tether-edge')) {
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

// The container images, from the glibc binaries just built (the musl ones would need musl's libstdc++ too).
const IMAGE_TARGETS: Partial<Record<(typeof TARGETS)[number], ImageArch>> = { 'bun-linux-x64': 'amd64', 'bun-linux-arm64': 'arm64' };
const images: string[] = [];
if (!opts['no-images']) {
  for (const [binary] of binaries) {
    const built = targets.filter((t) => IMAGE_TARGETS[t]);
    if (!built.length) continue;
    const spec: ImageSpec = {
      name: binary,
      version,
      binaries: Object.fromEntries(built.map((t) => [IMAGE_TARGETS[t]!, join(dist, `${binary}-${t.replace(/^bun-/, '')}`)])),
      out: join(dist, imageFile(binary, version)),
    };
    let written: Awaited<ReturnType<typeof writeImage>>;
    try {
      written = await writeImage(spec);
    } catch (e) {
      fail(`image ${binary}: ${(e as Error).message}`);
    }
    const index = join(dist, imageIndexFile(binary, version));
    writeFileSync(index, written.index);
    artifacts.push(written.path, index);
    images.push(`${imageFile(binary, version)} ${written.digest} (${written.platforms.map((p) => `linux/${p}`).join(', ')})`);
  }
}

// The installer, with the release location stamped in when the release process names one.
{
  const base = process.env.TETHER_RELEASE_BASE ?? '';
  if (base && !/^https:\/\/[^\s"$`]+$/.test(base)) fail(`TETHER_RELEASE_BASE must be an https URL, got ${JSON.stringify(base)}`);
  const script = readFileSync(join(root, 'scripts/install.sh'), 'utf8').replace(/^RELEASES=""$/m, `RELEASES="${base.replace(/\/$/, '')}"`);
  writeFileSync(join(dist, 'install.sh'), script, { mode: 0o755 });
  artifacts.push(join(dist, 'install.sh'));
}

// The version as a release file of its own, covered by SHA256SUMS and so by the signature.
writeFileSync(join(dist, RELEASE_FILES.version), `${version}\n`);
artifacts.push(join(dist, RELEASE_FILES.version));

const sums: string[] = [];
const rows: string[] = [];
for (const file of artifacts) {
  const name = relative(dist, file);
  const raw = statSync(file).size;
  let xzSize = 0;
  // Images carry gzipped layers already; the index is a few hundred bytes.
  if (!opts['no-xz'] && !file.endsWith('.sh') && name !== RELEASE_FILES.version && !/\.oci(\.tar|-index\.json)$/.test(name)) {
    execFileSync('xz', ['-T0', `-${xzLevel}`, '-k', '-f', file]);
    xzSize = statSync(`${file}.xz`).size;
    sums.push(`${sha256(`${file}.xz`)}  ${name}.xz`);
  }
  // The agent's over-the-air upgrade fetches this (node:zlib inflates it; xz has no decoder there).
  let gzSize = 0;
  if (!opts['no-gz'] && /^tether-edge-linux-/.test(name)) {
    writeFileSync(`${file}.gz`, gzipSync(readFileSync(file), { level: 9 }));
    gzSize = statSync(`${file}.gz`).size;
    sums.push(`${sha256(`${file}.gz`)}  ${name}.gz`);
  }
  sums.push(`${sha256(file)}  ${name}`);
  rows.push(`${name.padEnd(38)} ${mb(raw).padStart(9)}${xzSize ? `  ${mb(xzSize).padStart(9)} .xz` : ''}${gzSize ? `  ${mb(gzSize).padStart(9)} .gz` : ''}`);
}
const sumsText = sums.sort((a, b) => a.slice(66).localeCompare(b.slice(66))).join('\n') + '\n';
writeFileSync(join(dist, RELEASE_FILES.sums), sumsText);
if (signingKey) writeFileSync(join(dist, RELEASE_FILES.signature), signRelease(Buffer.from(sumsText), signingKey));
console.log(rows.join('\n'));
for (const line of images) console.log(`image: ${line}`);
console.log(
  `build: ${version}, ${artifacts.length} artifacts in ${dist}${signingKey ? `, ${RELEASE_FILES.sums} signed` : ', not signed (no --sign-key)'} (${((performance.now() - started) / 1000).toFixed(1)} s)`,
);

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}
function mb(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
