/**
 * Child process of edge/upstream/close.test.ts, run under Bun and (bundled) under Node: builds a pool with the
 * default probe against the server in argv[2], uses its agent for a request and a tracked watch, prints
 * what it saw as one JSON line, calls close() and returns. The process must then exit by itself.
 */
import { createUpstreamPool } from '../../edge/upstream/pool.ts';
import { createLogger } from '../../shared/log.ts';
import { get, openWatch } from './upstream-servers.ts';

const { server, ca, cert, key } = JSON.parse(process.argv[2] ?? '{}') as Record<string, string>;
const pool = createUpstreamPool({
  servers: [server!],
  lbMode: 'priority',
  tls: { ca, cert, key },
  quietMs: 50,
  log: createLogger({ write: (line) => process.stderr.write(line + '\n') }),
});
await pool.ready;
const u = pool.pick();
if (!u) throw new Error('no healthy upstream');
const whoami = (await get(u, '/whoami')).body;
const abort = new AbortController();
const watch = await openWatch(u, abort);
pool.track(u, abort);
pool.close();
const watchEnded = await watch.done.then(() => 'ended', () => 'aborted');
process.stdout.write(JSON.stringify({ healthy: u.healthy, whoami, watchEnded }) + '\n');
