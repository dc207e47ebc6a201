/** The agent's own requests to an upstream, as the node (outbox replay, discovery refresh). */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ErrorCode, TetherError, messageOf } from '../../shared/errors.ts';
import type { ForwardTarget } from './forward.ts';

export interface CallResult {
  status: number;
  contentType: string;
  body: string;
}

export type UpstreamCall = (method: string, path: string, opts?: { contentType?: string; accept?: string; body?: string }) => Promise<CallResult>;

export function callUpstream(
  target: ForwardTarget,
  method: string,
  path: string,
  opts: { contentType?: string; accept?: string; body?: string; timeoutMs?: number; userAgent?: string } = {},
): Promise<CallResult> {
  const url = target.url;
  const tls = url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {
      accept: opts.accept ?? 'application/json',
      'user-agent': opts.userAgent ?? 'tether-edge',
    };
    if (opts.contentType) headers['content-type'] = opts.contentType;
    const req = (tls ? httpsRequest : httpRequest)(
      {
        protocol: url.protocol,
        hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: url.port || (tls ? 443 : 80),
        method,
        path: url.pathname.replace(/\/$/, '') + path,
        headers,
        agent: target.agent,
        timeout: opts.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', (e) => reject(new TetherError(ErrorCode.UpstreamUnavailable, `${method} ${path}: ${messageOf(e)}`, { cause: e })));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => reject(new TetherError(ErrorCode.UpstreamUnavailable, `${method} ${path} to ${url.host}: ${messageOf(e)}`, { cause: e })));
    req.end(opts.body);
  });
}
