/**
 * Hub-to-hub forwarding: a CONNECT that arrived at a replica not holding the node's tunnel is
 * sent, once, to the replica that does (its address from the node's Lease), over mutual TLS with
 * this replica's peer certificate. The owner treats a peer's CONNECT as final: it routes it only
 * to a tunnel it holds, never onwards, so a request takes at most one extra hop.
 *
 * The owner's refusal (status and reason) is handed back unchanged, so kube-apiserver reports the
 * agent's own words whichever replica it reached.
 */
import { connect, type TLSSocket } from 'node:tls';
import { messageOf } from '../../shared/errors.ts';
import { splitHostPort } from '../../shared/serve.ts';
import { parseStatus, readHead } from './http-head.ts';
import type { PeerDialer, RouteResult } from './router.ts';

export const FORWARDED_HEADER = 'X-Tether-Forwarded-By';

export interface PeerDialOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  replica: string;
  timeoutMs: number;
}

export function createPeerDialer(opts: PeerDialOptions): PeerDialer {
  return async (address, host, port, signal) => {
    const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    const failed = (reason: string): RouteResult => ({ ok: false, status: 502, failure: 'forward_failed', route: 'forward', reason: `forward to replica at ${address}: ${reason}` });
    const { host: peerHost, port: peerPort } = splitHostPort(address);
    let socket: TLSSocket | undefined;
    const onAbort = () => socket?.destroy(new Error('aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      socket = await new Promise<TLSSocket>((resolve, reject) => {
        const s = connect({ host: peerHost, port: peerPort, ca: opts.ca, cert: opts.cert, key: opts.key });
        const timer = setTimeout(() => s.destroy(new Error(`no TLS connection within ${opts.timeoutMs} ms`)), opts.timeoutMs);
        s.once('secureConnect', () => {
          clearTimeout(timer);
          resolve(s);
        });
        s.once('error', (e: Error) => {
          clearTimeout(timer);
          reject(e);
        });
        socket = s;
      });
      socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${FORWARDED_HEADER}: ${opts.replica}\r\n\r\n`);
      const head = await readHead(socket, { timeoutMs: opts.timeoutMs + 1000 });
      const status = parseStatus(head.text);
      if (!status) {
        socket.destroy();
        return failed('the peer answered something other than HTTP');
      }
      if (status.code !== 200) {
        socket.destroy();
        return { ok: false, status: status.code, failure: 'forward_refused', route: 'forward', reason: status.reason };
      }
      if (head.rest.length) socket.unshift(head.rest);
      return { ok: true, stream: socket, route: 'forward' };
    } catch (e) {
      socket?.destroy();
      return failed(messageOf(e));
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  };
}
