import { describe, expect, test } from 'bun:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { ErrorCode, isTetherError } from '../errors.ts';
import { createMemoryLogger } from '../log.ts';
import { encodeFrame, FRAME_HEADER_SIZE, FrameType, MAX_FRAME_SIZE, TUNNEL_PROTOCOL_VERSION } from './frames.ts';
import { createTransportPair, type PairOptions } from './memory-transport.ts';
import { readAll, writeAll } from '../../test/support/tunnel-session.ts';
import { waitFor } from '../../test/support/wait.ts';
import { createTunnelSession, inspectSession, streamIdOf, type TunnelTransport } from './session.ts';
import { memoryPairs } from '../../test/support/tunnel-pairs.ts';
import { runSessionContract } from './session.contract.ts';

runSessionContract(test, memoryPairs());
runSessionContract(test, memoryPairs({ drainEvents: false, bytesPerTick: 64 * 1024 }));

const hello = { node: 'edge-1', addresses: ['198.18.1.2'], version: 'test' };

async function sessions(o: { pair?: PairOptions; window?: number; maxBufferedAmount?: number } = {}) {
  const [hubT, agentT] = createTransportPair(o.pair);
  const hubLog = createMemoryLogger('info');
  const agentLog = createMemoryLogger('info');
  const hub = createTunnelSession({ transport: hubT, role: 'hub', log: hubLog, initialWindow: o.window, maxBufferedAmount: o.maxBufferedAmount });
  const agent = createTunnelSession({ transport: agentT, role: 'agent', log: agentLog, hello, onOpen: async () => new PassThrough(), initialWindow: o.window, maxBufferedAmount: o.maxBufferedAmount });
  await Promise.all([hub.ready, agent.ready]);
  return { hub, agent, hubT, agentT, hubLog, agentLog };
}

function raw(type: number, stream: number, payload: Uint8Array | string): Uint8Array {
  const p = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
  const out = new Uint8Array(FRAME_HEADER_SIZE + p.length);
  out[0] = TUNNEL_PROTOCOL_VERSION;
  out[1] = type;
  new DataView(out.buffer).setUint32(2, stream);
  new DataView(out.buffer).setUint32(6, p.length);
  out.set(p, FRAME_HEADER_SIZE);
  return out;
}

describe('session: frames validated at the socket', () => {
  test('a malformed control frame closes the session with a logged reason', async () => {
    const s = await sessions();
    s.agentT.inject(new Uint8Array([TUNNEL_PROTOCOL_VERSION, 0x7e, 0, 0, 0, 0, 0, 0, 0, 0]));
    const closed = await s.agent.closed;
    expect(closed).toEqual({ code: 'protocol', by: 'local', reason: 'protocol error: unknown frame type 0x7e' });
    expect(s.agentLog.lines.some((l) => l.msg === 'tunnel frame rejected' && l.reason === 'unknown frame type 0x7e')).toBe(true);
    expect(await s.hub.closed).toEqual({ code: 'protocol', by: 'peer', reason: 'peer: protocol error: unknown frame type 0x7e' });
  });

  test('a frame of another protocol version closes the session', async () => {
    const s = await sessions();
    const f = encodeFrame({ type: 'ping', data: new Uint8Array(8) });
    f[0] = 2;
    s.hubT.inject(f);
    expect((await s.hub.closed).reason).toBe('protocol error: unsupported protocol version 2 (this side speaks 1)');
  });

  test('bad JSON in OPEN resets only that stream; the session keeps working', async () => {
    const s = await sessions();
    s.agentT.inject(raw(FrameType.Open, 101, '{"host":'));
    await waitFor('the rejection is logged', () => s.agentLog.lines.some((l) => l.msg === 'tunnel stream frame rejected'));
    const line = s.agentLog.lines.find((l) => l.msg === 'tunnel stream frame rejected')!;
    expect(line.stream).toBe(101);
    expect(String(line.reason)).toMatch(/^open frame: bad JSON/);
    const d = await s.hub.open('127.0.0.1', 7);
    d.end('ok');
    expect((await readAll(d)).toString()).toBe('ok');
    expect(s.agent.state).toBe('open');
  });

  test('an OPEN with an id the peer may not use is reset', async () => {
    const s = await sessions({ pair: { record: true } });
    s.agentT.inject(encodeFrame({ type: 'open', stream: 2, host: 'a', port: 1, window: 10 })); // even ids belong to the agent
    await waitFor('the rejection is logged', () => s.agentLog.lines.some((l) => l.msg === 'tunnel stream frame rejected'));
    expect(s.agentLog.lines.find((l) => l.msg === 'tunnel stream frame rejected')!.reason).toBe('OPEN with stream id 2, not a new id of the peer');
    expect(s.agent.stats().streams).toBe(0);
  });

  test('DATA beyond the granted window resets the stream on both sides', async () => {
    const s = await sessions({ window: 1024 });
    const d = await s.hub.open('127.0.0.1', 7);
    const id = streamIdOf(d)!;
    const err = new Promise<Error>((r) => d.once('error', r));
    s.agentT.inject(encodeFrame({ type: 'data', stream: id, data: new Uint8Array(1025) }));
    const e = await err;
    expect(isTetherError(e, ErrorCode.TunnelReset)).toBe(true);
    expect(e.message).toBe('stream reset by the peer: protocol error: DATA of 1025 bytes beyond the window (credit left: 1024)');
    await waitFor('released', () => s.agent.stats().streams === 0 && s.hub.stats().streams === 0);
  });

  test('a hub that gets anything but HELLO first closes the session', async () => {
    const [hubT] = createTransportPair();
    const hub = createTunnelSession({ transport: hubT, role: 'hub', log: createMemoryLogger() });
    hubT.inject(encodeFrame({ type: 'ping', data: new Uint8Array(8) }));
    expect((await hub.closed).reason).toBe('protocol error: expected HELLO first, got ping');
  });

  test('frames on a stream that is gone are ignored', async () => {
    const s = await sessions();
    s.agentT.inject(encodeFrame({ type: 'data', stream: 99, data: new Uint8Array(4) }));
    s.agentT.inject(encodeFrame({ type: 'credit', stream: 99, increment: 4 }));
    const d = await s.hub.open('127.0.0.1', 7);
    d.end('x');
    expect((await readAll(d)).toString()).toBe('x');
    expect(s.agent.state).toBe('open');
  });
});

