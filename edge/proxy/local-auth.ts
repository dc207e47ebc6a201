/**
 * How the agent's composition root sets up local-client authentication for the proxy: opens (or
 * creates) the local CA and issues the serving certificate for this start, in memory; or, with
 * --insecure-plain-http, plain HTTP with the warning `tether-edge status` shows.
 */
import type { Logger } from '../../shared/log.ts';
import { splitHostPort } from '../../shared/serve.ts';
import { openLocalCa } from '../certs/local-ca.ts';
import type { ProxyOptions } from './server.ts';

export const INSECURE_PLAIN_HTTP_WARNING =
  "insecurePlainHttp is on: the proxy serves plain HTTP and lends the node's identity to every local process without credentials; " +
  're-run `tether-edge join` (or give the kubelet a local client certificate) and turn it off';

export interface LocalAuthOptions {
  insecurePlainHttp: boolean;
  /** The local CA's directory (created 0700 when missing). */
  caDir: string;
  /** The proxy's listen address: its host goes into the serving certificate. */
  listen: string;
  log: Logger;
}

export function localClientAuth(o: LocalAuthOptions): NonNullable<ProxyOptions['clientAuth']> {
  if (o.insecurePlainHttp) {
    o.log.warn(INSECURE_PLAIN_HTTP_WARNING);
    return { mode: 'insecure-plain-http' };
  }
  const ca = openLocalCa(o.caDir);
  const { host } = splitHostPort(o.listen);
  const hosts = ['localhost', '127.0.0.1', '::1'];
  const h = host.replace(/^\[(.*)\]$/, '$1');
  if (h && !hosts.includes(h) && h !== '0.0.0.0' && h !== '::') hosts.push(h);
  const serving = ca.issue('tether-edge', 'server', { hosts });
  return { mode: 'tls', tls: { caPem: ca.certPem, certPem: serving.certPem, keyPem: serving.keyPem } };
}
