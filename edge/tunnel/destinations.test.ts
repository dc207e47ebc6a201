import { expect, test } from 'bun:test';
import { createServer } from 'node:net';
import { ErrorCode, isTetherError } from '../../shared/errors.ts';
import { createDestinationPolicy, dialTcp } from './destinations.ts';

const policy = createDestinationPolicy({ nodeName: 'edge-1', addresses: () => ['198.18.3.2', 'fd00::2'], ports: [9100] });

test('the kubelet port and configured ports on the node’s own addresses are allowed', () => {
  expect(policy.resolve('198.18.3.2', 10250)).toEqual({ host: '198.18.3.2', port: 10250 });
  expect(policy.resolve('[FD00::2]', 9100)).toEqual({ host: 'fd00::2', port: 9100 });
});

test('the node name is dialed as the node’s first address', () => {
  expect(policy.resolve('EDGE-1', 10250)).toEqual({ host: '198.18.3.2', port: 10250 });
});

test('other ports and other hosts are refused with E_TUNNEL_DENIED and the rule that refused them', () => {
  const refusal = (host: string, port: number) => {
    try {
      policy.resolve(host, port);
    } catch (e) {
      expect(isTetherError(e, ErrorCode.TunnelDenied)).toBe(true);
      return (e as Error).message;
    }
    throw new Error('expected a refusal');
  };
  expect(refusal('198.18.3.2', 22)).toBe('node edge-1 refuses 198.18.3.2:22: port 22 is not allowed (allowed: 9100, 10250)');
  expect(refusal('10.0.0.5', 10250)).toBe('node edge-1 refuses 10.0.0.5:10250: 10.0.0.5 is not an address of this node (198.18.3.2, fd00::2)');
  expect(refusal('127.0.0.1', 10250)).toContain('127.0.0.1 is not an address of this node');
});

test('dialTcp connects, and reports a refused connection as E_TUNNEL_DIAL with the step', async () => {
  const server = createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const s = await dialTcp('127.0.0.1', port);
  s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  const e = await dialTcp('127.0.0.1', port).catch((x: unknown) => x);
  expect(isTetherError(e, ErrorCode.TunnelDial)).toBe(true);
  expect((e as Error).message).toStartWith(`dial 127.0.0.1:${port}: `);
});
