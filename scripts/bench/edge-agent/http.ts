/** Timed HTTP GETs with keep-alive, direct to kube-apiserver (node certificate) or through the agent. */
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

export interface Getter {
  get(path: string, headers?: Record<string, string>): Promise<{ status: number; ms: number; bytes: number; source: string }>;
  close(): void;
}

export function getter(base: string, tls?: { ca: Buffer; cert: Buffer; key: Buffer }): Getter {
  const url = new URL(base);
  const https = url.protocol === 'https:';
  const agent = https ? new HttpsAgent({ keepAlive: true, ...tls }) : new HttpAgent({ keepAlive: true });
  return {
    get(path, headers = {}) {
      const t0 = performance.now();
      return new Promise((resolve, reject) => {
        const req = (https ? httpsRequest : httpRequest)(
          { hostname: url.hostname, port: url.port, path, agent, headers: { accept: 'application/json', 'user-agent': 'kubelet/v1.34.4 (linux/amd64) kubernetes/bench', ...headers } },
          (res) => {
            let bytes = 0;
            res.on('data', (c: Buffer) => (bytes += c.length));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0, bytes, source: String(res.headers['x-tether-source'] ?? 'upstream') }));
          },
        );
        req.on('error', reject);
        req.end();
      });
    },
    close: () => agent.destroy(),
  };
}

export const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
};

/** Runs `a` and `b` alternately `n` times each, so both see the same machine conditions. */
export async function sideBySide(n: number, a: () => Promise<number>, b: () => Promise<number>): Promise<{ a: number[]; b: number[] }> {
  const out = { a: [] as number[], b: [] as number[] };
  for (let i = 0; i < n; i++) {
    out.a.push(await a());
    out.b.push(await b());
  }
  return out;
}

/** Resident memory of a process: all of it, and the private (anonymous) part — the rest is the
 *  runtime's code mapped from the executable, shared and reclaimable like any file cache. */
export function memoryOf(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(status.match(new RegExp(`${name}:\\s+(\\d+) kB`))?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon') };
}
