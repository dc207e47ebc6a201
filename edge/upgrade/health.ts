/**
 * Whether this agent is healthy, as the trial of a new version judges it (settleTrial polls this
 * until the deadline): the store opened and passes the same check /readyz reports, the proxy
 * answers HTTP on its listener, and the upstream is reachable — or the agent is correctly
 * offline: no upstream answers because the link is down (the store answers meanwhile), not
 * because an apiserver that does answer refuses this binary (a TLS or certificate failure, a
 * 401/403): that would be a new version that broke its own credentials, and it must roll back.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface HealthSources {
  /** Whether the store was opened at all. */
  storeOpen: boolean;
  /** /readyz's store check: null when fine. */
  storeProblem: () => string | null;
  /** The proxy's URL (https://127.0.0.1:10261 …). */
  proxyUrl: string;
  pool: { online: boolean; all(): readonly { lastError?: string }[] };
  /** Bound of one proxy check (default 3 s). */
  timeoutMs?: number;
}

/** Upstream failures that mean an apiserver (or the hub) answered and refused this binary. */
// (A cut during the TLS handshake, "socket disconnected before secure TLS connection", is the link.)
const REFUSED = /certificate|self[- ]signed|unable to verify|unable to get (local )?issuer|\balert\b|answered 40[13]\b|\b40[13] (unauthorized|forbidden)|unauthorized|forbidden|denied/i;

export function isRefusal(reason: string | undefined): boolean {
  return reason !== undefined && REFUSED.test(reason);
}

/** Any HTTP answer on the listener counts (without a client certificate the proxy answers 401). */
export function proxyAnswers(url: string, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const u = new URL('/healthz', url);
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, {
      method: 'GET',
      timeout: timeoutMs,
      // A self-probe on our own loopback listener that sends no credentials and reads only the
      // status line: the serving certificate is not what is being judged here.
      rejectUnauthorized: false,
      agent: false,
    }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', () => resolve(false));
    req.end();
  });
}

export interface HealthVerdict {
  healthy: boolean;
  /** Why not, for logs and the RolledBack reason. */
  problem?: string;
}

export async function checkHealth(s: HealthSources): Promise<HealthVerdict> {
  if (!s.storeOpen) return { healthy: false, problem: 'the snapshot store did not open' };
  const storeProblem = s.storeProblem();
  if (storeProblem) return { healthy: false, problem: `store: ${storeProblem}` };
  if (!(await proxyAnswers(s.proxyUrl, s.timeoutMs))) return { healthy: false, problem: `the proxy does not answer on ${s.proxyUrl}` };
  if (s.pool.online) return { healthy: true };
  const refused = s.pool.all().map((u) => u.lastError).find(isRefusal);
  if (refused) return { healthy: false, problem: `the upstream refuses this agent: ${refused}` };
  const unknown = s.pool.all().every((u) => u.lastError === undefined);
  // No verdict on any upstream yet (the first probe is in flight): not healthy yet, ask again.
  if (unknown) return { healthy: false, problem: 'no upstream verdict yet' };
  return { healthy: true }; // correctly offline: the link is down, the store answers
}
