/**
 * The artifact relay: release files of an EdgeUpgrade for nodes that cannot reach its baseURL,
 * served inside their tunnel sessions. A node's upgrader (edge/upgrade/download.ts, hub-fetch.ts)
 * sends `GET /tether/v1/artifacts/<edgeupgrade>/<file>` on an api stream; api-forward.ts hands
 * requests under that prefix here instead of to kube-apiserver, with the node the session
 * authenticated (streams exist only inside an authenticated session, agent-server.ts).
 *
 * Contract:
 * - GET and HEAD only (else 405). The path is exactly prefix + object name + file: no
 *   percent-encoding, no further segments (400). The file must be a release file: SHA256SUMS,
 *   SHA256SUMS.sig, VERSION, tether-edge-linux-<target>[.xz|.gz] (403 for any other name).
 * - The EdgeUpgrade is read with the hub's credentials (artifact-upgrades.ts): unknown 404. The URL
 *   fetched is `<spec.baseURL>/<file>` and nothing else: the node chooses among the object's files,
 *   never a host or a path. An http baseURL is used only with spec.insecure (else 502).
 * - Bytes come from the hub's disk copy per (uid, file) (artifact-cache.ts), with the origin's
 *   ETag and Last-Modified. `Range: bytes=a-` / `bytes=a-b` (one range) answers 206, or 416 past
 *   the end; `If-Range` that does not match the copy's validator answers the whole file (200).
 * - Failures are Kubernetes Status JSON from `sendStatus` only: the origin's 404 is 404, any
 *   other origin failure 502, the cache full 507, the apiserver or cache unusable 503.
 * - The relay is not trusted for content: the agent checks SHA256SUMS.sig with the release key
 *   pinned at join and every file against SHA256SUMS (docs/security.md).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { messageOf } from '../../shared/errors.ts';
import { type StatusReason, statusBody, statusText } from '../../shared/kube/status.ts';
import type { Logger } from '../../shared/log.ts';
import { type ArtifactCache, type ArtifactInfo, CacheFullError } from './artifact-cache.ts';
import { OriginError } from './artifact-origin.ts';
import type { UpgradeLookup } from './artifact-upgrades.ts';

/** The path prefix the relay serves (edge/upgrade/download.ts HUB_ARTIFACTS_PREFIX). */
export const ARTIFACTS_PREFIX = '/tether/v1/artifacts/';

/** Release files a node may ask for (scripts/build.ts names them; shared/upgrade/contract.ts RELEASE_FILES). */
const RELEASE_FILE = /^(SHA256SUMS|SHA256SUMS\.sig|VERSION|tether-edge-linux-[a-z0-9]+(-[a-z0-9]+)*(\.xz|\.gz)?)$/;
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isArtifactPath(url: string | undefined): boolean {
  return !!url && url.startsWith(ARTIFACTS_PREFIX);
}

export interface ArtifactRelayOptions {
  /** Where an EdgeUpgrade's files are (a failure answers 503). */
  upgrades: UpgradeLookup;
  cache: ArtifactCache;
  /** Every request once with its status (for metrics). */
  answered?(node: string, code: number): void;
  log: Logger;
}

export interface ArtifactRelay {
  handle(node: string, req: IncomingMessage, res: ServerResponse): void;
  close(): void;
}

interface StatusOpts {
  code: number;
  reason: StatusReason;
  message: string;
}

