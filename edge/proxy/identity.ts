/**
 * Who a local request is, decided once per request before anything else reads it:
 *
 *   local-cert  a client certificate from the agent's local CA (TLS verified the chain): the
 *               request goes upstream as the node (the agent's client certificate); the
 *               certificate's CN, never the User-Agent, is its component (cache view, cached?).
 *   bearer      an Authorization header: passed through unchanged on a connection without the
 *               node's certificate, so the apiserver authenticates the caller. Its component is
 *               the User-Agent's (CoreDNS and a DaemonSet kube-proxy carry service-account
 *               tokens), except that a token cannot claim to be the kubelet, which only ever talks
 *               to the agent with its local certificate: such a request has no component and is
 *               not cached.
 *   lent-plain  --insecure-plain-http only: no credentials on a loopback plain-HTTP listener; lent
 *               the node's identity as before local certificates existed, component from the
 *               User-Agent.
 *   anonymous   anything else: refused 401 with a Status saying what to present. It never gets
 *               the node's identity and nothing of it is cached.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { componentOf } from '../../shared/kube/index.ts';

/** Components that only a local client certificate can be: the kubelet never uses a bearer token. */
export const CERTIFICATE_COMPONENTS: ReadonlySet<string> = new Set(['kubelet']);

export type ClientIdentity =
  | { kind: 'local-cert'; component: string; lendsNode: true }
  | { kind: 'bearer'; component: string; lendsNode: false }
  | { kind: 'lent-plain'; component: string; lendsNode: true }
  | { kind: 'anonymous'; component: ''; lendsNode: false; why: string };

export interface IdentifyOptions {
  /** The listener is TLS with the local CA (false: --insecure-plain-http). */
  tls: boolean;
  /** Plain HTTP on loopback with --insecure-plain-http: lend the node's identity to bare requests. */
  lendPlain: boolean;
}

/** The CN of a verified local client certificate on this request's connection, if any. */
export function localCertName(req: IncomingMessage): string | undefined {
  const sock = req.socket as Partial<TLSSocket>;
  if (!sock.encrypted || !sock.authorized || typeof sock.getPeerCertificate !== 'function') return undefined;
  const cn = sock.getPeerCertificate()?.subject?.CN;
  const name = Array.isArray(cn) ? undefined : cn; // several CNs: refused, not guessed
  return name && /^[a-z0-9][a-z0-9._-]{0,62}$/i.test(name) ? name.toLowerCase() : undefined;
}

export function identify(req: IncomingMessage, o: IdentifyOptions): ClientIdentity {
  if (req.headers.authorization) {
    const ua = componentOf(req.headers['user-agent']);
    return { kind: 'bearer', component: CERTIFICATE_COMPONENTS.has(ua) ? '' : ua, lendsNode: false };
  }
  if (o.tls) {
    const cn = localCertName(req);
    if (cn) return { kind: 'local-cert', component: cn, lendsNode: true };
    const sock = req.socket as Partial<TLSSocket>;
    const presented = typeof sock.getPeerCertificate === 'function' && Boolean(sock.getPeerCertificate()?.subject);
    return {
      kind: 'anonymous',
      component: '',
      lendsNode: false,
      why: presented
        ? "tether-edge: the client certificate is not one of this agent's local CA (or its name is not a component name); use the kubeconfig tether-edge join wrote, or a bearer token"
        : 'tether-edge: present the client certificate of the kubeconfig tether-edge join wrote (/etc/kubernetes/kubelet.conf), or a bearer token',
    };
  }
  if (o.lendPlain) return { kind: 'lent-plain', component: componentOf(req.headers['user-agent']), lendsNode: true };
  return { kind: 'anonymous', component: '', lendsNode: false, why: 'tether-edge: requests to this listener must carry credentials (a bearer token)' };
}
