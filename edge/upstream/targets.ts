/**
 * The pool's upstreams as the proxy and the agent's own requests use them: one target per
 * upstream, made once and kept for the pool's life, carrying the upstream's connections and
 * telling the pool (health) and the traffic meter (bytes by kind) how each request goes.
 *
 * Contract
 *   createUpstreamTargets({ pool, meter, tls, links? }): UpstreamTargets
 *   targets.online               the pool's: some upstream is healthy
 *   targets.pick()               the pool's pick, as its target; undefined when none is healthy
 *   targets.reportFailure(t, e)  the pool's, for t's upstream (a target of no upstream is ignored)
 *   targets.track(t, abort)      the pool's, for t's upstream (returns a no-op for a stranger)
 *   targets.all()                one target per upstream, in --server order
 *   targets.setTls(m)            certificate rotation: the certificate and key of `tls` are replaced
 *                                in place (whoever reads it per connection gets the new ones: the
 *                                tunnel's dials, `tlsOptions`), then the pool's agents (pool.setTls)
 *   targets.renewalServers()     where certificate renewal sends its CSR: the healthy upstream first,
 *                                then every eligible one (an expired certificate fails every probe);
 *                                eligible are the https upstreams, or all when the links renew on
 *                                the upstream's own agent (via the hub)
 *   targets.renewalAgent         with such links: the agent CSR requests go on (asked per attempt)
 *   targets.close()              destroys the connections the targets made (the pool's are the pool's)
 *
 * A target's connections:
 * - `agent`: the upstream's own, with the node's client certificate (the pool's; it changes on
 *   setTls, so it is read per request);
 * - `bearerAgent`: for requests that bring their own credentials, one per upstream URL from the links;
 * - `sensitiveAgent` and `connect`: from the links, when they have them (via the hub: answers that
 *   carry credentials and upgrades on api streams of their own, never compressed).
 * The default links (`directLinks`) are TCP and TLS to each server: bearer requests on a keep-alive
 * agent with the CA and no client certificate; upgrades on a fresh TLS connection (`tlsOptions`).
 */
import http, { type Agent } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import type { Upstream, UpstreamPool } from './pool.ts';
import { POOLING, type UpstreamAgent, type UpstreamTls } from './tls.ts';
import type { TrafficKind, TrafficMeter } from './traffic.ts';

/** How an upstream is reached besides the pool's own agent (direct TCP/TLS, or through the hub). */
export interface UpstreamLinks {
  /** The pool's agent of each upstream (default tls.ts createAgent). */
  createAgent?: (url: URL, tls: UpstreamTls) => UpstreamAgent;
  /** Connections without the node's client certificate; asked once per upstream URL. */
  bearerAgent(url: URL): Agent;
  /** Connections for answers that carry credentials, when `agent`'s compress in a shared context. */
  sensitiveAgent?: Agent;
  /** A connection for upgrades other than TCP/TLS to the upstream's URL. */
  connect?: () => Duplex;
  /** Certificate renewal sends its CSRs on the upstream's own agent (the hub forwards them as the node). */
  renewOnUpstream?: boolean;
}

/** One request's progress, as forward() and the agent's own calls report it. */
export interface TargetExchange {
  sent(bytes: number): void;
  answered(headBytes: number): void;
  received(bytes: number): void;
  broken(err: unknown): void;
  end(): void;
}

/** An upstream as the proxy sees it (edge/proxy's ForwardTarget and UpgradeTarget). */
export interface UpstreamTarget {
  readonly url: URL;
  readonly agent: Agent;
  readonly bearerAgent: Agent;
  readonly sensitiveAgent?: Agent;
  connect?(): Duplex;
  /** A request to this upstream begins; its bytes count as `kind` (a watch is a watch to the pool). */
  exchange(kind: Exclude<TrafficKind, 'probe'>): TargetExchange;
  tlsOptions(withIdentity: boolean): ConnectionOptions;
}

