/**
 * The kubelet's self-signed serving certificate, made with the openssl CLI when none is given:
 * CN "<node>@<unix time>" as the kubelet writes it, SANs for the node address and name, EC P-256,
 * one year. The apiserver does not verify it unless started with --kubelet-certificate-authority.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, TetherError, messageOf } from '../../../shared/errors.ts';

export function selfSignedServingCert(nodeName: string, address: string): { certPem: string; keyPem: string } {
  const dir = mkdtempSync(join(tmpdir(), 'kubelet-sim-cert-'));
  try {
    const san = /^[\d.]+$/.test(address) ? `IP:${address},DNS:${nodeName}` : `DNS:${address},DNS:${nodeName}`;
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '365',
      '-subj', `/CN=${nodeName}@${Math.floor(Date.now() / 1000)}`,
      '-addext', `subjectAltName=${san}`,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    return { certPem: readFileSync(join(dir, 'cert.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } catch (e) {
    throw new TetherError(ErrorCode.Internal, `self-signed serving certificate: ${messageOf(e)}`, { cause: e });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
