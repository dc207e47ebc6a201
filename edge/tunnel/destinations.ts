/**
 * What the hub may reach through this node's tunnel, and the dial itself.
 *
 * Allowed: a port in `ports` (the kubelet's 10250 always, plus configured ones such as
 * node-exporter's 9100) on one of this node's own addresses or its node name. Everything else is
 * refused with E_TUNNEL_DENIED and a reason that names the rule, which the hub passes on to
 * kube-apiserver (and so to kubectl). The node name is dialed as the node's first address, as
 * the kubelet serves on the node's addresses whatever the host name resolves to.
 */
import { connect, type Socket } from 'node:net';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';

export const KUBELET_PORT = 10250;

export interface DestinationPolicy {
  /** The host and port to dial, or throws E_TUNNEL_DENIED with the reason. */
  resolve(host: string, port: number): { host: string; port: number };
}

const norm = (h: string) => h.trim().replace(/^\[(.*)\]$/, '$1').toLowerCase();

export function createDestinationPolicy(opts: { nodeName: string; addresses: () => string[]; ports: number[] }): DestinationPolicy {
  const ports = [...new Set([KUBELET_PORT, ...opts.ports])].sort((a, b) => a - b);
  return {
    resolve(host, port) {
      const want = norm(host);
      const own = opts.addresses().map(norm);
      const deny = (why: string) => new TetherError(ErrorCode.TunnelDenied, `node ${opts.nodeName} refuses ${host}:${port}: ${why}`);
      if (!ports.includes(port)) throw deny(`port ${port} is not allowed (allowed: ${ports.join(', ')})`);
      if (want === norm(opts.nodeName)) {
        const first = own[0];
        if (!first) throw deny('the node has no address to dial');
        return { host: first, port };
      }
      if (!own.includes(want)) throw deny(`${host} is not an address of this node (${own.join(', ') || 'none'})`);
      return { host: want, port };
    },
  };
}

/** A TCP connection to host:port; E_TUNNEL_DIAL with the system's reason when it fails. */
export function dialTcp(host: string, port: number, timeoutMs = 10_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, allowHalfOpen: true });
    const timer = setTimeout(() => socket.destroy(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
    const onError = (e: Error) => {
      clearTimeout(timer);
      reject(new TetherError(ErrorCode.TunnelDial, `dial ${host}:${port}: ${messageOf(e)}`, { cause: e }));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
