/**
 * Runs tether-edge (from source) inside an edge site, the way it runs on a node: the proxy on the
 * site's 127.0.0.1:10261, pointed at the control plane through the site's link; and the local
 * clients' side: certificates from the agent's local CA, requests made from inside the site.
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openLocalCa } from '../../edge/certs/local-ca.ts';
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
  const m = out.match(/proxy on (https?:\/\/\S+), admin on (http:\/\/\S+),/);
  return m ? { proxy: m[1]!, admin: m[2]! } : undefined;
}

/** A local client's credentials for the agent: a certificate from the agent's local CA. */
export interface LocalClient {
  /** A kubeconfig naming the agent (https://127.0.0.1:10261 unless told) with these credentials. */
  kubeconfig: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}

/**
 * Issues a local client certificate for `cn` from the local CA in `caDir` (creating the CA when the
 * agent has not yet: the agent then opens the same one), and writes a kubeconfig for it in `dir`.
 */
export function localClient(caDir: string, cn: string, dir: string, server = 'https://127.0.0.1:10261'): LocalClient {
  const ca = openLocalCa(caDir);
  const pair = ca.issue(cn, 'client');
  const kubeconfig = join(dir, `${cn}.kubeconfig`);
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'agent', cluster: { server, 'certificate-authority-data': b64(ca.certPem) } }],
      contexts: [{ name: 'agent', context: { cluster: 'agent', user: cn } }],
      'current-context': 'agent',
      users: [{ name: cn, user: { 'client-certificate-data': b64(pair.certPem), 'client-key-data': b64(pair.keyPem) } }],
    }),
    { mode: 0o600 },
  );
  return { kubeconfig, caPem: ca.certPem, ...pair };
}

export interface SiteRequest {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** Trust (the local CA) and, optionally, a client certificate. */
  caPem?: string;
  certPem?: string;
  keyPem?: string;
  /** Default https://127.0.0.1:10261. */
  base?: string;
}

/**
 * One HTTP request from inside the site (where the agent's 127.0.0.1 is), as a local process would
 * make it; never throws on an HTTP status. `status` 0 means the connection or handshake failed.
 */
export async function requestInSite(site: EdgeSite, r: SiteRequest, dir: string): Promise<{ status: number; body: any; text: string; source: string | null }> {
  const file = join(dir, `req-${process.pid}-${++requests}.json`);
  writeFileSync(file, JSON.stringify(r), { mode: 0o600 });
  const script = `
    const r = JSON.parse(await Bun.file(process.argv[1]).text());
    const tls = r.caPem ? { ca: r.caPem, ...(r.certPem ? { cert: r.certPem, key: r.keyPem } : {}) } : undefined;
    try {
      const res = await fetch((r.base ?? 'https://127.0.0.1:10261') + r.path, { method: r.method ?? 'GET', headers: r.headers, body: r.body, tls, signal: AbortSignal.timeout(15000) });
      console.log(JSON.stringify({ status: res.status, source: res.headers.get('x-tether-source'), text: await res.text() }));
    } catch (e) {
      console.log(JSON.stringify({ status: 0, source: null, text: String(e) }));
    }`;
  const out = await site.exec([process.execPath, '-e', script, file], { timeoutMs: 30_000 });
  rmSync(file, { force: true });
  let parsed: { status: number; text: string; source: string | null };
  try {
    parsed = JSON.parse(out.stdout);
  } catch {
    throw new Error(`request in site: ${out.stdout}\n${out.stderr}`);
  }
  let body: any;
  try {
    body = JSON.parse(parsed.text);
  } catch {
    body = parsed.text;
  }
  return { ...parsed, body };
}
let requests = 0;
