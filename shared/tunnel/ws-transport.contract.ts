/**
 * What the websocket transport adds to the session contract: TLS with client certificates,
 * refusals at the upgrade, dial timeouts and aborts, and message size limits. Runs under Bun
 * (ws-transport.test.ts) and Node (tunnel.node.contract.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { ErrorCode, isTetherError } from '../errors.ts';
import { createMemoryLogger } from '../log.ts';
import { FRAME_HEADER_SIZE, FrameType, MAX_FRAME_PAYLOAD, TUNNEL_PROTOCOL_VERSION, TUNNEL_SUBPROTOCOL } from './frames.ts';
import { startWsServer } from '../../test/support/tunnel-pairs.ts';
import type { TunnelTestPki } from '../../test/support/pki.ts';
import { readAll } from '../../test/support/tunnel-session.ts';
import { waitFor } from '../../test/support/wait.ts';
import { createTunnelSession, streamIdOf } from './session.ts';
import type { TestFn } from './session.contract.ts';
import { dialTunnel, isHubRefusal } from './ws-transport.ts';

async function dialError(p: Promise<unknown>, message: RegExp): Promise<unknown> {
  let thrown: unknown;
  try {
    await p;
  } catch (e) {
    thrown = e;
  }
  assert.ok(isTetherError(thrown, ErrorCode.TunnelDial), `expected E_TUNNEL_DIAL, got ${String(thrown)}`);
  assert.match((thrown as Error).message, message);
  return thrown;
}

/** A TCP server that accepts and never answers. */
async function silentServer() {
  const sockets: Socket[] = [];
  const srv = createServer((s) => void sockets.push(s));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `ws://127.0.0.1:${(srv.address() as AddressInfo).port}/tunnel`,
    close: () => new Promise<void>((r) => (sockets.forEach((s) => s.destroy()), srv.close(() => r()))),
  };
}

