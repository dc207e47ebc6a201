/**
 * The two secrets a join command carries, as kubeadm defines them:
 * - a bootstrap token `<id>.<secret>` (6 and 16 characters of [a-z0-9]), the Secret
 *   kube-system/bootstrap-token-<id>;
 * - a CA pin `sha256:<hex>`: SHA-256 of the cluster CA certificate's SubjectPublicKeyInfo (DER).
 */
import { timingSafeEqual } from 'node:crypto';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';

export interface BootstrapToken {
  id: string;
  secret: string;
  /** `<id>.<secret>` */
  value: string;
}

const TOKEN = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;

export function parseBootstrapToken(s: string): BootstrapToken {
  const m = TOKEN.exec(s.trim());
  if (!m) {
    throw new TetherError(
      ErrorCode.BadConfig,
      'join: --token must look like abcdef.0123456789abcdef (6 and 16 lower-case letters or digits); create one on the hub with `tether-hub token create`',
    );
  }
  return { id: m[1]!, secret: m[2]!, value: `${m[1]}.${m[2]}` };
}

/** "sha256:<64 hex>" → lower-case hex. */
export function parseCaCertHash(s: string): string {
  const m = /^sha256:([0-9a-fA-F]{64})$/.exec(s.trim());
  if (!m) {
    throw new TetherError(ErrorCode.BadConfig, 'join: --ca-cert-hash must look like sha256:<64 hex digits>, as `tether-hub token create` prints it');
  }
  return m[1]!.toLowerCase();
}

export { caCertHash } from '../../shared/ca-hash.ts';

/** Constant-time comparison of two hex digests. */
export function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a.toLowerCase());
  const y = Buffer.from(b.toLowerCase());
  return x.length === y.length && timingSafeEqual(x, y);
}
