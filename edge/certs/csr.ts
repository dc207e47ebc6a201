/**
 * Node keys and PKCS#10 certification requests (RFC 2986), built with node:crypto and a small DER
 * encoder because node:crypto has no CSR builder.
 *
 *   CertificationRequest ::= SEQUENCE {
 *     certificationRequestInfo SEQUENCE {
 *       version       INTEGER 0,
 *       subject       Name (O=<org>… then CN=<cn>, one RDN each, UTF8String),
 *       subjectPKInfo SubjectPublicKeyInfo (the key's SPKI DER as node:crypto exports it),
 *       attributes    [0] IMPLICIT SET OF Attribute (empty) },
 *     signatureAlgorithm SEQUENCE { ecdsa-with-SHA256 },
 *     signature          BIT STRING (ECDSA over the DER of certificationRequestInfo) }
 *
 * Keys are EC P-256, as the kubelet makes them.
 */
import { type KeyObject, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { bitString, contextConstructed, integer, oid, sequence, setOf, utf8String } from './_der.ts';

const OID_CN = '2.5.4.3';
const OID_O = '2.5.4.10';
const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';

export interface CsrSubject {
  cn: string;
  orgs?: readonly string[];
}

/** A new EC P-256 private key. */
export function generateNodeKey(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

export function keyToPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}

const rdn = (type: string, value: string) => setOf(sequence(oid(type), utf8String(value)));

/** The DER of a certification request for `subject`, signed with the EC `key`. */
export function buildCsr(key: KeyObject, subject: CsrSubject): Buffer {
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ec') throw new TypeError('build csr: an EC private key is needed');
  const name = sequence(...(subject.orgs ?? []).map((o) => rdn(OID_O, o)), rdn(OID_CN, subject.cn));
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const info = sequence(integer(0), name, spki, contextConstructed(0, Buffer.alloc(0)));
  const signature = sign('sha256', info, { key, dsaEncoding: 'der' });
  return sequence(info, sequence(oid(OID_ECDSA_SHA256)), bitString(signature));
}

export function csrToPem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n-----END CERTIFICATE REQUEST-----\n`;
}
