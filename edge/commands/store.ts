/** `tether-edge store check`: open the store, write a probe object, read it back, report counts. */
import { join } from 'node:path';
import { defineCommand } from 'citty';
import { openDb } from '#store-driver';
import { guard } from '../../shared/cli.ts';
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import { createSnapshotStore } from '../store/snapshot-store.ts';

const check = defineCommand({
  meta: { name: 'check', description: 'Open the snapshot store, write a probe object and read it back' },
  args: {
    'data-dir': { type: 'string', description: 'Directory of the snapshot store', default: '/var/lib/tether' },
    json: { type: 'boolean', description: 'Print the result as JSON' },
  },
  run: ({ args }) =>
    guard('tether-edge', () => {
      const db = openDb({ path: join(args['data-dir'], 'tether.db') });
      try {
        const store = createSnapshotStore(db);
        const stamp = String(Date.now());
        const probe = {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: 'tether-store-check', namespace: 'tether-system', resourceVersion: '' },
          data: { stamp },
        };
        store.put('tether/v1/probes', probe);
        const back = store.get('tether/v1/probes', 'tether-system', 'tether-store-check');
        if ((back?.data as { stamp?: string } | undefined)?.stamp !== stamp) {
          throw new TetherError(ErrorCode.StoreCorrupt, `store check: the probe read back from ${db.path} differs from what was written`);
        }
        const counts = store.counts();
        if (args.json) process.stdout.write(JSON.stringify({ ok: true, path: db.path, counts }) + '\n');
        else process.stdout.write(`store ok: ${db.path} (${Object.values(counts).reduce((a, b) => a + b, 0)} objects)\n`);
      } finally {
        db.close();
      }
    }),
});

export default defineCommand({
  meta: { name: 'store', description: 'Inspect the snapshot store' },
  subCommands: { check },
});
