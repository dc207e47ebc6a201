/** kubeadm's CA pin: sha256 of a certificate's SubjectPublicKeyInfo (DER), as "sha256:<hex>". */
import { X509Certificate, createHash } from 'node:crypto';
import { ErrorCode, TetherError, messageOf } from './errors.ts';

export function caCertHash(certPem: string): string {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (e) {
    throw new TetherError(ErrorCode.BadConfig, `CA certificate: does not parse: ${messageOf(e)}`, { cause: e });
  }
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}
