/**
 * The subject of a PKCS#10 certificate request (RFC 2986), read from its PEM or DER without a
 * library: node:crypto parses certificates but not requests. Only the parts on the way to the
 * subject are decoded:
 *
 *   CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature }
 *   CertificationRequestInfo ::= SEQUENCE { version INTEGER, subject Name, subjectPKInfo, [0] attributes }
 *   Name ::= SEQUENCE OF SET OF SEQUENCE { type OBJECT IDENTIFIER, value DirectoryString }
 *
 * The signature is not checked here: kube-apiserver refuses a CSR whose signature does not verify.
 */
export interface CsrSubject {
  commonName?: string;
  organizations: string[];
}

interface Tlv {
  tag: number;
  start: number;
  end: number;
}

function readTlv(buf: Uint8Array, at: number, limit: number): Tlv {
  if (at + 2 > limit) throw new Error('truncated DER');
  const tag = buf[at]!;
  let len = buf[at + 1]!;
  let p = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || p + n > limit) throw new Error('unsupported DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  if (p + len > limit) throw new Error('DER length past the end');
  return { tag, start: p, end: p + len };
}

function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let p = parent.start; p < parent.end; ) {
    const t = readTlv(buf, p, parent.end);
    out.push(t);
    p = t.end;
  }
  return out;
}

function oid(bytes: Uint8Array): string {
  const parts = [Math.floor(bytes[0]! / 40), bytes[0]! % 40];
  let v = 0;
  for (const b of bytes.subarray(1)) {
    v = v * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

function text(buf: Uint8Array, t: Tlv): string {
  const bytes = buf.subarray(t.start, t.end);
  switch (t.tag) {
    case 0x0c: // UTF8String
    case 0x13: // PrintableString
    case 0x16: // IA5String
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    case 0x14: // TeletexString, read as Latin-1 as Go does
      return new TextDecoder('latin1').decode(bytes);
    case 0x1e: // BMPString (UTF-16BE)
      return new TextDecoder('utf-16be').decode(bytes);
    default:
      throw new Error(`unsupported string type 0x${t.tag.toString(16)} in the subject`);
  }
}

const CN = '2.5.4.3';
const O = '2.5.4.10';

export function pemToDer(pem: string): Uint8Array {
  const m = /-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----([\s\S]*?)-----END (?:NEW )?CERTIFICATE REQUEST-----/.exec(pem);
  if (!m) throw new Error('no CERTIFICATE REQUEST block in the PEM');
  return new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
}

/** The subject's common name and organizations; throws with a readable message on malformed input. */
export function csrSubject(der: Uint8Array): CsrSubject {
  const root = readTlv(der, 0, der.length);
  if (root.tag !== 0x30) throw new Error('not a DER SEQUENCE');
  const info = children(der, root)[0];
  if (!info || info.tag !== 0x30) throw new Error('no CertificationRequestInfo');
  const [version, subject] = children(der, info);
  if (!version || version.tag !== 0x02 || !subject || subject.tag !== 0x30) throw new Error('no subject Name');
  const out: CsrSubject = { organizations: [] };
  for (const rdn of children(der, subject)) {
    if (rdn.tag !== 0x31) throw new Error('malformed RelativeDistinguishedName');
    for (const atv of children(der, rdn)) {
      const [type, value] = children(der, atv);
      if (!type || type.tag !== 0x06 || !value) throw new Error('malformed AttributeTypeAndValue');
      const id = oid(der.subarray(type.start, type.end));
      if (id === CN) {
        if (out.commonName !== undefined) throw new Error('more than one common name');
        out.commonName = text(der, value);
      } else if (id === O) out.organizations.push(text(der, value));
    }
  }
  return out;
}