/** The one place an error becomes an answer. */
function sendStatus(res: ServerResponse, s: StatusOpts): void {
  if (res.headersSent) return void res.destroy();
  const body = statusText(statusBody(s.code, s.reason, `tether-hub: ${s.message}`));
  res.writeHead(s.code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
}

/** One byte range of a file of `size` bytes, RFC 9110 14.2 (several ranges are answered whole). */
function rangeOf(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header?.trim() ?? '');
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    return n === 0 ? 'unsatisfiable' : { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

/** If-Range matches only the copy's strong ETag or its exact Last-Modified. */
function ifRangeMatches(v: string | undefined, info: ArtifactInfo): boolean {
  if (v === undefined) return true;
  if (v.startsWith('"') || v.startsWith('W/')) return !v.startsWith('W/') && v === info.etag && !info.etag.startsWith('W/');
  return v === info.lastModified;
}

export function createArtifactRelay(o: ArtifactRelayOptions): ArtifactRelay {
  const { log } = o;

  const serve = async (node: string, req: IncomingMessage, res: ServerResponse): Promise<number> => {
    const fail = (s: StatusOpts) => (sendStatus(res, s), s.code);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return fail({ code: 405, reason: 'MethodNotAllowed', message: `${req.method} ${ARTIFACTS_PREFIX}…: release files are read with GET or HEAD` });
    }
    const path = (req.url ?? '').split('?')[0]!;
    const parts = path.slice(ARTIFACTS_PREFIX.length).split('/');
    if (parts.length !== 2 || path.includes('%') || !OBJECT_NAME.test(parts[0]!) || parts[0]!.length > 253 || !parts[1]) {
      return fail({ code: 400, reason: 'BadRequest', message: `${path}: expected ${ARTIFACTS_PREFIX}<edgeupgrade>/<file>` });
    }
    const [name, file] = parts as [string, string];
    if (!RELEASE_FILE.test(file)) {
      return fail({ code: 403, reason: 'Forbidden', message: `${file} is not a release file the hub relays (SHA256SUMS, SHA256SUMS.sig, VERSION, tether-edge-linux-<target>[.xz|.gz])` });
    }
    let up;
    try {
      up = await o.upgrades(name);
    } catch (e) {
      log.warn('artifact relay: read EdgeUpgrade failed', { node, upgrade: name, error: messageOf(e) });
      return fail({ code: 503, reason: 'ServiceUnavailable', message: `read EdgeUpgrade ${name}: ${messageOf(e)}` });
    }
    if (!up) return fail({ code: 404, reason: 'NotFound', message: `EdgeUpgrade ${name} not found` });
    let url: URL;
    try {
      url = new URL(`${up.baseURL.replace(/\/+$/, '')}/${file}`);
    } catch {
      return fail({ code: 502, reason: '', message: `EdgeUpgrade ${name}: spec.baseURL ${JSON.stringify(up.baseURL)} is not a URL` });
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && up.insecure)) {
      return fail({ code: 502, reason: '', message: `EdgeUpgrade ${name}: spec.baseURL must be https (http only with spec.insecure: true)` });
    }
    let artifact;
    try {
      artifact = await o.cache.open(up.uid, file, url);
    } catch (e) {
      if (e instanceof CacheFullError) return fail({ code: 507, reason: '', message: `${file} of EdgeUpgrade ${name}: ${e.message}` });
      if (e instanceof OriginError) {
        const code = e.status === 404 ? 404 : 502;
        return fail({ code, reason: code === 404 ? 'NotFound' : '', message: `${file} of EdgeUpgrade ${name}: ${e.message}` });
      }
      return fail({ code: 503, reason: 'ServiceUnavailable', message: `${file} of EdgeUpgrade ${name}: ${messageOf(e)}` });
    }
    const { info } = artifact;
    const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes' };
    if (info.etag) headers.etag = info.etag;
    if (info.lastModified) headers['last-modified'] = info.lastModified;
    const ifRange = req.headers['if-range'];
    const asked = ifRangeMatches(Array.isArray(ifRange) ? ifRange[0] : ifRange, info) ? rangeOf(req.headers.range, info.size) : undefined;
    if (asked === 'unsatisfiable') {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${info.size}`, 'content-length': 0 }).end();
      return 416;
    }
    const { start, end } = asked ?? { start: 0, end: info.size - 1 };
    const code = asked ? 206 : 200;
    if (asked) headers['content-range'] = `bytes ${start}-${end}/${info.size}`;
    headers['content-length'] = end - start + 1;
    res.writeHead(code, headers);
    if (req.method === 'HEAD' || end < start) {
      res.end();
      return code;
    }
    const body = artifact.read(start, end);
    res.once('close', () => body.destroy());
    body.once('error', (e) => {
      log.warn('artifact relay: transfer cut', { node, upgrade: name, file, error: messageOf(e) });
      res.destroy();
    });
    body.pipe(res);
    return code;
  };

  return {
    handle(node, req, res) {
      serve(node, req, res).then(
        (code) => o.answered?.(node, code),
        (e) => {
          log.warn('artifact relay: request failed', { node, error: messageOf(e) });
          sendStatus(res, { code: 500, reason: 'InternalError', message: messageOf(e) });
          o.answered?.(node, 500);
        },
      );
    },
    close() {
      o.cache.close();
    },
  };
}
