/**
 * Real releases of tether-edge for the upgrade end-to-end suite, signed like `npm run build
 * --sign-key` signs them: SHA256SUMS (the binary and VERSION), SHA256SUMS.sig (raw Ed25519 over
 * it), VERSION. Kinds:
 *   - good:       tether-edge compiled for bun-linux-x64 with the version baked in;
 *   - broken:     a tiny compiled program that prints its version and exits 1 (a build that fails
 *                 its start-up), signed as a real release;
 *   - checksum:   a good release whose binary was changed after signing;
 *   - signature:  a good release whose SHA256SUMS.sig was made with another key.
 * Compiled binaries are cached under .tether/upgrade-releases/, keyed by the content of edge/,
 * shared/ and package.json (a finer key than the commit while the tree is being edited) and the
 * version, so reruns do not compile again. serveReleases() serves them over HTTPS on the control
 * plane's address with a test CA.
 */
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { copyFileSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { publicKeyPem, signRelease } from '../../scripts/build/sign.ts';
import { RELEASE_FILES, edgeArtifactName } from '../../shared/upgrade/contract.ts';
import { CONTROL_PLANE_ADDRESS } from './netns.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));
export const RELEASE_TARGET = 'bun-linux-x64';
export const ARTIFACT = edgeArtifactName(RELEASE_TARGET);
const cacheRoot = join(repo, '.tether', 'upgrade-releases');

/** A hash of everything that goes into the tether-edge binary. */
function sourceKey(): string {
  const h = createHash('sha256');
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (/\.(ts|json|sql)$/.test(name) && !/\.test\.ts$/.test(name)) h.update(relative(repo, p)).update('\0').update(readFileSync(p)).update('\0');
    }
  };
  walk(join(repo, 'edge'));
  walk(join(repo, 'shared'));
  h.update(readFileSync(join(repo, 'package.json')));
  return h.digest('hex').slice(0, 16);
}