export function runWsTransportTests(test: TestFn, pki: TunnelTestPki): void {
  test('ws: over TLS the hub sees the client certificate the agent dialed with', async () => {
    const srv = await startWsServer({ pki });
    try {
      const t = await dialTunnel(srv.url, { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });
      await srv.next();
      assert.deepEqual(srv.peers, ['system:node:edge-1']);
      t.close(1000, 'done');
    } finally {
      await srv.close();
    }
  });

  test('ws: an agent without a client certificate is refused by TLS', async () => {
    const srv = await startWsServer({ pki });
    try {
      await dialError(dialTunnel(srv.url, { ca: pki.ca }), /^dial hub wss:\/\/127\.0\.0\.1:\d+\/tunnel: /);
      assert.deepEqual(srv.peers, []);
    } finally {
      await srv.close();
    }
  });

  test('ws: a hub certificate from another CA is refused by the agent', async () => {
    const srv = await startWsServer({ pki });
    try {
      const e = await dialError(dialTunnel(srv.url, { ca: pki.otherCa, cert: pki.clientCert, key: pki.clientKey }), /certificate|self.signed|verify/i);
      assert.ok(!isHubRefusal(e), 'a TLS failure is not the hub refusing the agent');
      assert.deepEqual(srv.peers, []);
    } finally {
      await srv.close();
    }
  });

  test('ws: verify refuses the upgrade with a status and a reason the agent sees', async () => {
    const srv = await startWsServer({ upgrade: { verify: (req) => (req.headers.authorization === 'Bearer good' ? true : req.headers.authorization ? { status: 401, reason: 'token rejected by TokenReview' } : 'node name does not match the certificate') } });
    try {
      const forbidden = await dialError(dialTunnel(srv.url), /refused: 403 Forbidden: node name does not match the certificate$/);
      const unauthorized = await dialError(dialTunnel(srv.url, { headers: { authorization: 'Bearer bad' } }), /refused: 401 Unauthorized: token rejected by TokenReview$/);
      // Refusals carry the code the agent classifies them by (E_TUNNEL_DENIED in cause).
      assert.ok(isHubRefusal(forbidden) && isHubRefusal(unauthorized));
      const t = await dialTunnel(srv.url, { headers: { authorization: 'Bearer good' } });
      t.close(1000, 'done');
    } finally {
      await srv.close();
    }
  });

  test('ws: an agent offering another protocol version gets 400 naming both', async () => {
    const srv = await startWsServer();
    try {
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({
          host: '127.0.0.1',
          port: srv.port,
          path: '/tunnel',
          headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64'), 'sec-websocket-protocol': 'tether-tunnel.v0' },
        });
        req.on('response', (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        });
        req.on('upgrade', () => reject(new Error('upgraded')));
        req.on('error', reject);
        req.end();
      });
      assert.equal(res.status, 400);
      assert.equal(res.body, `unsupported tunnel protocol: the agent offered [tether-tunnel.v0], this hub speaks ${TUNNEL_SUBPROTOCOL}\n`);
    } finally {
      await srv.close();
    }
  });

  test('ws: a hub that never answers the upgrade fails the dial at the handshake timeout', async () => {
    const srv = await silentServer();
    try {
      await dialError(dialTunnel(srv.url, { handshakeTimeoutMs: 100 }), /^dial hub ws:\/\/127\.0\.0\.1:\d+\/tunnel: .*(timed out|timeout)/i);
    } finally {
      await srv.close();
    }
  });

  test('ws: aborting a dial rejects it', async () => {
    const srv = await silentServer();
    try {
      const ac = new AbortController();
      const p = dialTunnel(srv.url, { signal: ac.signal, handshakeTimeoutMs: 60_000 });
      ac.abort();
      await dialError(p, /: aborted$/);
    } finally {
      await srv.close();
    }
  });

  test('ws: a text message closes the connection with 1003', async () => {
    const srv = await startWsServer();
    try {
      const sock = connect({ host: '127.0.0.1', port: srv.port });
      const received: Buffer[] = [];
      sock.on('data', (c: Buffer) => received.push(c));
      sock.write(
        `GET /tunnel HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Protocol: ${TUNNEL_SUBPROTOCOL}\r\n\r\n`,
      );
      await waitFor('the 101 response', () => Buffer.concat(received).includes('\r\n\r\n'));
      assert.match(Buffer.concat(received).toString(), /^HTTP\/1\.1 101 /);
      const hub = await srv.next();
      const closes: number[] = [];
      hub.onClose((code) => closes.push(code));
      hub.onMessage(() => {});
      const mask = randomBytes(4);
      const text = Buffer.from('hi').map((b, i) => b ^ mask[i % 4]!);
      received.length = 0;
      sock.write(Buffer.concat([Buffer.from([0x81, 0x80 | text.length]), mask, text]));
      await waitFor('a close frame', () => Buffer.concat(received).length >= 4);
      const frame = Buffer.concat(received);
      assert.equal(frame[0], 0x88);
      assert.equal(frame.readUInt16BE(2), 1003);
      sock.destroy();
      await waitFor('the hub transport closes', () => closes.length === 1);
    } finally {
      await srv.close();
    }
  });

  test('ws: an oversized stream frame resets its stream; a message over maxPayload closes the session', async () => {
    const srv = await startWsServer();
    try {
      const hubT = srv.next();
      const agentT = await dialTunnel(srv.url, { maxPayload: 256 * 1024 });
      const hubTransport = await hubT;
      const log = createMemoryLogger('info');
      const hello = { node: 'edge-1', addresses: [], version: 'test' };
      const agent = createTunnelSession({ transport: agentT, role: 'agent', log, hello, onOpen: async () => new PassThrough() });
      const hub = createTunnelSession({ transport: hubTransport, role: 'hub', log });
      await agent.ready;
      const d = await hub.open('127.0.0.1', 7);
      const id = streamIdOf(d)!;
      const reset = new Promise<Error>((r) => d.once('error', r));
      const big = new Uint8Array(FRAME_HEADER_SIZE + MAX_FRAME_PAYLOAD + 1000);
      const view = new DataView(big.buffer);
      big[0] = TUNNEL_PROTOCOL_VERSION;
      big[1] = FrameType.Data;
      view.setUint32(2, id);
      view.setUint32(6, MAX_FRAME_PAYLOAD + 1000);
      hubTransport.send(big);
      const err = await reset;
      assert.ok(isTetherError(err, ErrorCode.TunnelReset), String(err));
      assert.match(err.message, /protocol error: data frame: payload of 66536 bytes exceeds the limit of 65536/);
      assert.ok(log.lines.some((l) => l.msg === 'tunnel stream frame rejected' && l.stream === id));
      assert.equal(agent.state, 'open');
      const d2 = await hub.open('127.0.0.1', 7);
      d2.end('still fine');
      assert.equal((await readAll(d2)).toString(), 'still fine');
      hubTransport.send(new Uint8Array(300 * 1024));
      const closed = await agent.closed;
      assert.equal(closed.by, 'transport');
      assert.match(closed.reason, /max payload size exceeded/i);
      await hub.closed;
    } finally {
      await srv.close();
    }
  });
}
