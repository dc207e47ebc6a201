/**
 * The tunnels this replica holds: node → session, with the credential it authenticated with.
 *
 * Adding a session checks the agent's announced addresses against the node directory (which takes
 * them from the Node object only; refused claims are logged and counted, never published) and
 * takes the node's Lease; its end releases the Lease — unless a newer session of the same node
 * replaced it meanwhile (a reconnecting agent).
 *
 * Replacement: a second session for a node whose session is still live is accepted only when it
 * authenticated with the same credential (certificate fingerprint, or token); the older one is
 * then closed with reason "replaced". A different credential is refused (`check` says why) until
 * the live session ends — for a dead connection, at the latest when its heartbeat times out. Both
 * outcomes are logged and counted.
 */
import { messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { Hello, TunnelSession } from '../../shared/tunnel/session.ts';
import type { LeaseKeeper } from './leases.ts';
import type { HubMetrics } from './metrics.ts';
import type { NodeDirectory } from './node-directory.ts';

export interface TunnelTable {
  get(node: string): TunnelSession | undefined;
  entries(): { node: string; session: TunnelSession }[];
  /** null when a session for `node` with `credential` may be added now, otherwise the reason it may not. */
  check(node: string, credential: string | undefined): string | null;
  add(node: string, session: TunnelSession, hello: Hello, credential?: string): void;
  /** Closes a node's session (its Lease went to another replica, say). */
  drop(node: string, reason: string): void;
  /**
   * Asks every agent to drain (they reconnect elsewhere at once; open streams go on), waits up to
   * `graceMs` for the sessions to end, then closes what is left.
   */
  drainAll(reason: string, graceMs: number): Promise<void>;
  readonly size: number;
}

interface Held {
  session: TunnelSession;
  credential: string | undefined;
}

const live = (s: TunnelSession) => s.state !== 'closed';

export function createTunnelTable(opts: { directory: NodeDirectory; keeper?: LeaseKeeper; log: Logger; metrics?: HubMetrics }): TunnelTable {
  const { directory, keeper, log, metrics } = opts;
  const table = new Map<string, Held>();

  const check = (node: string, credential: string | undefined): string | null => {
    const held = table.get(node);
    if (!held || !live(held.session)) return null;
    if (credential !== undefined && held.credential === credential) return null;
    return `node ${node} already has a live tunnel session (${held.session.id}) authenticated with another credential; a replacement must use the same certificate or token, or wait until that session ends`;
  };

  return {
    get: (node) => table.get(node)?.session,
    entries: () => [...table].map(([node, h]) => ({ node, session: h.session })),
    check,
    add(node, session, hello, credential) {
      const why = check(node, credential);
      if (why) {
        // check() ran at HELLO; a second session raced in since. Refuse this one the same way.
        log.warn('agent session replacement refused', { node, session: session.id, reason: why });
        metrics?.replacement('refused');
        session.close(why, 'refused');
        return;
      }
      const previous = table.get(node);
      table.set(node, { session, credential });
      const { accepted, refused } = directory.announce(node, hello.addresses);
      for (const r of refused) {
        log.warn('address claim refused', { node, address: r.address, reason: r.reason, detail: r.detail });
        metrics?.claimRefused(r.reason);
      }
      if (previous && previous.session !== session && live(previous.session)) {
        log.warn('agent session replaced', { node, session: session.id, previous: previous.session.id });
        metrics?.replacement('accepted');
        previous.session.close('replaced by a newer session of the same node (same credential)');
      }
      keeper?.hold(node, credential).catch((e) => log.warn('take tunnel lease failed; other replicas cannot forward to this node', { node, error: messageOf(e) }));
      log.info('agent connected', { node, session: session.id, addresses: accepted, announced: hello.addresses.length, version: hello.version });
      void session.closed.then(({ reason }) => {
        log.info('agent disconnected', { node, session: session.id, reason });
        if (table.get(node)?.session !== session) return;
        table.delete(node);
        directory.withdraw(node);
        keeper?.release(node).catch(() => {});
      });
    },
    drop(node, reason) {
      table.get(node)?.session.close(reason);
    },
    async drainAll(reason, graceMs) {
      const all = [...table.values()].map((h) => h.session);
      for (const s of all) s.drain(reason);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const ended = Promise.all(all.map((s) => s.closed));
      await Promise.race([ended, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      for (const s of all) s.close(reason);
      await ended;
    },
    get size() {
      return table.size;
    },
  };
}
