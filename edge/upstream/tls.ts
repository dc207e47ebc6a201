/**
 * Connections to one upstream apiserver: a keep-alive agent carrying the node's TLS material.
 *
 * Contract:
 * - `checkTls` validates PEM material before any agent uses it (a rotated certificate that does not
 *   parse, or a key that does not match its certificate, is refused and the old material stays).
 * - `createAgent` gives an `https.Agent` for https URLs (CA, client certificate and key) and an
 *   `http.Agent` for http URLs (TLS ignored). Both keep sockets alive and reuse them (TCP keepalive
 *   after 30 s idle, at most 4 idle connections kept); idle sockets do not hold the
 *   process open (the agent unrefs them), and `destroy()` ends every socket.
 * - `dropIdleSockets` closes pooled idle sockets, so the next request opens a fresh connection
 *   instead of reusing one to a server that went away.
 * - `retireAgent` is for rotation: idle sockets close now, sockets of requests in flight close when
 *   those requests end, and the agent never pools a socket again.
 *
 * node:http / node:https / node:tls only, so that it behaves the same under Bun and Node.
 */
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';

/** PEM contents (not file names). A missing `ca` means the system trust store. */
export interface UpstreamTls {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

export type UpstreamAgent = https.Agent | http.Agent;

/** Throws E_BAD_CONFIG when the material cannot make a TLS context. */
export function checkTls(material: UpstreamTls): void {
  if ((material.cert === undefined) !== (material.key === undefined)) {
    const msg = 'upstream tls: a client certificate needs its key and a key its certificate';
    throw new TetherError(ErrorCode.BadConfig, msg);
  }
  try {
    tls.createSecureContext({ ca: material.ca, cert: material.cert, key: material.key });
  } catch (cause) {
    throw new TetherError(ErrorCode.BadConfig, `upstream tls: ${messageOf(cause)}`, { cause });
  }
}

/**
 * Connection reuse on a metered link: keep-alive, TCP keepalive after 30 s of silence (a few bytes
 * now and then instead of the runtime's 1 s default; keeps NAT state, surfaces a vanished peer), and
 * at most MAX_IDLE idle connections kept: a burst of parallel requests (20 pods starting) would
 * otherwise leave a connection per request open for good, each with its keepalive traffic.
 */
export const POOLING = { keepAlive: true, keepAliveMsecs: 30_000, maxFreeSockets: 4 } as const;

export function createAgent(url: URL, material: UpstreamTls): UpstreamAgent {
  if (url.protocol === 'http:') return new http.Agent(POOLING);
  return new https.Agent({ ...POOLING, ca: material.ca, cert: material.cert, key: material.key });
}

/** Destroys the agent's pooled idle sockets; returns how many there were. */
export function dropIdleSockets(agent: UpstreamAgent): number {
  let n = 0;
  for (const sockets of Object.values(agent.freeSockets)) {
    for (const socket of sockets ?? []) {
      socket.destroy();
      n++;
    }
  }
  return n;
}

export function retireAgent(agent: UpstreamAgent): void {
  agent.keepSocketAlive = () => false;
  dropIdleSockets(agent);
}

/** True while the agent still has a socket open (in use or idle). */
export function agentBusy(agent: UpstreamAgent): boolean {
  const any = (d: NodeJS.ReadOnlyDict<unknown[]>) => Object.values(d).some((l) => (l?.length ?? 0) > 0);
  return any(agent.sockets) || any(agent.freeSockets);
}
