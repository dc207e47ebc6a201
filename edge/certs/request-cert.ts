/**
 * Getting a node client certificate through a CertificateSigningRequest, as the kubelet does:
 * a new EC P-256 key, a CSR for `CN=system:node:<name>, O=system:nodes` to the signer
 * `kubernetes.io/kube-apiserver-client-kubelet` with usages "digital signature" and "client auth",
 * then waiting until it is approved (kube-controller-manager's approver for bootstrap tokens and
 * for nodes renewing their own certificate, or tether-hub's) and signed.
 *
 * The request is authenticated by a bootstrap token (join, re-bootstrap) or by the node's current
 * certificate (renewal). The certificate is checked before it is returned: it parses, pairs with
 * the key, names the node, and is signed by the cluster CA.
 */
import { type KeyObject, X509Certificate } from 'node:crypto';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { buildCsr, csrToPem, generateNodeKey, keyToPem } from './csr.ts';
import { type KubeEndpoint, kubeRequest, replyMessage } from './kube-https.ts';

export const NODE_SIGNER = 'kubernetes.io/kube-apiserver-client-kubelet';
const CSRS = '/apis/certificates.k8s.io/v1/certificatesigningrequests';

export interface NodeCertRequest {
  /** Server, pinned CA, and the credentials: `token`, or `cert` + `key`. */
  endpoint: KubeEndpoint;
  nodeName: string;
  /** How long to wait for approval and issuance. */
  timeoutMs: number;
  pollMs?: number;
  log: Logger;
  /** Ends the wait early (agent shutting down). */
  signal?: AbortSignal;
}

export interface IssuedCert {
  certPem: string;
  keyPem: string;
  csrName: string;
  notBefore: Date;
  notAfter: Date;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

export async function requestNodeCertificate(o: NodeCertRequest): Promise<IssuedCert> {
  const key = generateNodeKey();
  const cn = `system:node:${o.nodeName}`;
  const csr = {
    apiVersion: 'certificates.k8s.io/v1',
    kind: 'CertificateSigningRequest',
    metadata: { generateName: 'tether-csr-' },
    spec: {
      request: Buffer.from(csrToPem(buildCsr(key, { cn, orgs: ['system:nodes'] }))).toString('base64'),
      signerName: NODE_SIGNER,
      usages: ['digital signature', 'client auth'],
    },
  };
  const created = await kubeRequest(o.endpoint, 'POST', CSRS, csr);
  if (created.status === 401) {
    throw new TetherError(
      ErrorCode.BadConfig,
      `submit certificate request: the apiserver rejected the ${o.endpoint.token ? 'bootstrap token (expired, deleted or mistyped)' : 'node certificate'}: ${replyMessage(created)}`,
    );
  }
  if (created.status === 403) {
    throw new TetherError(
      ErrorCode.BadConfig,
      `submit certificate request: not allowed: ${replyMessage(created)} (a bootstrap token needs the group system:bootstrappers:kubeadm:default-node-token, as \`tether-hub token create\` makes it)`,
    );
  }
  if (created.status !== 201 || typeof created.body?.metadata?.name !== 'string') {
    throw new TetherError(ErrorCode.Internal, `submit certificate request: HTTP ${created.status}: ${replyMessage(created)}`);
  }
  const name: string = created.body.metadata.name;
  o.log.info('certificate request submitted', { csr: name, node: o.nodeName });

  const deadline = Date.now() + o.timeoutMs;
  let lastProblem = 'not approved yet';
  for (;;) {
    if (o.signal?.aborted) throw new TetherError(ErrorCode.Internal, `wait for certificate ${name}: stopped`);
    let r;
    try {
      r = await kubeRequest(o.endpoint, 'GET', `${CSRS}/${name}`);
    } catch (e) {
      r = undefined;
      lastProblem = messageOf(e);
    }
    if (r && r.status === 200) {
      const conditions = (r.body?.status?.conditions ?? []) as { type: string; reason?: string; message?: string }[];
      const bad = conditions.find((c) => c.type === 'Denied' || c.type === 'Failed');
      if (bad) {
        throw new TetherError(
          ErrorCode.BadConfig,
          `wait for certificate: request ${name} was ${bad.type.toLowerCase()}${bad.reason ? ` (${bad.reason})` : ''}${bad.message ? `: ${bad.message}` : ''}`,
        );
      }
      const issued = r.body?.status?.certificate;
      if (typeof issued === 'string' && issued.length > 0) {
        return checkIssued(Buffer.from(issued, 'base64').toString('utf8'), key, cn, o.endpoint.ca, name);
      }
      lastProblem = conditions.some((c) => c.type === 'Approved') ? 'approved, not signed yet' : 'not approved yet';
    } else if (r) {
      lastProblem = `HTTP ${r.status}: ${replyMessage(r)}`;
    }
    if (Date.now() >= deadline) {
      throw new TetherError(
        ErrorCode.UpstreamUnavailable,
        `wait for certificate: request ${name} has no certificate after ${Math.round(o.timeoutMs / 1000)} s (${lastProblem}); ` +
          `approve it with \`kubectl certificate approve ${name}\`, or check that kube-controller-manager (or tether-hub) approves node certificates`,
      );
    }
    await sleep(o.pollMs ?? 500, o.signal);
  }
}

function checkIssued(certPem: string, key: KeyObject, cn: string, ca: string | Buffer | undefined, csrName: string): IssuedCert {
  const step = `check certificate from ${csrName}`;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (e) {
    throw new TetherError(ErrorCode.Internal, `${step}: does not parse: ${messageOf(e)}`, { cause: e });
  }
  if (!cert.checkPrivateKey(key)) throw new TetherError(ErrorCode.Internal, `${step}: it is not for the key that was sent`);
  if (!cert.subject.split('\n').includes(`CN=${cn}`)) throw new TetherError(ErrorCode.Internal, `${step}: subject is ${cert.subject.replace(/\n/g, ', ')}, not CN=${cn}`);
  if (ca !== undefined && !splitPem(String(ca)).some((c) => cert.verify(new X509Certificate(c).publicKey))) {
    throw new TetherError(ErrorCode.Internal, `${step}: not signed by the cluster CA`);
  }
  return { certPem, keyPem: keyToPem(key), csrName, notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
}

/** The certificates of a PEM bundle, each as its own PEM. */
export function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}
