/**
 * Token proofs: what edge/auth/offline-tokens.ts keeps of bearer tokens kube-apiserver accepted
 * online, persisted so that pods' tokens (kube-proxy's, CoreDNS's) are still checked offline after
 * the agent restarts. Keyed by the token's SHA-256; the token itself is never stored.
 */
import { lte, sql } from 'drizzle-orm';
import type { StoreDb } from './db.ts';
import { guarded } from './db.ts';
import { tokens } from './schema.ts';

export interface TokenProof {
  hash: string;
  expiresAt: number;
  acceptedAt: number;
  claims: Record<string, unknown>;
  views: string[];
}

export interface TokenProofs {
  /** Every proof not expired at `now`. */
  load(now: number): TokenProof[];
  put(p: TokenProof): void;
  delete(hash: string): void;
  /** Drops proofs expired at `now`; returns how many. */
  prune(now: number): number;
  count(): number;
}

export function createTokenProofs(store: StoreDb): TokenProofs {
  const { db } = store;
  const wrap = <T>(step: string, f: () => T): T => guarded(store, step, f);
  return {
    load: (now) =>
      wrap('read token proofs', () =>
        db
          .select()
          .from(tokens)
          .where(sql`${tokens.expiresAt} > ${now}`)
          .all()
          .map((r) => ({ hash: r.hash, expiresAt: r.expiresAt.getTime(), acceptedAt: r.acceptedAt.getTime(), claims: r.claims, views: r.views })),
      ),
    put: (p) =>
      wrap('store token proof', () => {
        const row = { hash: p.hash, expiresAt: new Date(p.expiresAt), acceptedAt: new Date(p.acceptedAt), claims: p.claims, views: p.views };
        db.insert(tokens).values(row).onConflictDoUpdate({ target: tokens.hash, set: row }).run();
      }),
    delete: (hash) => wrap('delete token proof', () => void db.delete(tokens).where(sql`${tokens.hash} = ${hash}`).run()),
    prune: (now) => wrap('prune token proofs', () => (db.delete(tokens).where(lte(tokens.expiresAt, new Date(now))).run() as unknown as { changes: number }).changes),
    count: () => wrap('count token proofs', () => Number(db.select({ n: sql<number>`count(*)` }).from(tokens).get()?.n ?? 0)),
  };
}
