import { describe, expect, test } from 'bun:test';
import type { IncomingMessage } from 'node:http';
import { negotiateSpdy } from './upgrade-handshake.ts';

const request = (headers: Record<string, string | string[]>) => ({ headers }) as unknown as IncomingMessage;
const server = ['v4.channel.k8s.io', 'v3.channel.k8s.io'];
const upgrade = { connection: 'Upgrade', upgrade: 'SPDY/3.1' };

describe('negotiateSpdy', () => {
  test("the client's first supported protocol wins, across comma lists", () => {
    const req = request({ ...upgrade, 'x-stream-protocol-version': 'v5.channel.k8s.io, v3.channel.k8s.io,v4.channel.k8s.io' });
    expect(negotiateSpdy(req, server)).toEqual({ ok: true, protocol: 'v3.channel.k8s.io' });
  });

  test('no protocol header is 400', () => {
    expect(negotiateSpdy(request(upgrade), server)).toMatchObject({ ok: false, status: 400 });
  });

  test('no overlap is 403 with the accepted versions', () => {
    expect(negotiateSpdy(request({ ...upgrade, 'x-stream-protocol-version': 'v1.fake' }), server)).toMatchObject({
      ok: false,
      status: 403,
      headers: { 'X-Accepted-Stream-Protocol-Versions': server },
    });
  });

  test('missing Connection: Upgrade or Upgrade: SPDY/3.1 is 400', () => {
    const proto = { 'x-stream-protocol-version': 'v4.channel.k8s.io' };
    expect(negotiateSpdy(request({ ...proto, upgrade: 'SPDY/3.1' }), server)).toMatchObject({ ok: false, status: 400 });
    expect(negotiateSpdy(request({ ...proto, connection: 'Upgrade', upgrade: 'h2c' }), server)).toMatchObject({ ok: false, status: 400 });
  });
});
