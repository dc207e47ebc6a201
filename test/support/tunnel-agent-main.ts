#!/usr/bin/env bun
/**
 * Test-only entry for the tunnel agent (edge/tunnel/agent.ts) until tether-edge runs it itself:
 * the same startTunnelAgent that `tether-edge run` wires, without the caching proxy around it.
 *
 *   bun test/support/tunnel-agent-main.ts --node-name N --hub wss://H:P[,wss://H2:P2] \
 *       --ca F --cert F --key F [--token T] [--ports 9100,…] [--addresses A,…]
 *
 * Logs JSON lines on stderr; SIGTERM or SIGINT closes the tunnel and exits.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startTunnelAgent } from '../../edge/tunnel/agent.ts';
import { createLogger } from '../../shared/log.ts';

const { values } = parseArgs({
  options: {
    'node-name': { type: 'string' },
    hub: { type: 'string' },
    ca: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    token: { type: 'string' },
    ports: { type: 'string', default: '' },
    addresses: { type: 'string' },
  },
  strict: true,
});
const list = (s: string | undefined) => (s ?? '').split(',').map((x) => x.trim()).filter(Boolean);
const file = (p: string | undefined) => (p ? readFileSync(p) : undefined);
if (!values['node-name'] || !values.hub) {
  console.error('usage: tunnel-agent-main.ts --node-name N --hub URL[,URL] [--ca F --cert F --key F] [--token T] [--ports P,…] [--addresses A,…]');
  process.exit(2);
}

const log = createLogger({ level: 'debug' }).child({ node: values['node-name'] });
const agent = startTunnelAgent({
  hubUrls: list(values.hub),
  nodeName: values['node-name'],
  addresses: values.addresses ? list(values.addresses) : undefined,
  ports: list(values.ports).map(Number),
  tls: () => ({ ca: file(values.ca), cert: file(values.cert), key: file(values.key) }),
  token: values.token ? () => values.token : undefined,
  backoff: { initialMs: 200, maxMs: 2000 },
  log,
});
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.once(sig, () => void agent.close().then(() => process.exit(0)));
}
