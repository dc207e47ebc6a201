/**
 * Which node an address belongs to. Two sources feed it: Node objects (`status.addresses`, kept
 * current by the hub's Node informer, so it knows every node the apiserver may dial, cloud nodes
 * included) and agents' HELLO announcements (addresses the agent has that the Node object may not
 * list yet, or ever). A node's addresses are the union of both; an announcement is withdrawn when
 * its session ends. Addresses compare case-insensitively (host names; IPv6 without brackets).
 */
export interface NodeDirectory {
  /** Addresses from the Node object (replaces what the object said before). */
  setNode(name: string, addresses: string[]): void;
  deleteNode(name: string): void;
  /** Addresses an agent announced for its node. */
  announce(name: string, addresses: string[]): void;
  withdraw(name: string): void;
  /** Every node whose addresses contain `host` (usually one). */
  nodesFor(host: string): string[];
  /** Whether a Node object of that name is known. */
  hasNode(name: string): boolean;
  addressesOf(name: string): string[];
  readonly nodeCount: number;
}

const norm = (a: string) => a.trim().replace(/^\[(.*)\]$/, '$1').toLowerCase();

export function createNodeDirectory(): NodeDirectory {
  const fromObjects = new Map<string, string[]>();
  const announced = new Map<string, string[]>();
  const index = new Map<string, Set<string>>();
  const current = new Map<string, Set<string>>();

  const reindex = (name: string) => {
    const next = new Set([...(fromObjects.get(name) ?? []), ...(announced.get(name) ?? [])].map(norm).filter(Boolean));
    for (const a of current.get(name) ?? []) {
      if (next.has(a)) continue;
      const owners = index.get(a);
      owners?.delete(name);
      if (owners?.size === 0) index.delete(a);
    }
    for (const a of next) {
      let owners = index.get(a);
      if (!owners) index.set(a, (owners = new Set()));
      owners.add(name);
    }
    if (next.size) current.set(name, next);
    else current.delete(name);
  };

  return {
    setNode(name, addresses) {
      fromObjects.set(name, addresses);
      reindex(name);
    },
    deleteNode(name) {
      fromObjects.delete(name);
      reindex(name);
    },
    announce(name, addresses) {
      announced.set(name, addresses);
      reindex(name);
    },
    withdraw(name) {
      announced.delete(name);
      reindex(name);
    },
    nodesFor: (host) => [...(index.get(norm(host)) ?? [])],
    hasNode: (name) => fromObjects.has(name),
    addressesOf: (name) => [...(current.get(name) ?? [])],
    get nodeCount() {
      return fromObjects.size;
    },
  };
}
