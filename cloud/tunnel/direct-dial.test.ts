import { afterAll, beforeAll, expect, test } from 'bun:test';
import { createServer, type Server } from 'node:net';
import { ErrorCode, isTetherError } from '../../shared/errors.ts';
import { createDirectDialer } from './direct-dial.ts';

let server: Server;
let port = 0;
beforeAll(async () => {
  server = createServer((s) => s.end('hi'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});
afterAll(() => void server.close());

test('deny wins over allow; outside allow is refused; IPv4-mapped IPv6 counts as IPv4', () => {
  const d = createDirectDialer({ allow: ['10.0.0.0/8', 'fd00::/8'], deny: ['10.9.0.0/16'] });
  expect(d.check('10.1.2.3')).toBeNull();
  expect(d.check('10.9.0.1')).toBe('10.9.0.1 is in directDial.deny');
  expect(d.check('192.168.1.1')).toBe('192.168.1.1 is not in directDial.allow');
  expect(d.check('fd00::5')).toBeNull();
  expect(d.check('::ffff:10.9.1.1')).toBe('::ffff:10.9.1.1 is in directDial.deny');
});

test('an empty allow list disables direct dialing', () => {
  expect(createDirectDialer({ allow: [], deny: [] }).check('10.0.0.1')).toContain('disabled');
});

test('a bad CIDR is a configuration error', () => {
  let e: unknown;
  try {
    createDirectDialer({ allow: ['10.0.0.0/33'], deny: [] });
  } catch (x) {
    e = x;
  }
  expect(isTetherError(e, ErrorCode.BadConfig)).toBe(true);
});

test('dials an allowed address', async () => {
  const s = await createDirectDialer({ allow: ['127.0.0.0/8'], deny: [] }).dial('127.0.0.1', port);
  let text = '';
  s.setEncoding('utf8').on('data', (d: string) => (text += d));
  await new Promise((r) => s.once('end', r)); // half-open: the target's end arrives, our side stays
  s.destroy();
  expect(text).toBe('hi');
});

test('a name is checked by every address it resolves to, and refused if one is denied', async () => {
  const lookup = async () => ['10.1.1.1', '127.0.0.1'];
  const e = await createDirectDialer({ allow: ['0.0.0.0/0'], deny: ['127.0.0.0/8'], lookup }).dial('webhook.example', port).catch((x: unknown) => x);
  expect(isTetherError(e, ErrorCode.TunnelDenied)).toBe(true);
  expect(String(e)).toContain('direct dial webhook.example:' + port + ': not allowed: 127.0.0.1 is in directDial.deny');
});

test('a refused connection is E_UPSTREAM_UNAVAILABLE naming the step', async () => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const p = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const e = await createDirectDialer({ allow: ['127.0.0.0/8'], deny: [] }).dial('127.0.0.1', p).catch((x: unknown) => x);
  expect(isTetherError(e, ErrorCode.UpstreamUnavailable)).toBe(true);
  expect(String(e)).toContain(`direct dial 127.0.0.1:${p}:`);
});
