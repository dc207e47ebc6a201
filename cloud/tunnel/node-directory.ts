/**
 * Which node an address belongs to, and so which tunnel may carry a CONNECT to it.
 *
 * The only source of a node's addresses is its Node object (`status.addresses`, kept current by
 * the hub's Node informer, cloud nodes included) plus the node's own name as a host name. An
 * agent's HELLO announcement adds nothing: it is checked against those (`announce`), and what does
 * not match is refused, with a reason per address, for the caller to log and count.
 *
 * Ownership rules, for an address `a` (compared case-insensitively; IPs in canonical form, so
 * `::ffff:10.0.0.1` is `10.0.0.1`):
 *   1. `a` is a Service's ClusterIP or name (`setService`), or any name with a `svc` label
 *      (`x.ns.svc`, `x.ns.svc.cluster.local`)         → no node's, ever (a webhook, an aggregated
 *                                                         API: the hub dials those directly);
 *   2. `a` is the name of an existing Node M (and not an IP literal) → M's alone, whatever other
 *      Node objects list;
 *   2b. `a` is inside another node's pod CIDR (`spec.podCIDRs`) → not the claimant's (a cloud
 *      pod behind an aggregated API, say);
 *   3. exactly one Node object lists `a`                → that node's;
 *   4. several Node objects list `a`                    → contested: nobody's. A CONNECT to it is
 *      refused rather than sent to a node that may have lied about its addresses (a node can edit
 *      its own Node status); `onContested` reports it.
 * So a compromised node can make an address it shares unreachable (and that is logged and
 * counted), but never draw another node's, a cloud node's or a Service's traffic to itself.
 */
import { BlockList } from 'node:net';
import { canonicalIp } from './ip.ts';

export type Ownership = { node: string } | { contested: string[] } | undefined;

export type ClaimRefusal = 'service' | 'other_node' | 'contested' | 'not_in_node';

export interface AnnounceResult {
  accepted: string[];
  refused: { address: string; reason: ClaimRefusal; detail: string }[];
}

export interface NodeDirectory {
  /** Addresses from the Node object (replaces what the object said before), and its pod CIDRs. */
  setNode(name: string, addresses: string[], podCidrs?: string[]): void;
  deleteNode(name: string): void;
  /** A Service's ClusterIPs and names (`key` is namespace/name); never routed to a node. */
  setService(key: string, addresses: string[]): void;
  deleteService(key: string): void;
  /** Checks what an agent announced for its node against the rules above. */
  announce(name: string, addresses: string[]): AnnounceResult;
  withdraw(name: string): void;
  ownerOf(host: string): Ownership;
  /** The owner of `host` as a list (empty when none or contested). */
  nodesFor(host: string): string[];
  /** Whether a Node object of that name is known. */
  hasNode(name: string): boolean;
  /** The addresses `name` owns. */
  addressesOf(name: string): string[];
  /** Addresses listed by several Node objects right now. */
  contested(): string[];
  readonly nodeCount: number;
}

export function normalizeAddress(a: string): string {
  const t = a.trim().replace(/^\[(.*)\]$/, '$1').toLowerCase().replace(/\.$/, '');
  return canonicalIp(t)?.ip ?? t;
}

const isServiceName = (a: string) => !canonicalIp(a) && a.split('.').slice(1).includes('svc');

