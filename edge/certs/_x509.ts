/**
 * Just enough X.509 v3 (RFC 5280) to issue the agent's local certificates with node:crypto, which
 * has no certificate builder. EC P-256 keys, ecdsa-with-SHA256 signatures.
 *
 *   Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature BIT STRING }
 *   TBSCertificate ::= SEQUENCE {
 *     version [0] EXPLICIT 2 (v3), serialNumber (16 random bytes), signature (ecdsa-with-SHA256),
 *     issuer Name, validity { notBefore, notAfter } (UTCTime before 2050, GeneralizedTime after),
 *     subject Name (one CN), subjectPublicKeyInfo (as node:crypto exports it),
 *     extensions [3] EXPLICIT: basicConstraints (critical), keyUsage (critical), extKeyUsage,
 *       subjectAltName (DNS names and IP addresses), subjectKeyIdentifier, authorityKeyIdentifier }
 */
import { type KeyObject, X509Certificate, createHash, createPublicKey, randomBytes, sign } from 'node:crypto';
import { isIP } from 'node:net';
import { bitString, oid, sequence, setOf, tlv, utf8String } from './_der.ts';

const OID_CN = '2.5.4.3';
const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_EXT_KEY_USAGE = '2.5.29.37';
const OID_SAN = '2.5.29.17';
const OID_SKID = '2.5.29.14';
const OID_AKID = '2.5.29.35';
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

export type CertUsage = 'ca' | 'server' | 'client';

export interface CertTemplate {
  /** The subject's common name. */
  cn: string;
  usage: CertUsage;
  /** The subject's public key (or its private key, whose public half is taken). */
  publicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  /** For server certificates: DNS names and IP addresses. */
  hosts?: readonly string[];
}

export interface Issuer {
  cn: string;
  key: KeyObject;
  /** The issuer's public key, for the authority key identifier. */
  publicKey: KeyObject;
}

const boolTrue = tlv(0x01, Buffer.from([0xff]));
const octets = (b: Buffer) => tlv(0x04, b);
const name = (cn: string) => sequence(setOf(sequence(oid(OID_CN), utf8String(cn))));

function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '');
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`)) : tlv(0x18, Buffer.from(`${digits}Z`));
}

/** A positive INTEGER from random bytes. */
function serial(): Buffer {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  if (b[0] === 0) b[0] = 1;
  return tlv(0x02, b);
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  // IPv6: expand "::" and write eight 16-bit groups.
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function keyId(pub: KeyObject): Buffer {
  return createHash('sha1').update(pub.export({ type: 'spki', format: 'der' })).digest();
}

const extension = (id: string, critical: boolean, value: Buffer) => sequence(oid(id), ...(critical ? [boolTrue] : []), octets(value));

function extensions(t: CertTemplate, issuer: Issuer, subjectPub: KeyObject): Buffer {
  const exts: Buffer[] = [];
  if (t.usage === 'ca') {
    exts.push(extension(OID_BASIC_CONSTRAINTS, true, sequence(boolTrue)));
    // digitalSignature (bit 0), keyCertSign (5), cRLSign (6): 1000 0110, one unused bit.
    exts.push(extension(OID_KEY_USAGE, true, tlv(0x03, Buffer.from([0x01, 0x86]))));
  } else {
    exts.push(extension(OID_BASIC_CONSTRAINTS, true, sequence()));
    // digitalSignature only: 1000 0000, seven unused bits.
    exts.push(extension(OID_KEY_USAGE, true, tlv(0x03, Buffer.from([0x07, 0x80]))));
    exts.push(extension(OID_EXT_KEY_USAGE, false, sequence(oid(t.usage === 'server' ? OID_SERVER_AUTH : OID_CLIENT_AUTH))));
  }
  if (t.hosts?.length) {
    const names = t.hosts.map((h) => (isIP(h) ? tlv(0x87, ipBytes(h)) : tlv(0x82, Buffer.from(h, 'ascii'))));
    exts.push(extension(OID_SAN, false, sequence(...names)));
  }
  exts.push(extension(OID_SKID, false, octets(keyId(subjectPub))));
  exts.push(extension(OID_AKID, false, sequence(tlv(0x80, keyId(issuer.publicKey)))));
  return tlv(0xa3, sequence(...exts));
}

/** Issues (signs) a certificate; returns it as PEM. A CA certificate signs itself: pass itself as issuer. */
export function issueCertificate(t: CertTemplate, issuer: Issuer): string {
  const pub = t.publicKey.type === 'private' ? createPublicKey(t.publicKey) : t.publicKey;
  const algorithm = sequence(oid(OID_ECDSA_SHA256));
  const tbs = sequence(
    tlv(0xa0, tlv(0x02, Buffer.from([2]))),
    serial(),
    algorithm,
    name(issuer.cn),
    sequence(time(t.notBefore), time(t.notAfter)),
    name(t.cn),
    pub.export({ type: 'spki', format: 'der' }),
    extensions(t, issuer, pub),
  );
  const signature = sign('sha256', tbs, { key: issuer.key, dsaEncoding: 'der' });
  const der = sequence(tbs, algorithm, bitString(signature));
  // Round-trip through node's parser: a malformed encoding fails here, not in a TLS handshake.
  return new X509Certificate(der).toString();
}
