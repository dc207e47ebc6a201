/** `tether-edge local-client --name N`: a kubeconfig for another local client of the agent (see local-client.ts). */
import { resolve } from 'node:path';
import { defineCommand } from 'citty';
import { guard } from '../../shared/cli.ts';
import { writeLocalClientKubeconfig } from './local-client.ts';
import { PATHS } from './layout.ts';

export default defineCommand({
  meta: { name: 'local-client', description: "Write a kubeconfig with a client certificate from the agent's local CA (run as root; it acts as the node)" },
  args: {
    name: { type: 'string', description: 'The component name, the certificate CN (e.g. kubectl)', required: true },
    out: { type: 'string', description: 'Where to write the kubeconfig (default ./<name>.kubeconfig)' },
    'local-ca-dir': { type: 'string', description: 'The local CA directory', default: PATHS.localCaDir },
    server: { type: 'string', description: "The agent's URL", default: 'https://127.0.0.1:10261' },
  },
  run: ({ args }) =>
    guard('tether-edge', async () => {
      const r = writeLocalClientKubeconfig({ caDir: resolve(args['local-ca-dir']), name: args.name, out: resolve(args.out ?? `${args.name}.kubeconfig`), server: args.server });
      process.stdout.write(`wrote ${r.path} (CN=${r.name}, 0600): requests with it act as this node; keep it root-only\n`);
    }),
});
