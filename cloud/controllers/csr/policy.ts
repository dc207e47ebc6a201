/**
 * Who may get a node client certificate — a pure decision over a CSR.
 *
 * Considered: CSRs for the signers kubernetes.io/kube-apiserver-client and
 * kubernetes.io/kube-apiserver-client-kubelet whose subject CN is system:node:<name>, with no
 * decision yet. Everything else is ignored (left to other approvers).
 * Denied: an organization other than exactly system:nodes; usages beyond client auth, digital
 * signature and key encipherment (or without client auth); a requester not entitled to <name>.
 * Entitled: the node itself (user system:node:<name>, renewing), or a bootstrap token (a member
 * of a bootstrap group) for a signer bootstrap tokens may use, and then only
 * - for the one node the token was created for (`token create --node-name`, a group from
 *   token-node.ts in the CSR's spec.groups, which the apiserver sets and the requester cannot), or
 * - for a token bound to no node: only for a node that does not exist yet (unless
 *   bootstrapExistingNodes is `allow`, the old behaviour).
 * A token bound to several nodes is refused: `token create` never makes one.
 * nodeExists is the caller's view; the controller confirms "does not exist" against the apiserver
 * before it records an approval that depends on it (see controller.ts).
 */
import type { CertificateSigningRequest } from '../kube-types.ts';
import { csrSubject, pemToDer, type CsrSubject } from './pkcs10.ts';
import { tokenNodesOf } from './token-node.ts';

export const NODE_CLIENT_SIGNERS = ['kubernetes.io/kube-apiserver-client', 'kubernetes.io/kube-apiserver-client-kubelet'];
const ALLOWED_USAGES = new Set(['client auth', 'digital signature', 'key encipherment']);

export interface CsrPolicy {
  bootstrapGroups: string[];
  bootstrapSigners: string[];
  bootstrapExistingNodes: 'allow' | 'deny';
  nodeExists(name: string): boolean;
}

/** node: the name in the request's common name. */
export type CsrDecision = { action: 'ignore'; why: string } | { action: 'approve' | 'deny'; reason: string; message: string; node: string };

export function decided(csr: CertificateSigningRequest): boolean {
  return (csr.status?.conditions ?? []).some((c) => (c.type === 'Approved' || c.type === 'Denied' || c.type === 'Failed') && c.status === 'True');
}

export function decide(csr: CertificateSigningRequest, policy: CsrPolicy): CsrDecision {
  if (!NODE_CLIENT_SIGNERS.includes(csr.spec.signerName)) return { action: 'ignore', why: 'another signer' };
  if (decided(csr)) return { action: 'ignore', why: 'already decided' };
  let subject: CsrSubject;
  try {
    subject = csrSubject(pemToDer(Buffer.from(csr.spec.request, 'base64').toString('latin1')));
  } catch (e) {
    return { action: 'ignore', why: `unreadable request: ${(e as Error).message}` };
  }
  const cn = subject.commonName ?? '';
  if (!cn.startsWith('system:node:')) return { action: 'ignore', why: 'not a node certificate' };
  const node = cn.slice('system:node:'.length);
  const user = csr.spec.username ?? '';
  const deny = (reason: string, message: string): CsrDecision => ({ action: 'deny', reason, message, node });
  const approve = (reason: string, message: string): CsrDecision => ({ action: 'approve', reason, message, node });
  if (!node) return deny('TetherBadSubject', 'the common name system:node: names no node');
  if (subject.organizations.length !== 1 || subject.organizations[0] !== 'system:nodes') {
    return deny('TetherBadOrganization', `a node certificate must have exactly the organization system:nodes, not [${subject.organizations.join(', ')}]`);
  }
  const usages = csr.spec.usages ?? [];
  if (!usages.includes('client auth') || usages.some((u) => !ALLOWED_USAGES.has(u))) {
    return deny('TetherBadUsages', `a node client certificate allows only client auth, digital signature and key encipherment, not [${usages.join(', ')}]`);
  }
  if (user === cn) return approve('TetherNodeRenewal', `node ${node} renews its own client certificate`);
  const bootstrap = (csr.spec.groups ?? []).some((g) => policy.bootstrapGroups.includes(g));
  if (bootstrap && policy.bootstrapSigners.includes(csr.spec.signerName)) {
    const bound = tokenNodesOf(csr.spec.groups ?? []);
    if (bound.length > 1) {
      return deny('TetherTokenAmbiguous', `bootstrap token ${user} is bound to several nodes (${bound.join(', ')}); a token may name at most one node`);
    }
    if (bound.length === 1) {
      if (bound[0] !== node) {
        return deny('TetherTokenForAnotherNode', `bootstrap token ${user} was created for node ${bound[0]} and may not obtain a certificate for node ${node}`);
      }
      return approve('TetherBootstrapNamed', `bootstrap token ${user}, created for node ${node}, joins it`);
    }
    if (policy.bootstrapExistingNodes === 'deny' && policy.nodeExists(node)) {
      return deny(
        'TetherNodeExists',
        `node ${node} exists already: bootstrap token ${user} names no node, so it may join only new nodes; to re-join ${node} use a token from \`tether-hub token create --node-name ${node}\``,
      );
    }
    return approve('TetherBootstrap', `bootstrap token ${user} joins new node ${node}`);
  }
  return deny(
    'TetherNotEntitled',
    `${user || 'the requester'} may not obtain a client certificate for node ${node}: only the node itself${
      policy.bootstrapSigners.includes(csr.spec.signerName) ? ' or a bootstrap token' : ''
    } may`,
  );
}
