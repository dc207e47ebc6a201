/**
 * Dialing a destination that belongs to no edge node straight from the hub: kube-apiserver sends
 * all of its `cluster` egress to the CONNECT endpoint (cloud nodes' kubelets, webhooks, aggregated
 * APIs, the service proxy), and that must keep working when Tether is switched on.
 *
 * Policy, in this order, each step before the next:
 *   1. direct dialing is off (`allow` empty)                → refused, no lookup at all;
 *   2. the host is a number in disguise (`0`, `127.1`, `0x7f.1`, a trailing dot), or `localhost`
 *      or a name under it                                   → refused, no lookup;
 *   3. an IP literal is made canonical (the IPv4 address inside `::ffff:a.b.c.d` or
 *      `64:ff9b::a.b.c.d` is checked and dialed as IPv4);
 *   4. every address is checked against the closed list, which no configuration opens:
 *      0.0.0.0/8, ::/96 (unspecified, loopback and IPv4-compatible), 127.0.0.0/8, 169.254.0.0/16,
 *      fe80::/10, multicast and broadcast, and the hub's own addresses (`ownAddresses`, by default
 *      every address of this host's interfaces, looked up at each check);
 *   5. then `deny` (wins) and `allow` (must contain it).
 * A name is resolved only after steps 1-2 passed, once; every address it resolves to must pass 3-5,
 * and the checked address is the one dialed, so a name cannot resolve to an allowed address for the
 * check and a denied one for the connection.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import { BlockList, connect, isIP, type Socket } from 'node:net';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import { canonicalIp, looksNumeric } from './ip.ts';

export interface DirectDialOptions {
  allow: string[];
  deny: string[];
  timeoutMs?: number;
  /** Resolves a name to addresses (default: the system resolver, every address). */
  lookup?: (host: string) => Promise<string[]>;
  /** This hub's own addresses (default: every interface address of this host, read at each check). */
  ownAddresses?: () => string[];
  /** Opens the TCP connection to a checked address (default: node:net connect). */
  connect?: (ip: string, port: number) => Socket;
}

/** Never dialed directly, whatever `allow` says. */
export const CLOSED_RANGES = ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4', '255.255.255.255/32', '::/96', 'fe80::/10', 'ff00::/8'];

export interface DirectDialer {
  /** null when `ip` may be dialed, otherwise the reason it may not. */
  check(ip: string): string | null;
  /** A connected socket; E_TUNNEL_DENIED when the policy refuses, E_UPSTREAM_UNAVAILABLE when the dial fails. */
  dial(host: string, port: number, signal?: AbortSignal): Promise<Socket>;
}

const interfaceAddresses = () =>
  Object.values(networkInterfaces())
    .flatMap((l) => l ?? [])
    .map((a) => a.address);

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
  const closed = blockList(CLOSED_RANGES, 'closed ranges');
  const lookup = opts.lookup ?? systemLookup;
  const own = opts.ownAddresses ?? interfaceAddresses;
  const open = opts.connect ?? ((ip: string, port: number) => connect({ host: ip, port, allowHalfOpen: true }));
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const disabled = opts.allow.length === 0;
  const type = (family: 4 | 6) => (family === 6 ? 'ipv6' : 'ipv4');

  /** Steps 3-5 for one address; the canonical address to dial, or the reason. */
  const verdict = (text: string): { ip: string } | { why: string } => {
    if (disabled) return { why: 'direct dialing is disabled (directDial.allow is empty)' };
    const c = canonicalIp(text);
    if (!c) return { why: `${text} is not an IP address` };
    const shown = c.ip === text ? text : `${text} (${c.ip})`;
    if (closed.check(c.ip, type(c.family))) return { why: `${shown} is a loopback, unspecified, link-local or multicast address, never dialed directly` };
    if (own().some((a) => canonicalIp(a)?.ip === c.ip)) return { why: `${shown} is an address of the hub itself, never dialed directly` };
    if (deny.check(c.ip, type(c.family))) return { why: `${shown} is in directDial.deny` };
    if (!allow.check(c.ip, type(c.family))) return { why: `${shown} is not in directDial.allow` };
    return { ip: c.ip };
  };
  const check = (ip: string): string | null => {
    const v = verdict(ip);
    return 'why' in v ? v.why : null;
  };

  return {
    check,
    async dial(host, port, signal) {
      const step = `direct dial ${host}:${port}`;
      const denied = (why: string) => new TetherError(ErrorCode.TunnelDenied, `${step}: not allowed: ${why}`);
      // Steps 1 and 2: before any lookup.
      if (disabled) throw denied('direct dialing is disabled (directDial.allow is empty)');
      const literal = isIP(host.replace(/^\[(.*)\]$/, '$1')) !== 0;
      if (!literal && looksNumeric(host)) throw denied(`${JSON.stringify(host)} is a number, not a canonical IP address or a host name`);
      if (!literal && /(^|\.)localhost\.?$/i.test(host)) throw denied(`${host} is this host's own name`);
      let addresses: string[];
      try {
        addresses = literal ? [host.replace(/^\[(.*)\]$/, '$1')] : await lookup(host);
      } catch (e) {
        throw new TetherError(ErrorCode.UpstreamUnavailable, `${step}: resolve ${host}: ${messageOf(e)}`, { cause: e });
      }
      if (addresses.length === 0) throw new TetherError(ErrorCode.UpstreamUnavailable, `${step}: ${host} resolves to no address`);
      const checked: string[] = [];
      for (const a of addresses) {
        const v = verdict(a);
        if ('why' in v) throw denied(literal ? v.why : `${host} resolves to ${a}: ${v.why}`);
        checked.push(v.ip);
      }
      const ip = checked[0]!;
      return new Promise<Socket>((resolve, reject) => {
        const socket = open(ip, port);
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
