/**
 * Writes a filtered EndpointSlices/Endpoints answer (api-topology.ts) to the edge: a GET or LIST
 * body is read whole, filtered and sent with its new length; a WATCH is filtered line by line as
 * events arrive (with backpressure: the upstream is paused while the edge is slow) and ended with
 * a 410 Expired ERROR event when the topology changes under it. Bodies that are not JSON are sent
 * as they came.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { statusBody } from '../../shared/kube/status.ts';
import type { EndpointsRequest, HubTopology } from './api-topology.ts';

function withoutLength(h: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < h.length; i += 2) if (h[i]!.toLowerCase() !== 'content-length') out.push(h[i]!, h[i + 1]!);
  return out;
}

/** An ERROR event that makes a client-go reflector relist (Status Expired, 410). */
export function expiredEvent(reason: string): string {
  return JSON.stringify({
    type: 'ERROR',
    object: statusBody(410, 'Expired', `tether-hub: ${reason}; relist to see the endpoints under the new topology`),
  });
}

export function writeFiltered(ur: IncomingMessage, res: ServerResponse, code: number, headers: string[], topology: HubTopology, node: string, ep: EndpointsRequest): void {
  const h = withoutLength(headers);
  if (!ep.watch) {
    const chunks: Buffer[] = [];
    ur.on('data', (c: Buffer) => chunks.push(c));
    ur.on('error', () => res.destroy());
    ur.on('end', () => {
      const raw = Buffer.concat(chunks);
      let out = raw;
      try {
        out = Buffer.from(JSON.stringify(topology.filterBody(node, JSON.parse(raw.toString('utf8')))));
      } catch {
        // not JSON after all: as it came
      }
      res.writeHead(code, [...h, 'content-length', String(out.length)]).end(out);
    });
    return;
  }
  res.writeHead(code, h);
  res.flushHeaders();
  let buf = '';
  let ended = false;
  const unregister = topology.watch(node, ep.namespace, (reason) => {
    if (ended) return;
    ended = true;
    res.end(expiredEvent(reason) + '\n');
    ur.destroy();
  });
  res.once('close', unregister);
  ur.setEncoding('utf8');
  ur.on('data', (c: string) => {
    if (ended) return;
    buf += c;
    let out = '';
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!line.trim()) continue;
      try {
        out += JSON.stringify(topology.filterEvent(node, JSON.parse(line))) + '\n';
      } catch {
        out += line + '\n';
      }
    }
    if (out && !res.write(out)) {
      ur.pause();
      res.once('drain', () => ur.resume());
    }
  });
  ur.on('end', () => {
    if (ended) return;
    ended = true;
    unregister();
    res.end(buf);
  });
  ur.on('error', () => res.destroy());
}
