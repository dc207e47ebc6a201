/**
 * `tether-hub token create`: a bootstrap token for joining edge nodes, printed as a ready
 * `tether-edge join` command, as `kubeadm token create --print-join-command` does.
 *
 * The token is a Secret kube-system/bootstrap-token-<id> (type bootstrap.kubernetes.io/token)
 * usable for authentication and for signing cluster-info, in kubeadm's default node token group
 * (which may create CSRs). The CA hash is SHA-256 of the SubjectPublicKeyInfo of the CA in
 * kube-public/cluster-info, the CA that joining nodes will check; the server is the one
 * cluster-info advertises unless --server says otherwise.
 *
 * Who gets which certificate is tether-hub's CSR approver's decision (cloud/controllers/csr): a
 * token may join only a node that does not exist yet, or, with --node-name N, only N (the name
 * goes into the token's groups, see token-node.ts; the join command gets --node-name N too).
 * Before creating anything, a SubjectAccessReview asks whether kube-controller-manager would
 * approve this token's node CSRs itself (a binding to the nodeclient ClusterRole, as kubeadm
 * makes): then any node name would be signed, so the command refuses and says which binding to
 * remove.
 */
import { randomInt } from 'node:crypto';
import { caCertHash } from '../../shared/ca-hash.ts';
import { defineCommand } from 'citty';
import { parse as parseYaml } from 'yaml';
import { guard } from '../../shared/cli.ts';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import { tokenNodeGroup, tokenNodeNameProblem } from '../controllers/csr/token-node.ts';
import { kube, loadKubeConfig, makeClients, statusCodeOf, type KubeConfig } from '../kube/client.ts';

export const NODE_TOKEN_GROUP = 'system:bootstrappers:kubeadm:default-node-token';

function random(n: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[randomInt(alphabet.length)];
  return s;
}

/** "24h", "30m", "90s", "2h30m", "0" (never expires) → seconds. */
export function parseTtl(s: string): number {
  if (s.trim() === '0') return 0;
  const re = /(\d+)(h|m|s)/g;
  let total = 0;
  let consumed = 0;
  for (const m of s.trim().matchAll(re)) {
    total += Number(m[1]) * { h: 3600, m: 60, s: 1 }[m[2] as 'h' | 'm' | 's'];
    consumed += m[0].length;
  }
  if (consumed === 0 || consumed !== s.trim().length) throw new TetherError(ErrorCode.BadConfig, `token create: --ttl ${JSON.stringify(s)}: expected a duration such as 24h, 30m or 1h30m (0: never expires)`);
  return total;
}

/** kubeadm's CA pin: sha256 of the certificate's SubjectPublicKeyInfo (DER). */

async function clusterInfo(core: ReturnType<typeof makeClients>['core']): Promise<{ caPem: string; server: string }> {
  let kubeconfig: string | undefined;
  try {
    const cm = await core.readNamespacedConfigMap({ name: 'cluster-info', namespace: 'kube-public' });
    kubeconfig = cm.data?.kubeconfig;
  } catch (e) {
    if (statusCodeOf(e) === 404) {
      throw new TetherError(ErrorCode.BadConfig, 'token create: the cluster has no kube-public/cluster-info ConfigMap, which joining nodes read; kubeadm creates it (`kubeadm init phase bootstrap-token`)');
    }
    throw new TetherError(ErrorCode.UpstreamUnavailable, `token create: read kube-public/cluster-info: ${messageOf(e)}`, { cause: e });
  }
  const cluster = (parseYaml(kubeconfig ?? '') as { clusters?: { cluster?: Record<string, string> }[] } | null)?.clusters?.[0]?.cluster;
  const data = cluster?.['certificate-authority-data'];
  if (!data || !cluster?.server) throw new TetherError(ErrorCode.BadConfig, 'token create: kube-public/cluster-info holds no CA or server');
  return { caPem: Buffer.from(data, 'base64').toString('utf8'), server: cluster.server };
}

/**
 * Refuses when kube-controller-manager would approve node client CSRs of a token in `groups`
 * itself (RBAC allows it `create certificatesigningrequests/nodeclient`), bypassing the hub's policy.
 * An operator not allowed to ask gets a warning instead.
 */
