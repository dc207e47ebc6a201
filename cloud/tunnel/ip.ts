/**
 * IP address literals, strictly: the canonical forms only (dotted-quad IPv4 with four decimal
 * parts, IPv6 with or without brackets), and the IPv4 address inside an IPv6 one where there is one
 * (IPv4-mapped `::ffff:a.b.c.d`, the NAT64 prefix `64:ff9b::/96`). Used by the direct-dial policy
 * and the node directory, so that `0`, `127.1`, `0x7f.0.0.1` or `[::ffff:127.0.0.1]` can never pass
 * a check as something they are not.
 */
import { isIP } from 'node:net';

/** 16 bytes of an IPv6 literal (brackets allowed, no zone), or undefined. */
export function ipv6Bytes(text: string): number[] | undefined {
  let s = text.replace(/^\[(.*)\]$/, '$1');
  if (isIP(s) !== 6) return undefined;
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    const quad = ipv4Bytes(s.slice(lastColon + 1));
    if (!quad) return undefined;
    s = `${s.slice(0, lastColon + 1)}${((quad[0]! << 8) | quad[1]!).toString(16)}:${((quad[2]! << 8) | quad[3]!).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => (/^[0-9a-f]{1,4}$/i.test(g) ? parseInt(g, 16) : NaN)));
  const l = parse(halves[0]!);
  const r = halves.length === 2 ? parse(halves[1]!) : [];
  const fill = halves.length === 2 ? 8 - l.length - r.length : 0;
  if (fill < 0) return undefined;
  const groups = [...l, ...new Array<number>(fill).fill(0), ...r];
  if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g))) return undefined;
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

/** 4 bytes of a canonical dotted-quad IPv4 literal, or undefined. */
export function ipv4Bytes(text: string): number[] | undefined {
  if (isIP(text) !== 4) return undefined;
  const parts = text.split('.').map(Number);
  return parts.length === 4 && parts.every((p) => Number.isInteger(p) && p >= 0 && p <= 255) ? parts : undefined;
}

/**
 * The address as it should be checked and dialed: IPv4 dotted quad (also for IPv4 inside IPv6), or
 * IPv6 in one canonical text form; undefined for anything that is not an IP literal.
 */
export function canonicalIp(text: string): { ip: string; family: 4 | 6 } | undefined {
  const v4 = ipv4Bytes(text);
  if (v4) return { ip: v4.join('.'), family: 4 };
  const b = ipv6Bytes(text);
  if (!b) return undefined;
  const zeros = b.slice(0, 10).every((x) => x === 0);
  const mapped = zeros && b[10] === 0xff && b[11] === 0xff;
  const nat64 = b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && b.slice(4, 12).every((x) => x === 0);
  if (mapped || nat64) return { ip: b.slice(12).join('.'), family: 4 };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return { ip: groups.join(':'), family: 6 };
}

/**
 * Whether a host name is a number in disguise: every dot-separated label decimal, octal or hex
 * (`0`, `127.1`, `0x7f.1`, `017700000001`, `1.2.3.4.`). The C resolver turns these into addresses
 * (inet_aton), so they must never be treated as names.
 */
export function looksNumeric(host: string): boolean {
  const labels = host.replace(/\.$/, '').split('.');
  return labels.length > 0 && labels.every((l) => /^(0x[0-9a-f]*|[0-9]+)$/i.test(l));
}
