/**
 * The tunnels this replica holds: node → session. Adding a session announces the agent's
 * addresses in the node directory and takes the node's Lease; its end withdraws both — unless a
 * newer session of the same node replaced it meanwhile (a reconnecting agent), which keeps them.
 * A newer session always wins: the older one is closed with reason "replaced".
 */
import { messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { Hello, TunnelSession } from '../../shared/tunnel/session.ts';
import type { LeaseKeeper } from './leases.ts';
import type { NodeDirectory } from './node-directory.ts';

export interface TunnelTable {
  get(node: string): TunnelSession | undefined;
  entries(): { node: string; session: TunnelSession }[];
  add(node: string, session: TunnelSession, hello: Hello): void;
  /** Closes a node's session (its Lease went to another replica, say). */
  drop(node: string, reason: string): void;
  /**
   * Asks every agent to drain (they reconnect elsewhere at once; open streams go on), waits up to
   * `graceMs` for the sessions to end, then closes what is left.
   */
  drainAll(reason: string, graceMs: number): Promise<void>;
  readonly size: number;
}

export function createTunnelTable(opts: { directory: NodeDirectory; keeper?: LeaseKeeper; log: Logger }): TunnelTable {
  const { directory, keeper, log } = opts;
  const table = new Map<string, TunnelSession>();

  return {
    get: (node) => table.get(node),
    entries: () => [...table].map(([node, session]) => ({ node, session })),
    add(node, session, hello) {
      const previous = table.get(node);
      table.set(node, session);
      directory.announce(node, hello.addresses);
      if (previous && previous !== session) previous.close('replaced by a newer session of the same node');
      keeper?.hold(node).catch((e) => log.warn('take tunnel lease failed; other replicas cannot forward to this node', { node, error: messageOf(e) }));
      log.info('agent connected', { node, session: session.id, addresses: hello.addresses, version: hello.version });
      void session.closed.then(({ reason }) => {
        log.info('agent disconnected', { node, session: session.id, reason });
        if (table.get(node) !== session) return;
        table.delete(node);
        directory.withdraw(node);
        keeper?.release(node).catch(() => {});
      });
    },
    drop(node, reason) {
      table.get(node)?.close(reason);
    },
    async drainAll(reason, graceMs) {
      const all = [...table.values()];
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