async function refuseControllerManagerApproval(kc: KubeConfig, id: string, groups: string[]): Promise<void> {
  let status: { allowed?: boolean; reason?: string } | undefined;
  try {
    const review = await kc.makeApiClient(kube.AuthorizationV1Api).createSubjectAccessReview({
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: `system:bootstrap:${id}`,
          groups: [...groups, 'system:authenticated'],
          resourceAttributes: { group: 'certificates.k8s.io', resource: 'certificatesigningrequests', subresource: 'nodeclient', verb: 'create' },
        },
      },
    });
    status = review.status;
  } catch (e) {
    process.stderr.write(
      `warning: token create: could not check whether kube-controller-manager auto-approves bootstrap tokens' node certificates (${messageOf(e)}); if a ClusterRoleBinding gives a bootstrap group the ClusterRole ${NODECLIENT_ROLE}, any holder of this token can get a certificate for any node\n`,
    );
    return;
  }
  if (status?.allowed) {
    throw new TetherError(
      ErrorCode.BadConfig,
      `token create: kube-controller-manager would approve this token's node certificates for any node name, bypassing tether-hub's CSR approval (${status.reason || 'RBAC allows the token to create certificatesigningrequests/nodeclient'}); a Tether cluster binds no bootstrap group to the ClusterRole ${NODECLIENT_ROLE}: remove that binding (kubeadm's is \`kubectl delete clusterrolebinding kubeadm:node-autoapprove-bootstrap\`), then try again`,
    );
  }
}

const NODECLIENT_ROLE = 'system:certificates.k8s.io:certificatesigningrequests:nodeclient';

const create = defineCommand({
  meta: { name: 'create', description: 'Create a bootstrap token and print the tether-edge join command' },
  args: {
    kubeconfig: { type: 'string', description: 'Kubeconfig of the cluster (default: $KUBECONFIG, then in-cluster)' },
    ttl: { type: 'string', description: 'Lifetime of the token (0: never expires)', default: '24h' },
    description: { type: 'string', description: 'Description stored with the token', default: 'tether-edge join token' },
    server: { type: 'string', description: 'kube-apiserver URL for edge nodes (default: the one in kube-public/cluster-info)' },
    hub: { type: 'string', description: 'wss:// address of tether-hub to put in the join command' },
    pool: { type: 'string', description: 'Node pool to put in the join command' },
    'node-name': {
      type: 'string',
      description: 'Bind the token to this node: it can get a certificate for this node only (new or existing, e.g. to re-join); without it, only for a node that does not exist yet',
    },
  },
  run: ({ args }) =>
    guard('tether-hub', async () => {
      const ttl = parseTtl(args.ttl);
      const nodeName = args['node-name'];
      if (nodeName !== undefined) {
        const problem = tokenNodeNameProblem(nodeName);
        if (problem) throw new TetherError(ErrorCode.BadConfig, `token create: --node-name: ${problem}`);
      }
      const groups = [NODE_TOKEN_GROUP, ...(nodeName !== undefined ? [tokenNodeGroup(nodeName)] : [])];
      const kc = loadKubeConfig(args.kubeconfig ?? process.env.KUBECONFIG);
      const { core } = makeClients(kc);
      const info = await clusterInfo(core);
      const id = random(6);
      const secret = random(16);
      await refuseControllerManagerApproval(kc, id, ['system:bootstrappers', ...groups]);
      const expiration = ttl > 0 ? new Date(Date.now() + ttl * 1000).toISOString().replace(/\.\d+Z$/, 'Z') : undefined;
      try {
        await core.createNamespacedSecret({
          namespace: 'kube-system',
          body: {
            apiVersion: 'v1',
            kind: 'Secret',
            type: 'bootstrap.kubernetes.io/token',
            metadata: { name: `bootstrap-token-${id}`, namespace: 'kube-system' },
            stringData: {
              'token-id': id,
              'token-secret': secret,
              'usage-bootstrap-authentication': 'true',
              'usage-bootstrap-signing': 'true',
              'auth-extra-groups': groups.join(','),
              description: args.description,
              ...(expiration ? { expiration } : {}),
            },
          },
        });
      } catch (e) {
        throw new TetherError(ErrorCode.UpstreamUnavailable, `token create: create Secret kube-system/bootstrap-token-${id}: ${messageOf(e)}`, { cause: e });
      }
      const parts = ['tether-edge join', `--server ${args.server ?? info.server}`, `--token ${id}.${secret}`, `--ca-cert-hash ${caCertHash(info.caPem)}`];
      if (args.hub) parts.push(`--hub ${args.hub}`);
      if (args.pool) parts.push(`--pool ${args.pool}`);
      if (nodeName !== undefined) parts.push(`--node-name ${nodeName}`);
      process.stdout.write(`${parts.join(' ')}\n`);
      const scope = nodeName !== undefined ? `joins only node ${nodeName}` : 'joins only nodes that do not exist yet';
      process.stderr.write(`token ${id} ${scope}; it ${expiration ? `expires at ${expiration}` : 'never expires'}; delete it early with: kubectl -n kube-system delete secret bootstrap-token-${id}\n`);
    }),
});

export default defineCommand({
  meta: { name: 'token', description: 'Bootstrap tokens for joining edge nodes' },
  subCommands: { create },
});
