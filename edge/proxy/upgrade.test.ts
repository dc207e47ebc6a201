/**
 * Upgrade pass-through over a target's own connection (the via-hub seam, `UpgradeTarget.connect`):
 * the request head goes on an api stream (edge/upstream/via-hub.ts ApiStreamSocket) instead of a
 * TCP/TLS connection to the URL, and the bytes are piped both ways; a stream that cannot be opened
 * is answered with a 503 Status.
 */
import { expect, test } from 'bun:test';
import type { IncomingMessage } from 'node:http';
import { Duplex, PassThrough } from 'node:stream';
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import { createMemoryLogger } from '../../shared/log.ts';
import { ApiStreamSocket } from '../upstream/via-hub.ts';
import { passUpgrade, type UpgradeTarget } from './upgrade.ts';

function duplexPair(): [Duplex, Duplex] {
  const ab = new PassThrough();
  const ba = new PassThrough();
  return [Duplex.from({ readable: ba, writable: ab }), Duplex.from({ readable: ab, writable: ba })];
}

/** Reads from d until `cond` holds on what arrived. */
function readUntil(d: Duplex, cond: (text: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (c: Buffer) => {
      text += c.toString();
      if (cond(text)) {
        d.off('data', onData);
        resolve(text);
      }
    };
    d.on('data', onData);
    d.once('error', reject);
    d.once('end', () => (cond(text) ? resolve(text) : reject(new Error(`ended after ${JSON.stringify(text)}`))));
  });
}

const request = {
  method: 'POST',
  url: '/api/v1/namespaces/default/pods/p/exec?command=sh',
  rawHeaders: ['Host', '127.0.0.1:10261', 'Connection', 'Upgrade', 'Upgrade', 'SPDY/3.1', 'Authorization', 'Bearer pod-token'],
} as unknown as IncomingMessage;

test('an upgrade goes on the target’s own connection (an api stream), head first, then bytes both ways', async () => {
  let opens = 0;
  let head = '';
  const target: UpgradeTarget = {
    url: new URL('http://kube-apiserver.tether/'),
    tlsOptions: () => ({}),
    connect: () =>
      new ApiStreamSocket(async () => {
        opens++;
        const [mine, theirs] = duplexPair();
        // The hub side: read the head, switch protocols, echo what follows.
        theirs.on('error', () => {}); // destroyed with the pair at the end
        let text = '';
        let switched = false;
        theirs.on('data', (c: Buffer) => {
          if (switched) return void theirs.write(c);
          text += c.toString();
          const end = text.indexOf('\r\n\r\n');
          if (end < 0) return;
          switched = true;
          head = text.slice(0, end + 4);
          theirs.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n');
          theirs.write(text.slice(end + 4));
        });
        return mine;
      }),
  };
  const [client, proxySide] = duplexPair();
  client.on('error', () => {});
  passUpgrade(target, request, proxySide, Buffer.from('early|'), false, createMemoryLogger());
  const got = readUntil(client, (t) => t.endsWith('early|ping'));
  client.write('ping');
  const text = await got;
  expect(opens).toBe(1);
  expect(text).toStartWith('HTTP/1.1 101 Switching Protocols\r\n');
  expect(head).toStartWith('POST /api/v1/namespaces/default/pods/p/exec?command=sh HTTP/1.1\r\n');
  expect(head).toContain('Authorization: Bearer pod-token\r\n'); // the caller's credentials go through as they are
  expect(head).toContain('Host: kube-apiserver.tether\r\n');
  client.destroy();
});

test('an api stream that cannot be opened is answered with a 503 Status', async () => {
  const target: UpgradeTarget = {
    url: new URL('http://kube-apiserver.tether/'),
    tlsOptions: () => ({}),
    connect: () => new ApiStreamSocket(() => Promise.reject(new TetherError(ErrorCode.TunnelClosed, 'open api stream: no tunnel session to the hub (no session)'))),
  };
  const [client, proxySide] = duplexPair();
  const got = readUntil(client, (t) => t.includes('}'));
  passUpgrade(target, request, proxySide, Buffer.alloc(0), false, createMemoryLogger());
  const text = await got;
  expect(text).toStartWith('HTTP/1.1 503 ');
  expect(text).toContain('no tunnel session to the hub');
});
