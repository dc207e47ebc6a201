/**
 * The objects kubeadm creates so that nodes can join with a bootstrap token:
 *
 * - `kube-public/cluster-info`: a kubeconfig with the CA and the server, readable anonymously
 *   (Role + RoleBinding for `system:anonymous`); the bootstrap signer adds a JWS signature per
 *   token (`jws-kubeconfig-<id>`) so a joining node can pin the CA;
 * - the group `system:bootstrappers:kubeadm:default-node-token` may create CSRs
 *   (system:node-bootstrapper) and get nodes;
 * - `system:nodes` have their renewal CSRs auto-approved (selfnodeclient).
 *
 * Unlike kubeadm, and as a Tether cluster must be, no bootstrap group is bound to
 * `system:certificates.k8s.io:certificatesigningrequests:nodeclient`: with that binding
 * kube-controller-manager would approve a bootstrap token's CSR for any node name, existing nodes
 * included, before tether-hub's approver (cloud/controllers/csr) could refuse it. Bootstrap CSRs
 * are approved by tether-hub only (suites run it with test/support/cluster.ts startCsrApprover).
 *
 * Bootstrap tokens are Secrets `kube-system/bootstrap-token-<id>` of type
 * `bootstrap.kubernetes.io/token`; the apiserver authenticates `<id>.<secret>` as
 * `system:bootstrap:<id>` in the groups `system:bootstrappers` and `auth-extra-groups`.
 */
import { randomInt } from 'node:crypto';
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import type { KubeRest } from './api.ts';
import { clusterInfoKubeconfig } from './kubeconfig.ts';

export const BOOTSTRAP_GROUP = 'system:bootstrappers:kubeadm:default-node-token';

const rbac = '/apis/rbac.authorization.k8s.io/v1';

function clusterRoleBinding(name: string, role: string, subject: { kind: 'Group' | 'User'; name: string }) {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', ...subject }],
  };
}

export async function createBootstrapObjects(api: KubeRest, edgeServer: string, caPem: string): Promise<void> {
  await api.ensure('/api/v1/namespaces/kube-public/configmaps', {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'cluster-info', namespace: 'kube-public' },
    data: { kubeconfig: clusterInfoKubeconfig(edgeServer, caPem) },
  });
  await api.ensure(`${rbac}/namespaces/kube-public/roles`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: 'kubeadm:bootstrap-signer-clusterinfo', namespace: 'kube-public' },
    rules: [{ apiGroups: [''], resources: ['configmaps'], resourceNames: ['cluster-info'], verbs: ['get'] }],
  });
  await api.ensure(`${rbac}/namespaces/kube-public/rolebindings`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: 'kubeadm:bootstrap-signer-clusterinfo', namespace: 'kube-public' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'kubeadm:bootstrap-signer-clusterinfo' },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'system:anonymous' }],
  });
  await api.ensure(`${rbac}/clusterroles`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'kubeadm:get-nodes' },
    rules: [{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }],
  });
  const bindings = [
    clusterRoleBinding('kubeadm:kubelet-bootstrap', 'system:node-bootstrapper', { kind: 'Group', name: BOOTSTRAP_GROUP }),
    clusterRoleBinding(
      'kubeadm:node-autoapprove-certificate-rotation',
      'system:certificates.k8s.io:certificatesigningrequests:selfnodeclient',
      { kind: 'Group', name: 'system:nodes' },
    ),
    clusterRoleBinding('kubeadm:get-nodes', 'kubeadm:get-nodes', { kind: 'Group', name: BOOTSTRAP_GROUP }),
  ];
  for (const b of bindings) await api.ensure(`${rbac}/clusterrolebindings`, b);
}

function randomToken(length: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let s = '';
  for (let i = 0; i < length; i++) s += alphabet[randomInt(alphabet.length)];
  return s;
}

export interface BootstrapTokenOptions {
  /** Lifetime; absent means the token does not expire. */
  ttlSeconds?: number;
  description?: string;
  /** Groups besides `system:bootstrappers`; defaults to kubeadm's default node token group. */
  groups?: string[];
  now?: () => Date;
}

/** Creates a bootstrap token Secret and returns the token `<id>.<secret>`. */
export async function createBootstrapToken(api: KubeRest, opts: BootstrapTokenOptions = {}): Promise<string> {
  const id = randomToken(6);
  const secret = randomToken(16);
  const stringData: Record<string, string> = {
    'token-id': id,
    'token-secret': secret,
    'usage-bootstrap-authentication': 'true',
    'usage-bootstrap-signing': 'true',
    'auth-extra-groups': (opts.groups ?? [BOOTSTRAP_GROUP]).join(','),
  };
  if (opts.description) stringData.description = opts.description;
  if (opts.ttlSeconds !== undefined) {
    const now = opts.now?.() ?? new Date();
    stringData.expiration = new Date(now.getTime() + opts.ttlSeconds * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  }
  const res = await api.request('POST', '/api/v1/namespaces/kube-system/secrets', {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'bootstrap.kubernetes.io/token',
    metadata: { name: `bootstrap-token-${id}`, namespace: 'kube-system' },
    stringData,
  });
  if (res.status !== 201) {
    throw new TetherError(ErrorCode.Internal, `create bootstrap token ${id}: HTTP ${res.status}: ${res.body?.message ?? ''}`);
  }
  return `${id}.${secret}`;
}
