/**
 * The CSR approver (key: CSR name): applies policy.ts and records the decision through the
 * approval subresource (condition Approved or Denied, reason Tether…, a message saying why).
 * The kube-controller-manager signs approved requests. A CSR decided meanwhile by someone else
 * (kube-controller-manager's own approver) conflicts and is left as it is.
 *
 * kube-controller-manager's approver also approves every node client CSR of a requester allowed
 * to `create certificatesigningrequests/nodeclient` (kubeadm binds its default bootstrap token
 * group so): where such a binding exists, the bootstrap rules below are bypassed. A Tether cluster
 * has none for bootstrap groups (docs/install.md).
 */
import { ErrorCode, TetherError } from '../../../shared/errors.ts';
import { apiStatusOf } from '../writes.ts';
import type { ControllerContext } from '../context.ts';
import { rfc3339, type CertificateSigningRequest } from '../kube-types.ts';
import { createController, type Controller } from '../runner.ts';
import { decide, decided, type CsrPolicy } from './policy.ts';

/** The settings of the approver: who may bootstrap, for which signers, and whether an existing node may be re-joined. */
export type CsrOptions = Omit<CsrPolicy, 'nodeExists'>;

export function createCsrController(ctx: ControllerContext, opts: CsrOptions): Controller {
  const csrs = ctx.informers.csrs();
  const nodes = ctx.informers.nodes();
  const log = ctx.log.child({ controller: 'csr-approval' });
  const ctl = createController(
    'csr-approval',
    [csrs, nodes],
    async (name) => {
      const csr = csrs.get(name);
      if (!csr) return;
      const policy = {
        ...opts,
        nodeExists: (n: string) => nodes.get(n) !== undefined,
      };
      let d = decide(csr, policy);
      // "A new node" rests on the informer's view, which may lag behind a Node created a moment
      // ago: ask the apiserver before approving, and decide again if the node is there.
      if (d.action === 'approve' && d.reason === 'TetherBootstrap' && policy.bootstrapExistingNodes === 'deny') {
        const node = d.node;
        if ((await ctx.api.get(`/api/v1/nodes/${encodeURIComponent(node)}`)) !== undefined) d = decide(csr, { ...policy, nodeExists: (n) => n === node || policy.nodeExists(n) });
      }
      if (d.action === 'ignore') return;
      const condition = {
        type: d.action === 'approve' ? 'Approved' : 'Denied',
        status: 'True',
        reason: d.reason,
        message: d.message,
        lastUpdateTime: rfc3339(ctx.now()),
      };
      const body: CertificateSigningRequest = { ...csr, status: { ...csr.status, conditions: [...(csr.status?.conditions ?? []), condition] } };
      try {
        await ctx.api.put(`/apis/certificates.k8s.io/v1/certificatesigningrequests/${encodeURIComponent(name)}/approval`, body);
      } catch (e) {
        const fresh = apiStatusOf(e) === 409 ? await ctx.api.get<CertificateSigningRequest>(`/apis/certificates.k8s.io/v1/certificatesigningrequests/${encodeURIComponent(name)}`) : undefined;
        if (fresh && decided(fresh)) return; // someone else decided first
        throw new TetherError(ErrorCode.Internal, `record CSR decision for ${name}: ${(e as Error).message}`, { cause: e });
      }
      (d.action === 'approve' ? log.info : log.warn)(d.action === 'approve' ? 'CSR approved' : 'CSR denied', {
        csr: name,
        requester: csr.spec.username,
        reason: d.reason,
        message: d.message,
      });
    },
    ctx.queue,
  );
  csrs.on({
    add: (c) => !decided(c) && ctl.queue.add(c.metadata.name),
    update: (c) => !decided(c) && ctl.queue.add(c.metadata.name),
  });
  return ctl;
}
