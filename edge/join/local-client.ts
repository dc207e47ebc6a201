/**
 * A kubeconfig for one more local client of the agent (an operator's kubectl on the node, a host
 * service): a client certificate from the agent's local CA whose CN is the client's component.
 * Whoever holds it is lent the node's identity by the agent, so it is written 0600 for root, like
 * the kubelet's. `tether-edge local-client --name <component>` (local-client-command.ts).
 */
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import { openLocalCa } from '../certs/local-ca.ts';
import { AGENT_URL, localKubeconfig } from './layout.ts';

export interface LocalClientOptions {
  /** The local CA's directory (/etc/tether/pki/local after join). */
  caDir: string;
  /** The client's component name: the certificate's CN ("kubectl", "coredns"…). */
  name: string;
  /** Where the kubeconfig goes; refused when it exists. */
  out: string;
  /** The agent's URL as the client reaches it. */
  server?: string;
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export function writeLocalClientKubeconfig(o: LocalClientOptions): { path: string; name: string } {
  const name = o.name.toLowerCase();
  if (!NAME.test(name)) throw new TetherError(ErrorCode.BadConfig, `local-client: --name ${JSON.stringify(o.name)} is not a component name (letters, digits, ".", "_", "-", at most 63)`);
  if (!existsSync(o.caDir)) throw new TetherError(ErrorCode.BadConfig, `local-client: no local CA in ${o.caDir} (has this node joined? --local-ca-dir)`);
  if (existsSync(o.out)) throw new TetherError(ErrorCode.BadConfig, `local-client: ${o.out} exists; remove it or choose --out`);
  const ca = openLocalCa(o.caDir);
  const creds = { caPem: ca.certPem, ...ca.issue(name, 'client') };
  let text = localKubeconfig(name, creds, `kubeconfig of the local client "${name}" of the tether-edge agent: it acts as the node; keep it root-only`);
  if (o.server && o.server !== AGENT_URL) text = text.replace(`server: ${AGENT_URL}`, `server: ${o.server}`);
  const tmp = `${o.out}.new`;
  writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' });
  renameSync(tmp, o.out);
  return { path: o.out, name };
}