export function createNodeDirectory(opts: { onContested?: (address: string, nodes: string[]) => void } = {}): NodeDirectory {
  const fromObjects = new Map<string, Set<string>>();
  const claimants = new Map<string, Set<string>>();
  const services = new Map<string, Set<string>>();
  const reserved = new Map<string, number>();
  const announced = new Map<string, string[]>();
  const podRanges = new Map<string, BlockList>();

  /** The node whose pod CIDR holds `a`, other than `except`. */
  const podOwnerOf = (a: string, except: string): string | undefined => {
    const ip = canonicalIp(a);
    if (!ip) return undefined;
    for (const [m, list] of podRanges) if (m !== except && list.check(ip.ip, ip.family === 6 ? 'ipv6' : 'ipv4')) return m;
    return undefined;
  };

  const candidates = (name: string, addresses: string[]) => {
    const set = new Set(addresses.map(normalizeAddress).filter(Boolean));
    set.add(normalizeAddress(name));
    return set;
  };
  const isReserved = (a: string) => isServiceName(a) || (reserved.get(a) ?? 0) > 0;

  const ownerOf = (host: string): Ownership => {
    const a = normalizeAddress(host);
    if (!a || isReserved(a)) return undefined;
    if (!canonicalIp(a) && fromObjects.has(a)) return { node: a };
    const all = claimants.get(a);
    const who = podRanges.size && all ? new Set([...all].filter((n) => !podOwnerOf(a, n))) : all;
    if (!who || who.size === 0) return undefined;
    if (who.size === 1) return { node: [...who][0]! };
    return { contested: [...who].sort() };
  };

  const unindex = (name: string) => {
    for (const a of fromObjects.get(name) ?? []) {
      const who = claimants.get(a);
      who?.delete(name);
      if (who?.size === 0) claimants.delete(a);
    }
  };

  return {
    setNode(name, addresses, podCidrs = []) {
      unindex(name);
      const list = new BlockList();
      for (const c of podCidrs) {
        const [net, bits] = c.split('/');
        const ip = net ? canonicalIp(net) : undefined;
        const prefix = Number(bits);
        if (ip && Number.isInteger(prefix) && prefix >= 0 && prefix <= (ip.family === 6 ? 128 : 32)) list.addSubnet(ip.ip, prefix, ip.family === 6 ? 'ipv6' : 'ipv4');
      }
      if (podCidrs.length) podRanges.set(name, list);
      else podRanges.delete(name);
      const next = candidates(name, addresses);
      fromObjects.set(name, next);
      for (const a of next) {
        let who = claimants.get(a);
        if (!who) claimants.set(a, (who = new Set()));
        who.add(name);
        const o = ownerOf(a);
        if (o && 'contested' in o) opts.onContested?.(a, o.contested);
      }
    },
    deleteNode(name) {
      unindex(name);
      fromObjects.delete(name);
      podRanges.delete(name);
    },
    setService(key, addresses) {
      this.deleteService(key);
      const set = new Set(addresses.map(normalizeAddress).filter(Boolean));
      services.set(key, set);
      for (const a of set) reserved.set(a, (reserved.get(a) ?? 0) + 1);
    },
    deleteService(key) {
      for (const a of services.get(key) ?? []) {
        const n = (reserved.get(a) ?? 1) - 1;
        if (n > 0) reserved.set(a, n);
        else reserved.delete(a);
      }
      services.delete(key);
    },
    announce(name, addresses) {
      const result: AnnounceResult = { accepted: [], refused: [] };
      const own = fromObjects.get(name) ?? new Set<string>();
      for (const raw of new Set(addresses)) {
        const a = normalizeAddress(raw);
        if (!a) continue;
        const o = ownerOf(a);
        if (isReserved(a)) result.refused.push({ address: raw, reason: 'service', detail: `${raw} is a Service's address or name` });
        else if (o && 'node' in o && o.node === name) result.accepted.push(a);
        else if (o && 'node' in o) result.refused.push({ address: raw, reason: 'other_node', detail: `${raw} belongs to node ${o.node}` });
        else if (!o && podOwnerOf(a, name)) result.refused.push({ address: raw, reason: 'other_node', detail: `${raw} is in node ${podOwnerOf(a, name)}'s pod CIDR` });
        else if (o && 'contested' in o) result.refused.push({ address: raw, reason: 'contested', detail: `${raw} is listed by several Node objects (${o.contested.join(', ')})` });
        else result.refused.push({ address: raw, reason: 'not_in_node', detail: `${raw} is not in Node ${name}'s status.addresses${own.size ? '' : ' (no Node object known)'}` });
      }
      announced.set(name, result.accepted);
      return result;
    },
    withdraw(name) {
      announced.delete(name);
    },
    ownerOf,
    nodesFor(host) {
      const o = ownerOf(host);
      return o && 'node' in o ? [o.node] : [];
    },
    hasNode: (name) => fromObjects.has(name),
    addressesOf: (name) => [...(fromObjects.get(name) ?? [])].filter((a) => {
      const o = ownerOf(a);
      return !!o && 'node' in o && o.node === name;
    }),
    contested: () => [...claimants].filter(([a, who]) => who.size > 1 && !(fromObjects.has(a) && !canonicalIp(a))).map(([a]) => a).filter((a) => !isReserved(a)),
    get nodeCount() {
      return fromObjects.size;
    },
  };
}
