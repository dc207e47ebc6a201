/**
 * The path and query of a request target, decoded strictly: a malformed percent-escape is a
 * BadRequest rather than being passed on as text.
 */
import { badRequest } from './_bad-request.ts';

export interface DecodedTarget {
  /** The decoded path ("%2F" becomes '/', as in Go's URL.Path). */
  path: string;
  /** Query parameters in order of appearance; the apiserver reads the first value of each. */
  query: Map<string, string[]>;
}

/**
 * The request target a proxy decides on and forwards: origin-form ("/path?query"), refused with a
 * BadRequest when it has dot segments ("/pods/../secrets", also percent-encoded as %2e%2e or hidden
 * behind an encoded slash), a backslash, or a fragment. URL parsers resolve dot segments and
 * servers differ in how (or whether) they do, so a path with them is refused, never rewritten: what
 * is returned is what was decided on, byte for byte what goes upstream.
 */
export function normalizeTarget(raw: string): string {
  if (!raw.startsWith('/')) throw badRequest('parse url', `request target ${JSON.stringify(raw.slice(0, 200))} is not an absolute path`);
  if (raw.includes('#')) throw badRequest('parse url', `request target ${JSON.stringify(raw.slice(0, 200))} has a fragment`);
  const q = raw.indexOf('?');
  const rawPath = q < 0 ? raw : raw.slice(0, q);
  if (rawPath.includes('\\')) throw badRequest('parse path', `${JSON.stringify(rawPath.slice(0, 200))} has a backslash`);
  const decoded = decode(rawPath, 'parse path', false);
  if (decoded.split('/').some((seg) => seg === '.' || seg === '..')) {
    throw badRequest('parse path', `${JSON.stringify(rawPath.slice(0, 200))} has "." or ".." segments; send the path without them`);
  }
  const u = new URL(`http://tether.invalid${raw}`);
  return u.pathname + u.search;
}

/** Accepts a URL, an absolute URL string, or an origin-form target ("/api/v1/pods?watch=1"). */
export function decodeTarget(url: URL | string): DecodedTarget {
  let u: URL;
  if (url instanceof URL) u = url;
  else {
    if (url.startsWith('/')) normalizeTarget(url);
    try {
      // Prefixing an origin keeps "//x" a path rather than a host.
      u = url.startsWith('/') ? new URL(`http://tether.invalid${url}`) : new URL(url);
    } catch (e) {
      throw badRequest('parse url', `${JSON.stringify(url)} is not a URL or an absolute path`, e);
    }
  }
  return { path: decode(u.pathname, 'parse path', false), query: parseQuery(u.search.slice(1)) };
}

function parseQuery(raw: string): Map<string, string[]> {
  const query = new Map<string, string[]>();
  if (raw === '') return query;
  for (const pair of raw.split('&')) {
    if (pair === '') continue;
    if (pair.includes(';')) throw badRequest('parse query', `invalid semicolon separator in ${JSON.stringify(pair)}`);
    const eq = pair.indexOf('=');
    const key = decode(eq < 0 ? pair : pair.slice(0, eq), 'parse query', true);
    const value = eq < 0 ? '' : decode(pair.slice(eq + 1), 'parse query', true);
    const values = query.get(key);
    if (values) values.push(value);
    else query.set(key, [value]);
  }
  return query;
}

function decode(s: string, step: string, plusIsSpace: boolean): string {
  const text = plusIsSpace ? s.replaceAll('+', ' ') : s;
  if (!text.includes('%')) return text;
  try {
    return decodeURIComponent(text);
  } catch (e) {
    throw badRequest(step, `invalid percent-encoding in ${JSON.stringify(s)}`, e);
  }
}
