/**
 * Tears down the edge sites of a process once it is gone, however it ended (`bun test` emits no
 * `exit` event, and SIGKILL runs no handler at all).
 *
 *   bun watchdog.ts <pid>
 *
 * Started detached (its own session, so a Ctrl-C to the test's process group does not take it
 * down first) by the first createEdgeSite of a process. Polls the pid twice a second; when it is
 * dead, removes every site whose claim names that pid, then exits.
 */
import { isAlive } from './commands.ts';
import { readClaims, releaseClaim, teardownSync } from './registry.ts';

const pid = Number(process.argv[2]);
if (!Number.isInteger(pid) || pid <= 0) {
  console.error('usage: watchdog.ts <pid>');
  process.exit(2);
}

const timer = setInterval(() => {
  if (isAlive(pid)) return;
  clearInterval(timer);
  for (const c of readClaims()) {
    if (c.pid !== pid) continue;
    teardownSync(c.index, c.ns);
    releaseClaim(c.index);
  }
  process.exit(0);
}, 500);