/** tether-edge for bun-linux-x64 with `version` baked in (scripts/build.ts --only --target --version); cached. */
export function buildEdge(version: string): string {
  const key = sourceKey();
  const dir = join(cacheRoot, 'bin', `${key}-${version}`);
  const binary = join(dir, ARTIFACT);
  if (existsSync(binary)) return binary;
  mkdirSync(join(cacheRoot, 'bin'), { recursive: true });
  // Builds of other sources are stale (about 110 MB each): only this source's are kept.
  for (const old of readdirSync(join(cacheRoot, 'bin'))) if (!old.startsWith(`${key}-`) && !old.startsWith('.build-')) rmSync(join(cacheRoot, 'bin', old), { recursive: true, force: true });
  const out = mkdtempSync(join(cacheRoot, 'bin', '.build-'));
  try {
    execFileSync(process.execPath, ['scripts/build.ts', '--out', out, '--version', version, '--only', 'tether-edge', '--target', RELEASE_TARGET, '--no-xz', '--no-gz', '--no-node'], {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 600_000,
    });
    mkdirSync(dir, { recursive: true });
    renameSync(join(out, ARTIFACT), binary);
  } catch (e) {
    const err = e as { stderr?: Buffer; stdout?: Buffer };
    throw new Error(`build tether-edge ${version}: ${String(err.stderr ?? '')}${String(err.stdout ?? '')}`.trim(), { cause: e });
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  return binary;
}

/** A compiled program that prints `<version> (broken test build)` and exits 1, whatever it is asked. */
export async function buildBroken(version: string): Promise<string> {
  const dir = join(cacheRoot, 'broken', version);
  const binary = join(dir, ARTIFACT);
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  const entry = join(dir, 'entry.ts');
  writeFileSync(entry, `console.log(${JSON.stringify(`${version} (broken test build)`)});\nprocess.exit(1);\n`);
  const r = await Bun.build({ entrypoints: [entry], target: 'bun', compile: { target: RELEASE_TARGET, outfile: `${binary}.tmp` } });
  if (!r.success) throw new Error(`build the broken release: ${r.logs.join('\n')}`);
  renameSync(`${binary}.tmp`, binary);
  return binary;
}

export interface ReleaseKey {
  key: KeyObject;
  /** What `tether-edge join --release-key` pins. */
  publicKeyPem: string;
  /** The PEM public key as a file (join takes a path or PEM: see its --help). */
  publicKeyFile: string;
}

/** A fresh Ed25519 release key (in memory; the public half also as a file in `dir`). */
export function makeReleaseKey(dir: string, name = 'release'): ReleaseKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = publicKeyPem(privateKey);
  const publicKeyFile = join(dir, `${name}.pub`);
  writeFileSync(publicKeyFile, pem);
  return { key: privateKey, publicKeyPem: pem, publicKeyFile };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export type Tamper = 'checksum' | 'signature';

/**
 * Writes a release of `binary` as `version` into `<root>/<name>/`: the binary under the artifact
 * name, VERSION, SHA256SUMS and its signature by `key`. `tamper` spoils it after signing.
 */
export function writeRelease(root: string, name: string, o: { version: string; binary: string; key: ReleaseKey; tamper?: Tamper; otherKey?: ReleaseKey }): string {
  const dir = join(root, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  copyFileSync(o.binary, join(dir, ARTIFACT));
  // As scripts/build.ts writes it: the binary gzipped beside it, which the agent fetches (level 1 here: speed).
  writeFileSync(join(dir, `${ARTIFACT}.gz`), gzipSync(readFileSync(o.binary), { level: 1 }));
  writeFileSync(join(dir, RELEASE_FILES.version), `${o.version}\n`);
  const sums =
    [ARTIFACT, `${ARTIFACT}.gz`, RELEASE_FILES.version]
      .sort()
      .map((f) => `${sha256(readFileSync(join(dir, f)))}  ${f}`)
      .join('\n') + '\n';
  writeFileSync(join(dir, RELEASE_FILES.sums), sums);
  const signer = o.tamper === 'signature' ? (o.otherKey ?? makeReleaseKey(dir, 'not-the-release-key')).key : o.key.key;
  writeFileSync(join(dir, RELEASE_FILES.signature), signRelease(Buffer.from(sums), signer));
  if (o.tamper === 'checksum') {
    // One byte changed in the middle of the binary and of its .gz, after signing: the sizes stay, the sha256s do not.
    for (const f of [ARTIFACT, `${ARTIFACT}.gz`]) {
      const b = readFileSync(join(dir, f));
      const at = b.length >> 1;
      b[at] = b[at]! ^ 0xff;
      writeFileSync(join(dir, f), b);
    }
  }
  return dir;
}

export interface ReleaseServer {
  /** https://198.18.0.1:<port>/<name>: a release's baseURL. */
  baseURL(name: string): string;
  /** The test CA that signs the server's certificate (the nodes trust it like a system CA). */
  caFile: string;
  /** Requests served, e.g. "GET /good/SHA256SUMS 200". */
  requests: string[];
  close(): Promise<void>;
}

/** Serves `<root>/<name>/<file>` over HTTPS on the control plane's address, with Range requests (resumed downloads). */
export async function serveReleases(root: string, work: string, address = CONTROL_PLANE_ADDRESS): Promise<ReleaseServer> {
  const pki = join(work, 'release-pki');
  mkdirSync(pki, { recursive: true });
  const o = (args: string[]) => execFileSync('openssl', args, { cwd: pki, stdio: ['ignore', 'pipe', 'pipe'] });
  o(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=tether test release CA']);
  o(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=releases']);
  writeFileSync(join(pki, 'ext.cnf'), `subjectAltName=IP:${address}\nextendedKeyUsage=serverAuth\n`);
  o(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf']);
  const requests: string[] = [];
  const base = resolve(root);
  const server: Server = createServer({ key: readFileSync(join(pki, 'server.key')), cert: readFileSync(join(pki, 'server.crt')) }, (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'https://x').pathname);
    const file = resolve(base, `.${path}`);
    const answer = (status: number) => requests.push(`${req.method} ${path} ${status}`);
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !file.startsWith(`${base}/`) || !existsSync(file) || !statSync(file).isFile()) {
      answer(404);
      res.writeHead(404).end('not found\n');
      return;
    }
    const size = statSync(file).size;
    const send = (status: number, headers: Record<string, string | number>, start: number, end: number) => {
      answer(status);
      res.writeHead(status, { ...headers, 'content-length': end - start + 1, 'accept-ranges': 'bytes' });
      if (req.method === 'HEAD' || end < start) res.end();
      else createReadStream(file, { start, end }).pipe(res);
    };
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (!range) return send(200, {}, 0, size - 1);
    const start = Number(range[1]);
    const end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
    if (start >= size || start > end) {
      answer(416);
      res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      return;
    }
    send(206, { 'content-range': `bytes ${start}-${end}/${size}` }, start, end);
  });
  await new Promise<void>((r, j) => server.once('error', j).listen(0, address, () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    baseURL: (name) => `https://${address}:${port}/${name}`,
    caFile: join(pki, 'ca.crt'),
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
