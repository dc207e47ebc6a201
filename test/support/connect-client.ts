/**
 * A client of the hub's CONNECT endpoint, as Prometheus or kube-apiserver uses it: TLS to the
 * hub with a client certificate, then `CONNECT host:port` (or an absolute-form GET), for tests.
 */
import { readFileSync } from 'node:fs';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export interface ProxyCredentials {
  caFile: string;
  certFile?: string;
  keyFile?: string;
  /** Sent as Proxy-Authorization: Bearer. */
  token?: string;
}

function dialHub(address: string, creds: ProxyCredentials): Promise<TLSSocket> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const s = tlsConnect({
      host: address.slice(0, i),
      port: Number(address.slice(i + 1)),
      ca: readFileSync(creds.caFile),
      ...(creds.certFile && creds.keyFile ? { cert: readFileSync(creds.certFile), key: readFileSync(creds.keyFile) } : {}),
    });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Reads up to the end of the response head; the rest stays in the socket. */
function readResponseHead(s: TLSSocket): Promise<{ statusLine: string; head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const at = buf.indexOf('\r\n\r\n');
      if (at < 0) return;
      s.off('data', onData);
      s.pause();
      const head = buf.subarray(0, at).toString('latin1');
      resolve({ statusLine: head.split('\r\n')[0]!, head, rest: buf.subarray(at + 4) });
    };
    s.on('data', onData);
    s.once('error', reject);
    s.once('close', () => reject(new Error(`the hub closed the connection; got ${JSON.stringify(buf.toString().slice(0, 300))}`)));
  });
}

/** CONNECT through the hub: the status line, and the socket (now the tunnel, paused: resume or pipe it) when it is 200. */
export async function connectVia(hub: string, target: string, creds: ProxyCredentials): Promise<{ statusLine: string; socket: TLSSocket; rest: Buffer }> {
  const s = await dialHub(hub, creds);
  s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${creds.token ? `Proxy-Authorization: Bearer ${creds.token}\r\n` : ''}\r\n`);
  const r = await readResponseHead(s);
  return { statusLine: r.statusLine, socket: s, rest: r.rest };
}

/** An absolute-form GET through the hub (what Prometheus sends for http:// targets): status line and body. */
export async function getVia(hub: string, url: string, creds: ProxyCredentials): Promise<{ statusLine: string; body: string }> {
  const s = await dialHub(hub, creds);
  const host = new URL(url).host;
  s.write(`GET ${url} HTTP/1.1\r\nHost: ${host}\r\n${creds.token ? `Proxy-Authorization: Bearer ${creds.token}\r\n` : ''}Accept: text/plain\r\n\r\n`);
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  await new Promise<void>((resolve, reject) => {
    s.once('end', () => resolve());
    s.once('close', () => resolve());
    s.once('error', reject);
  });
  const text = Buffer.concat(chunks).toString('utf8');
  const at = text.indexOf('\r\n\r\n');
  return { statusLine: text.split('\r\n')[0] ?? '', body: at < 0 ? '' : text.slice(at + 4) };
}