export interface UpstreamTargets {
  /** Some upstream is healthy (the pool's). */
  readonly online: boolean;
  pick(): UpstreamTarget | undefined;
  reportFailure(t: UpstreamTarget, err: unknown): void;
  track(t: UpstreamTarget, abort: AbortController): () => void;
  all(): readonly UpstreamTarget[];
  setTls(m: { ca?: Buffer | string; cert: Buffer | string; key: Buffer | string }): void;
  renewalServers(): string[];
  renewalAgent?: () => Agent;
  close(): void;
}

export interface UpstreamTargetsOptions {
  pool: UpstreamPool;
  meter: TrafficMeter;
  /** The node's material, read per connection (shared with the tunnel's dials). */
  tls: UpstreamTls;
  /** Default `directLinks(tls)`. */
  links?: UpstreamLinks;
}

/** TCP and TLS to each server: bearer requests with the CA and no client certificate. */
export function directLinks(tls: UpstreamTls): UpstreamLinks {
  return {
    bearerAgent: (url) => (url.protocol === 'https:' ? new https.Agent({ ...POOLING, ca: tls.ca }) : new http.Agent(POOLING)),
  };
}

export function createUpstreamTargets(opts: UpstreamTargetsOptions): UpstreamTargets {
  const { pool, meter, tls } = opts;
  const links = opts.links ?? directLinks(tls);
  const bearerAgents = new Map<string, Agent>();
  const byUpstream = new Map<Upstream, UpstreamTarget>();
  const byTarget = new Map<UpstreamTarget, Upstream>();

  const make = (u: Upstream): UpstreamTarget => {
    const href = u.url.href;
    let bearer = bearerAgents.get(href);
    if (!bearer) {
      bearer = links.bearerAgent(u.url);
      bearerAgents.set(href, bearer);
    }
    const bearerAgent = bearer;
    return {
      url: u.url,
      get agent() {
        return u.agent;
      },
      bearerAgent,
      ...(links.sensitiveAgent ? { sensitiveAgent: links.sensitiveAgent } : {}),
      ...(links.connect ? { connect: links.connect } : {}),
      exchange(kind) {
        const x = pool.exchange(u, kind === 'watch' ? 'watch' : 'request');
        return {
          sent: (n) => meter.add('sent', kind, n),
          answered: (n) => {
            meter.add('received', kind, n);
            x.answered();
          },
          received: (n) => {
            meter.add('received', kind, n);
            x.heard();
          },
          broken: (e) => pool.reportFailure(u, e),
          end: () => x.end(),
        };
      },
      tlsOptions: (withIdentity) => (withIdentity ? { ca: tls.ca, cert: tls.cert, key: tls.key } : { ca: tls.ca }),
    };
  };
  for (const u of pool.all()) {
    const t = make(u);
    byUpstream.set(u, t);
    byTarget.set(t, u);
  }
  const eligible = () => pool.all().filter((u) => links.renewOnUpstream || u.url.protocol === 'https:').map((u) => u.url.href);

  return {
    get online() {
      return pool.online;
    },
    pick() {
      const u = pool.pick();
      return u ? byUpstream.get(u) : undefined;
    },
    reportFailure(t, err) {
      const u = byTarget.get(t);
      if (u) pool.reportFailure(u, err);
    },
    track(t, abort) {
      const u = byTarget.get(t);
      return u ? pool.track(u, abort) : () => {};
    },
    all: () => [...byUpstream.values()],
    setTls(m) {
      // New connections use the new certificate; requests in flight finish on the old one.
      tls.cert = m.cert;
      tls.key = m.key;
      pool.setTls(m);
    },
    renewalServers() {
      const all = eligible();
      const u = pool.pick();
      return u ? [u.url.href, ...all.filter((s) => s !== u.url.href)] : all;
    },
    ...(links.renewOnUpstream ? { renewalAgent: () => pool.all()[0]!.agent as Agent } : {}),
    close() {
      for (const a of bearerAgents.values()) a.destroy();
      links.sensitiveAgent?.destroy();
    },
  };
}
