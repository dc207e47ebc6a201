/**
 * Dialing a destination that belongs to no edge node straight from the hub: kube-apiserver sends
 * all of its `cluster` egress to the CONNECT endpoint (cloud nodes' kubelets, webhooks, aggregated
 * APIs, the service proxy), and that must keep working when Tether is switched on.
 *
 * Policy: a destination is allowed when every address it resolves to is inside some `allow` CIDR
 * and inside no `deny` CIDR (deny wins). Names are resolved here, once, and the checked address is
 * the one dialed, so a name cannot resolve to an allowed address for the check and a denied one for
 * the connection. An empty `allow` list disables direct dialing altogether.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, connect, isIP, type Socket } from 'node:net';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';

export interface DirectDialOptions {
  allow: string[];
  deny: string[];
  timeoutMs?: number;
  /** Resolves a name to addresses (default: the system resolver, every address). */
  lookup?: (host: string) => Promise<string[]>;
}

export interface DirectDialer {
  /** null when `ip` may be dialed, otherwise the reason it may not. */
  check(ip: string): string | null;
  /** A connected socket; E_TUNNEL_DENIED when the policy refuses, E_UPSTREAM_UNAVAILABLE when the dial fails. */
  dial(host: string, port: number, signal?: AbortSignal): Promise<Socket>;
}

function blockList(cidrs: string[], what: string): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const [addr, bits] = c.split('/');
    const family = addr ? isIP(addr) : 0;
    const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
    if (!addr || family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) {
      throw new TetherError(ErrorCode.BadConfig, `direct dial: ${what}: bad CIDR ${JSON.stringify(c)}`);
    }
    list.addSubnet(addr, prefix, family === 6 ? 'ipv6' : 'ipv4');
  }
  return list;
}

const systemLookup = async (host: string) => (await dnsLookup(host, { all: true, verbatim: true })).map((a) => a.address);

export function createDirectDialer(opts: DirectDialOptions): DirectDialer {
  const allow = blockList(opts.allow, 'allow');
  const deny = blockList(opts.deny, 'deny');
  const lookup = opts.lookup ?? systemLookup;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const familyOf = (ip: string) => (isIP(ip) === 6 ? 'ipv6' : 'ipv4');

  const check = (ip: string): string | null => {
    if (opts.allow.length === 0) return 'direct dialing is disabled (directDial.allow is empty)';
    if (deny.check(ip, familyOf(ip))) return `${ip} is in directDial.deny`;
    if (!allow.check(ip, familyOf(ip))) return `${ip} is not in directDial.allow`;
    return null;
  };

  return {
    check,
    async dial(host, port, signal) {
      const step = `direct dial ${host}:${port}`;
      let addresses: string[];
      try {
        addresses = isIP(host) ? [host] : await lookup(host);
      } catch (e) {
        throw new TetherError(ErrorCode.UpstreamUnavailable, `${step}: resolve ${host}: ${messageOf(e)}`, { cause: e });
      }
      if (addresses.length === 0) throw new TetherError(ErrorCode.UpstreamUnavailable, `${step}: ${host} resolves to no address`);
      for (const ip of addresses) {
        const why = check(ip);
        if (why) throw new TetherError(ErrorCode.TunnelDenied, `${step}: not allowed: ${why}`);
      }
      const ip = addresses[0]!;
      return new Promise<Socket>((resolve, reject) => {
        const socket = connect({ host: ip, port, allowHalfOpen: true });
        const fail = (e: Error) => {
          cleanup();
          socket.destroy();
          reject(new TetherError(ErrorCode.UpstreamUnavailable, `${step}: ${messageOf(e)}`, { cause: e }));
        };
        const onAbort = () => fail(new Error('aborted'));
        const timer = setTimeout(() => fail(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          socket.off('error', fail);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        socket.once('error', fail);
        socket.once('connect', () => {
          cleanup();
          resolve(socket);
        });
      });
    },
  };
}