describe('session: bounded queues', () => {
  test('DATA waits while the transport holds maxBufferedAmount; the socket queue stays bounded', async () => {
    const limit = 32 * 1024;
    const s = await sessions({ pair: { bytesPerTick: 8 * 1024 }, maxBufferedAmount: limit });
    const d = await s.hub.open('127.0.0.1', 7);
    const sent = Buffer.alloc(3 * 1024 * 1024, 5);
    const [, got] = await Promise.all([writeAll(d, sent, 100_000, true), readAll(d)]);
    expect(got.length).toBe(sent.length);
    for (const t of [s.hubT, s.agentT]) expect(t.peakBufferedAmount).toBeLessThanOrEqual(limit + MAX_FRAME_SIZE + 4096);
    expect(s.hubT.peakBufferedAmount).toBeGreaterThanOrEqual(limit);
  });

  test('a peer that stops reading while control frames pile up is disconnected as overloaded', async () => {
    let deliver!: (d: Uint8Array) => void;
    let queued = 0;
    const closes: number[] = [];
    const transport: TunnelTransport = {
      send: (f) => void (queued += f.length),
      get bufferedAmount() {
        return queued;
      },
      onMessage: (fn) => void (deliver = fn),
      onClose: () => {},
      close: (code) => void closes.push(code),
    };
    const hub = createTunnelSession({ transport, role: 'hub', log: createMemoryLogger('info'), maxBufferedAmount: 1024 });
    deliver(encodeFrame({ type: 'hello', hello }));
    await hub.ready;
    const ping = encodeFrame({ type: 'ping', data: new Uint8Array(8) });
    for (let i = 0; i < 100_000 && hub.state !== 'closed'; i++) {
      deliver(ping);
      if (i % 1000 === 0) await Promise.resolve();
    }
    const closed = await hub.closed;
    expect(closed.code).toBe('overloaded');
    expect(closed.reason).toMatch(/^the peer is not reading: \d+ bytes queued$/);
    expect(closes).toEqual([1013]);
  });
});

describe('session: options and stats', () => {
  test('bad options are refused with E_BAD_CONFIG', () => {
    const [t] = createTransportPair();
    const log = createMemoryLogger();
    const attempt = (o: object) => {
      try {
        createTunnelSession({ transport: t, role: 'hub', log, ...o });
      } catch (e) {
        return e;
      }
      return undefined;
    };
    const e1 = attempt({ role: 'agent' });
    assert.ok(isTetherError(e1, ErrorCode.BadConfig));
    assert.equal((e1 as Error).message, 'create tunnel session: the agent role needs a hello');
    assert.match(String((attempt({ heartbeatIntervalMs: 100, heartbeatTimeoutMs: 50 }) as Error).message), /must exceed the interval/);
    assert.match(String((attempt({ initialWindow: 0 }) as Error).message), /initialWindow 0 outside/);
  });

  test('PING/PONG measures the round trip', async () => {
    const [hubT, agentT] = createTransportPair();
    const log = createMemoryLogger('info');
    const hub = createTunnelSession({ transport: hubT, role: 'hub', log, heartbeatIntervalMs: 5, heartbeatTimeoutMs: 10_000 });
    const agent = createTunnelSession({ transport: agentT, role: 'agent', log, hello });
    await waitFor('a PONG', () => hub.stats().rttMs !== undefined);
    expect(hub.stats().rttMs).toBeGreaterThanOrEqual(0);
    hub.close('done');
    await agent.closed;
    expect(inspectSession(hub).timers).toBe(0);
    expect(inspectSession(agent).timers).toBe(0);
  });

  test('the agent may open streams too (even ids); a hub without onOpen refuses them', async () => {
    const s = await sessions();
    let thrown: unknown;
    try {
      await s.agent.open('10.96.0.1', 443);
    } catch (e) {
      thrown = e;
    }
    expect(isTetherError(thrown, ErrorCode.TunnelDial)).toBe(true);
    expect((thrown as Error).message).toBe('open stream to 10.96.0.1:443: the hub accepts no streams');
    expect(isTetherError((thrown as Error).cause, ErrorCode.TunnelDenied)).toBe(true);
  });

  test('open() during the handshake waits for it', async () => {
    const [hubT, agentT] = createTransportPair();
    const log = createMemoryLogger('info');
    const hub = createTunnelSession({ transport: hubT, role: 'hub', log });
    const agent = createTunnelSession({ transport: agentT, role: 'agent', log, hello, onOpen: async () => new PassThrough() });
    expect(hub.state).toBe('handshake');
    const d = await hub.open('127.0.0.1', 7);
    d.end('early');
    expect((await readAll(d)).toString()).toBe('early');
    agent.close('done');
    await hub.closed;
  });
});
