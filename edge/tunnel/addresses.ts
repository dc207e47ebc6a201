/**
 * This host's addresses, announced in HELLO (the hub routes CONNECTs for them to this node) and
 * accepted as destinations: every non-internal IPv4 and IPv6 address, without IPv6 link-local ones
 * (they need a zone to be dialed).
 */
import { networkInterfaces } from 'node:os';

export function localAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      if (a.family === 'IPv6' && /^fe80:/i.test(a.address)) continue;
      out.push(a.address);
    }
  }
  return [...new Set(out)];
}
