/**
 * Test support: the real edge tunnel agent (edge/tunnel/tunnel-agent.ts) dialing a hub in the same
 * process, for the hub's own suites. They take it from here so that cloud/ never imports edge/:
 * test/ is where the two binaries meet.
 *
 * The agent reads its TLS files at every dial (as the real one does), retries fast (20–100 ms)
 * and, with `loopback`, dials every accepted stream on 127.0.0.1 whatever address it names (the
 * announced addresses are 198.18.x names with nothing behind them).
 */
import { readFileSync } from 'node:fs';
import { dialTcp } from '../../edge/tunnel/destinations.ts';
import { startTunnelAgent, type TunnelAgent, type TunnelAgentOptions } from '../../edge/tunnel/tunnel-agent.ts';
import { createMemoryLogger } from '../../shared/log.ts';

export type { TunnelAgent };

export interface TestAgentOptions {
  hubUrls: string[];
  /** The hub's serving CA. */
  caFile: string;
  /** The client certificate to present; none to present none. */
  creds?: { certFile: string; keyFile: string };
  node?: string;
  addresses?: string[];
  ports?: number[];
  /** A bearer token to send instead of a certificate. */
  token?: string;
  /** Dial accepted streams on 127.0.0.1 instead of the address they name. */
  loopback?: boolean;
  log?: TunnelAgentOptions['log'];
}

export function startTestAgent(o: TestAgentOptions): TunnelAgent {
  const { creds, token } = o;
  return startTunnelAgent({
    hubUrls: o.hubUrls,
    nodeName: o.node ?? 'n1',
    addresses: o.addresses ?? [],
    ports: o.ports ?? [],
    tls: () => ({ ca: readFileSync(o.caFile), ...(creds ? { cert: readFileSync(creds.certFile), key: readFileSync(creds.keyFile) } : {}) }),
    token: token ? () => token : undefined,
    backoff: { initialMs: 20, maxMs: 100 },
    ...(o.loopback ? { dial: (_host: string, port: number) => dialTcp('127.0.0.1', port) } : {}),
    log: o.log ?? createMemoryLogger('info'),
  });
}
