/** `tether-edge join`: join this machine to a cluster as an edge node (see edge/join/README.md). */
import { resolve } from 'node:path';
import { defineCommand } from 'citty';
import { guard } from '../../shared/cli.ts';
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import { type Level, createLogger } from '../../shared/log.ts';
import { joinNode } from '../join/join.ts';
import { PATHS } from '../join/layout.ts';

/** The executable the systemd unit should run: this binary, or the installed default. */
function selfBinary(): string {
  const script = process.argv[1] ?? '';
  if (script.startsWith('/$bunfs/')) return process.execPath; // compiled binary
  if (/tether-edge(\.mjs)?$/.test(script)) return resolve(script); // Node bundle, as installed
  return '/usr/local/bin/tether-edge';
}

/** "90", "90s", "5m", "1h" → milliseconds. */
export function parseDuration(s: string, flag: string): number {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(s.trim());
  if (!m) throw new TetherError(ErrorCode.BadConfig, `${flag}: expected a duration such as 90s, 5m or 1h, not ${JSON.stringify(s)}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's']!;
  return Number(m[1]) * unit;
}

export default defineCommand({
  meta: { name: 'join', description: 'Join this machine to a cluster as an edge node (run as root)' },
  args: {
    server: { type: 'string', description: 'kube-apiserver URL as this node reaches it (https://<host>:6443)', required: true },
    token: { type: 'string', description: 'Bootstrap token <id>.<secret> (tether-hub token create)', required: true },
    'ca-cert-hash': { type: 'string', description: 'Pin of the cluster CA: sha256:<hex> (tether-hub token create)', required: true },
    'node-name': { type: 'string', description: 'Name of this node (default: the host name, lower-cased)' },
    pool: { type: 'string', description: 'Node pool: the kubelet registers the node with apps.tether.dev/pool=<pool>' },
    hub: { type: 'string', description: 'wss:// address of tether-hub for the tunnel' },
    'upstream-via-hub': {
      type: 'boolean',
      description: "Have the agent send its apiserver requests through the hub's tunnel (needs --hub; the join itself still reaches --server directly)",
    },
    'release-key': {
      type: 'string',
      description:
        'PEM Ed25519 public key that signs releases (release.pub), pinned inline in the configuration as releaseKey. Without it the agent refuses every over-the-air upgrade (reported as Failed: no release key pinned)',
    },
    root: { type: 'string', description: 'Write everything under this directory instead of / (nothing is started)', default: '/' },
    binary: { type: 'string', description: 'tether-edge executable for the systemd unit (default: this one)' },
    timeout: { type: 'string', description: 'How long to wait for the cluster and for the certificate', default: '5m' },
    'log-level': { type: 'string', description: 'debug, info, warn or error (on stderr)', default: 'warn' },
  },
  run: ({ args }) =>
    guard('tether-edge', async () => {
      const log = createLogger({ level: args['log-level'] as Level, format: 'text' });
      const r = await joinNode({
        server: args.server,
        token: args.token,
        caCertHash: args['ca-cert-hash'],
        nodeName: args['node-name'],
        pool: args.pool,
        hubUrl: args.hub,
        upstreamViaHub: args['upstream-via-hub'] === true,
        releaseKeyFile: args['release-key'] === undefined ? undefined : resolve(args['release-key']),
        root: resolve(args.root),
        binary: args.binary ?? selfBinary(),
        timeoutMs: parseDuration(args.timeout, '--timeout'),
        log,
      });
      const under = args.root === '/' ? '' : ` under ${resolve(args.root)}`;
      const lines = [
        `joined ${r.server} as node ${r.nodeName} (certificate from ${r.csrName}, valid until ${r.notAfter.toISOString()})`,
        `wrote${under}:`,
        ...r.written.map((f) => `  ${f}${r.replaced.includes(f) ? `   (replaced; original kept in ${PATHS.backupDir})` : ''}`),
        ...r.next.map((n) => `next: ${n}`),
        'undo with: tether-edge reset' + (args.root === '/' ? '' : ` --root ${args.root}`),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    }),
});
