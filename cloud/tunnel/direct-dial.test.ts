import { afterAll, beforeAll, expect, test } from 'bun:test';
import { connect, createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
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
  expect(d.check('::ffff:10.9.1.1')).toBe('::ffff:10.9.1.1 (10.9.1.1) is in directDial.deny');
  expect(d.check('::ffff:a09:101')).toBe('::ffff:a09:101 (10.9.1.1) is in directDial.deny');
});

const open = { allow: ['0.0.0.0/0', '::/0'], deny: [] as string[], ownAddresses: () => ['198.18.77.1', 'fd00::77'] };

test('closed ranges and the hub\'s own addresses are refused even when allow and deny would let them pass', () => {
  const d = createDirectDialer(open);
  for (const ip of ['0.0.0.0', '0.1.2.3', '127.0.0.1', '127.9.9.9', '::', '::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:0.0.0.0', '64:ff9b::127.0.0.1', '::127.0.0.1', '169.254.169.254', 'fe80::1', '224.0.0.1', 'ff02::1', '255.255.255.255']) {
    expect(d.check(ip)).toContain('never dialed directly');
  }
  expect(d.check('198.18.77.1')).toBe('198.18.77.1 is an address of the hub itself, never dialed directly');
  expect(d.check('fd00:0:0:0:0:0:0:77')).toContain('an address of the hub itself');
  expect(d.check('::ffff:198.18.77.1')).toContain('an address of the hub itself');
  expect(d.check('198.18.77.2')).toBeNull();
  expect(d.check('fd00::78')).toBeNull();
});

test('by default the own addresses are this host\'s interface addresses', () => {
  const d = createDirectDialer({ allow: ['0.0.0.0/0', '::/0'], deny: [] });
  const mine = Object.values(networkInterfaces()).flatMap((l) => l ?? []).map((a) => a.address);
  expect(mine.length).toBeGreaterThan(0);
  for (const a of mine) expect(d.check(a)).not.toBeNull();
});

test('numbers in disguise, localhost and the unspecified address are refused before any name lookup', async () => {
  const looked: string[] = [];
  const d = createDirectDialer({ ...open, lookup: async (h) => (looked.push(h), ['198.18.5.5']), connect: () => { throw new Error('must not dial'); } });
  for (const host of ['0', '127.1', '0x7f.0.0.1', '017700000001', '2130706433', '198.18.5.5.', 'localhost', 'api.localhost', '0.0.0.0', '::', '[::]', '::ffff:127.0.0.1']) {
    const e = await d.dial(host, 80).catch((x: unknown) => x);
    expect(isTetherError(e, ErrorCode.TunnelDenied)).toBe(true);
  }
  expect(looked).toEqual([]);
});

test('with direct dialing off, a name is refused without being looked up', async () => {
  const looked: string[] = [];
  const d = createDirectDialer({ allow: [], deny: [], lookup: async (h) => (looked.push(h), ['198.18.5.5']) });
  const e = await d.dial('webhook.example', 443).catch((x: unknown) => x);
  expect(String(e)).toContain('direct dialing is disabled');
  expect(looked).toEqual([]);
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

test('dials the checked address: an allowed name is resolved once and its address is what gets dialed', async () => {
  const dialed: string[] = [];
  // The network seam: the policy sees 198.18.5.5; the connection is made to this test's server.
  const connectTo = (ip: string) => (dialed.push(ip), connect({ host: '127.0.0.1', port, allowHalfOpen: true }));
  const s = await createDirectDialer({ allow: ['198.18.0.0/15'], deny: [], ownAddresses: () => [], lookup: async () => ['198.18.5.5'], connect: connectTo }).dial('webhook.example', port);
  expect(dialed).toEqual(['198.18.5.5']);
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
  expect(String(e)).toContain('direct dial webhook.example:' + port + ': not allowed: webhook.example resolves to 127.0.0.1: 127.0.0.1 is a loopback');
});

test('a refused connection is E_UPSTREAM_UNAVAILABLE naming the step', async () => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const p = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const connectTo = () => connect({ host: '127.0.0.1', port: p });
  const e = await createDirectDialer({ allow: ['198.18.0.0/15'], deny: [], ownAddresses: () => [], connect: connectTo }).dial('198.18.5.5', p).catch((x: unknown) => x);
  expect(isTetherError(e, ErrorCode.UpstreamUnavailable)).toBe(true);
  expect(String(e)).toContain(`direct dial 198.18.5.5:${p}:`);
});
