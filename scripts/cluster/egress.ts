/**
 * The kube-apiserver EgressSelectorConfiguration (apiserver.k8s.io/v1beta1). Only the `cluster`
 * egress is configured: traffic to kubelets (logs, exec, attach, port-forward), node/pod/service
 * proxy, webhooks and aggregated APIs goes through the hub's HTTP CONNECT endpoint; `controlplane`
 * and `etcd` stay direct.
 *
 * The apiserver validates: an `http://` URL takes no tlsConfig; an `https://` URL needs
 * clientCert and clientKey (caBundle is optional and then the system roots are used).
 */
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { ErrorCode, TetherError } from '../../shared/errors.ts';

/** Where the apiserver sends `cluster` traffic: an HTTP CONNECT proxy over TCP or a Unix socket. */
export type HubEgress =
  | { url: string; caFile?: string; certFile?: string; keyFile?: string }
  | { udsName: string };

export function egressSelectorText(hub: HubEgress): string {
  let transport: Record<string, unknown>;
  if ('udsName' in hub) {
    transport = { uds: { udsName: hub.udsName } };
  } else if (hub.url.startsWith('http://')) {
    transport = { tcp: { url: hub.url } };
  } else if (hub.url.startsWith('https://')) {
    if (!hub.certFile || !hub.keyFile) {
      throw new TetherError(ErrorCode.BadConfig, `egress selector: ${hub.url} needs a client certificate and key`);
    }
    const tlsConfig: Record<string, string> = { clientCert: hub.certFile, clientKey: hub.keyFile };
    if (hub.caFile) tlsConfig.caBundle = hub.caFile;
    transport = { tcp: { url: hub.url, tlsConfig } };
  } else {
    throw new TetherError(ErrorCode.BadConfig, `egress selector: hub URL ${hub.url} must start with http:// or https://`);
  }
  return stringify({
    apiVersion: 'apiserver.k8s.io/v1beta1',
    kind: 'EgressSelectorConfiguration',
    egressSelections: [{ name: 'cluster', connection: { proxyProtocol: 'HTTPConnect', transport } }],
  });
}

export function writeEgressSelector(file: string, hub: HubEgress): string {
  writeFileSync(file, egressSelectorText(hub));
  return file;
}
