/** `tether-edge reset`: undo `tether-edge join` on this machine (see edge/join/README.md). */
import { resolve } from 'node:path';
import { defineCommand } from 'citty';
import { guard } from '../../shared/cli.ts';
import { type Level, createLogger } from '../../shared/log.ts';
import { resetNode } from '../join/reset.ts';

export default defineCommand({
  meta: { name: 'reset', description: 'Undo tether-edge join: stop the agent, restore replaced files, remove what join wrote' },
  args: {
    root: { type: 'string', description: 'The directory join wrote under (--root of join)', default: '/' },
    'log-level': { type: 'string', description: 'debug, info, warn or error (on stderr)', default: 'warn' },
  },
  run: ({ args }) =>
    guard('tether-edge', async () => {
      const r = await resetNode({ root: resolve(args.root), log: createLogger({ level: args['log-level'] as Level, format: 'text' }) });
      const lines = [
        `reset${r.node ? ` node ${r.node}` : ''}: restored ${r.restored.length} file(s), removed ${r.removed.length} file(s) and directories`,
        ...r.restored.map((f) => `  restored ${f}`),
        ...r.next.map((n) => `next: ${n}`),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    }),
});
