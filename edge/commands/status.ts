/** `tether-edge status [--json]`: asks the running agent's admin endpoint what it is doing. */
import { defineCommand } from 'citty';
import { guard } from '../../shared/cli.ts';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import { type AgentStatus, formatStatus } from '../status-report.ts';

export default defineCommand({
  meta: { name: 'status', description: 'Show upstreams, cached objects, client views and outbox of the running agent' },
  args: {
    'admin-listen': { type: 'string', description: "The agent's admin address", default: '127.0.0.1:10267' },
    json: { type: 'boolean', description: 'Print JSON' },
  },
  run: ({ args }) =>
    guard('tether-edge', async () => {
      let st: AgentStatus;
      try {
        const r = await fetch(`http://${args['admin-listen']}/status`, { signal: AbortSignal.timeout(5000) });
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        st = (await r.json()) as AgentStatus;
      } catch (e) {
        throw new TetherError(
          ErrorCode.UpstreamUnavailable,
          `status: no agent answers on ${args['admin-listen']} (${messageOf(e)}); is tether-edge running? (--admin-listen)`,
        );
      }
      process.stdout.write(args.json ? `${JSON.stringify(st, null, 2)}\n` : `${formatStatus(st)}\n`);
      if (!st.store.ok) process.exitCode = 2;
    }),
});
