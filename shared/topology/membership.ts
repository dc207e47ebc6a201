/**
 * Which pool each node is in, from NodePool objects (status.nodes, written by tether-hub). The
 * agent feeds it every NodePool it sees — from its own list-watch of
 * /apis/apps.tether.dev/v1alpha1/nodepools while online, from its store after a restart — so the
 * filter keeps working offline with the membership last known.
 */
export interface NodePoolLike {
  metadata?: { name?: string };
  status?: { nodes?: string[] | null } | null;
}

export interface PoolMembership {
  /** Pool of `node`, or undefined. */
  poolOf(node: string): string | undefined;
  /** Members of `pool`, or undefined when the pool is unknown. */
  members(pool: string): ReadonlySet<string> | undefined;
  /** A NodePool added or changed; returns the names of pools whose member set changed. */
  upsert(pool: NodePoolLike): string[];
  /** A NodePool deleted. */
  remove(name: string): string[];
  /** Every NodePool there is (a LIST): pools absent from `pools` are forgotten. */
  replace(pools: NodePoolLike[]): string[];
}

export function createPoolMembership(): PoolMembership {
  const members = new Map<string, Set<string>>();
  const poolOfNode = new Map<string, string>();

  const reindex = () => {
    poolOfNode.clear();
    // A node listed by two pools (a stale status during a move) belongs to the first by name.
    for (const name of [...members.keys()].sort()) for (const n of members.get(name)!) if (!poolOfNode.has(n)) poolOfNode.set(n, name);
  };
  const same = (a: Set<string> | undefined, b: Set<string> | undefined) => a?.size === b?.size && [...(a ?? [])].every((x) => b?.has(x));

  const upsert = (pool: NodePoolLike): string[] => {
    const name = pool.metadata?.name;
    if (!name) return [];
    const next = new Set(pool.status?.nodes ?? []);
    if (same(members.get(name), next)) return [];
    members.set(name, next);
    reindex();
    return [name];
  };
  const remove = (name: string): string[] => {
    if (!members.delete(name)) return [];
    reindex();
    return [name];
  };
  return {
    poolOf: (node) => poolOfNode.get(node),
    members: (pool) => members.get(pool),
    upsert,
    remove,
    replace(pools) {
      const names = new Set(pools.map((p) => p.metadata?.name).filter((n): n is string => !!n));
      const changed = [...members.keys()].filter((n) => !names.has(n)).flatMap(remove);
      return [...changed, ...pools.flatMap(upsert)];
    },
  };
}
