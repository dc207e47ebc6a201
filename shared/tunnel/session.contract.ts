/**
 * The session contract: behaviour every transport must give, run over the in-memory pair and
 * real websockets (plain and TLS) under Bun (session.test.ts, ws-transport.test.ts) and under
 * Node 20 against a bundle of the same code (tunnel.node.contract.ts). node:assert only.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { ErrorCode, isTetherError, TetherError } from '../errors.ts';
import { createSessionPair, destinationPorts, readAll, writeAll, type PairOptions, type SessionPair } from '../../test/support/tunnel-session.ts';
import { waitFor } from '../../test/support/wait.ts';
import type { PairFactory } from '../../test/support/tunnel-pairs.ts';
import { inspectSession, streamIdOf } from './session.ts';

export type TestFn = (name: string, fn: () => Promise<void>) => void;
type Fn = (s: SessionPair) => Promise<void>;

const bytes = (n: number, seed: number) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
};
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function rejects(p: Promise<unknown>, code: ErrorCode, message: RegExp): Promise<TetherError> {
  let thrown: unknown;
  try {
    await p;
  } catch (e) {
    thrown = e;
  }
  assert.ok(isTetherError(thrown, code), `expected ${code}, got ${String(thrown)}`);
  assert.match((thrown as Error).message, message);
  return thrown as TetherError;
}

export function runSessionContract(test: TestFn, factory: PairFactory): void {
  function t(name: string, ...args: [Fn] | [PairOptions, Fn]) {
    const [opts, fn] = args.length === 1 ? [{}, args[0]] : args;
    test(`${factory.name}: ${name}`, async () => {
      const s = await createSessionPair(factory, opts);
      try {
        await fn(s);
      } finally {
        await s.dispose();
      }
    });
  }
  const { echo, replyAfterEof, stuck, refusedPlain, slowDial } = destinationPorts;

  t('handshake: the hub gets the agent HELLO and both sides open', async (s) => {
    assert.deepEqual(s.hub.peer, s.hello);
    assert.deepEqual(s.agent.peer, s.hello);
    assert.equal(s.hub.state, 'open');
    assert.equal(s.agent.state, 'open');
    assert.ok(s.hubLog.lines.some((l) => l.msg === 'tunnel session open' && l.node === 'edge-1'));
  });

  t('open, data, half-close from the hub, a reply after EOF, clean end on both sides', async (s) => {
    const d = await s.hub.open('127.0.0.1', replyAfterEof);
    d.end('hello tunnel');
    assert.equal((await readAll(d)).toString(), 'got 12 bytes');
    await waitFor('both sides forget the stream', () => s.hub.stats().streams === 0 && s.agent.stats().streams === 0);
    s.assertClean();
  });

  t('bulk data both ways at once over several windows keeps order and content', { window: 64 * 1024 }, async (s) => {
    const d = await s.hub.open('127.0.0.1', echo);
    const sent = bytes(4 * 1024 * 1024 + 17, 3);
    const [, got] = await Promise.all([writeAll(d, sent, 50_000, true), readAll(d)]);
    assert.equal(got.length, sent.length);
    assert.equal(sha(got), sha(sent));
    assert.equal(s.hub.stats().bytesOut, sent.length);
    assert.equal(s.hub.stats().bytesIn, sent.length);
    await waitFor('streams released', () => s.hub.stats().streams === 0 && s.agent.stats().streams === 0);
  });

  t('a refusal from onOpen reaches open() as E_TUNNEL_DIAL with the reason and the code in cause', async (s) => {
    const denied = await rejects(s.hub.open('10.0.0.1', 22), ErrorCode.TunnelDial, /^open stream to 10\.0\.0\.1:22: destination 10\.0\.0\.1:22 not allowed$/);
    assert.ok(isTetherError(denied.cause, ErrorCode.TunnelDenied));
    assert.equal((denied.cause as Error).message, 'destination 10.0.0.1:22 not allowed');
    const failed = await rejects(s.hub.open('127.0.0.1', refusedPlain), ErrorCode.TunnelDial, /connect ECONNREFUSED/);
    assert.ok(isTetherError(failed.cause, ErrorCode.TunnelDial));
    assert.ok(s.agentLog.lines.some((l) => l.msg === 'tunnel stream refused' && l.destination === '10.0.0.1:22' && /not allowed/.test(String(l.reason))));
    assert.equal(s.hub.state, 'open');
    s.assertClean();
  });

  t('a reset on either side errors the other with E_TUNNEL_RESET and the reason', async (s) => {
    const d = await s.hub.open('127.0.0.1', echo);
    await waitFor('the agent dialed', () => s.dests.length === 1);
    const dest = s.dests[0]!;
    d.on('error', () => {}); // the error we destroy it with comes back as an 'error' event
    d.destroy(new Error('client went away'));
    await waitFor('the destination is closed on the agent', () => dest.destroyed);
    const d2 = await s.hub.open('127.0.0.1', echo);
    await waitFor('the agent dialed again', () => s.dests.length === 2);
    const failed = new Promise<Error>((r) => d2.once('error', r));
    s.dests[1]!.destroy(new Error('boom'));
    const err = await failed;
    assert.ok(isTetherError(err, ErrorCode.TunnelReset), String(err));
    assert.match(err.message, /^stream reset by the peer: destination: boom$/);
    await waitFor('streams released', () => s.hub.stats().streams === 0 && s.agent.stats().streams === 0);
    s.assertClean();
  });

  const window = 64 * 1024;
  t('a stuck consumer on one stream does not block another; its queue stays within the window', { window }, async (s) => {
    const blocked = await s.hub.open('127.0.0.1', stuck);
    const id = streamIdOf(blocked)!;
    const pushed = bytes(1024 * 1024, 1);
    for (let i = 0; i < pushed.length; i += 16 * 1024) blocked.write(pushed.subarray(i, i + 16 * 1024)); // ignoring backpressure on purpose
    const flowing = await s.hub.open('127.0.0.1', echo);
    const sent = bytes(2 * 1024 * 1024, 9);
    const [, got] = await Promise.all([writeAll(flowing, sent, 32 * 1024, true), readAll(flowing)]);
    assert.equal(sha(got), sha(sent));
    await waitFor('the stuck stream received data', () => (s.agent.stats().queuedBytes[id] ?? 0) > 0);
    const agentQueued = s.agent.stats().queuedBytes[id]!;
    const hubQueued = s.hub.stats().queuedBytes[id]!;
    assert.ok(agentQueued <= window, `agent holds ${agentQueued} bytes for the stuck stream, window ${window}`);
    assert.ok(hubQueued >= pushed.length - 2 * window, `the rest waits at the writer: ${hubQueued}`);
    // Credit comes back only for bytes the agent's consumer took: here the stuck destination's write buffer.
    const stuckSent = s.hub.stats().bytesOut - sent.length;
    const taken = s.dests[0]!.writableLength;
    assert.ok(stuckSent <= window + taken, `${stuckSent} bytes went to the stuck stream: more than the window plus the ${taken} its destination took`);
    blocked.destroy();
    await waitFor('streams released', () => s.hub.stats().streams === 0 && s.agent.stats().streams === 0);
    s.assertClean();
  });

  t('heartbeat: an agent whose hub never answers closes the session', { agentOnly: true, agentHeartbeat: [50, 400] }, async (s) => {
    const closed = await s.agent.closed;
    assert.equal(closed.code, 'heartbeat');
    assert.match(closed.reason, /^heartbeat: nothing from the peer for \d+ ms \(timeout 400 ms\)$/);
    await rejects(s.agent.ready, ErrorCode.TunnelClosed, /heartbeat/);
    assert.equal(inspectSession(s.agent).timers, 0);
  });

  t('heartbeat: a peer that hangs closes both sessions; streams and pending opens fail, dialed connections close', { hubHeartbeat: [50, 400], agentHeartbeat: [50, 400] }, async (s) => {
    const d = await s.hub.open('127.0.0.1', echo);
    const streamErr = new Promise<Error>((r) => d.once('error', r));
    const opening = rejects(s.hub.open('127.0.0.1', slowDial, { timeoutMs: 60_000 }), ErrorCode.TunnelClosed, /^tunnel session closed: heartbeat/);
    await waitFor('the slow dial started', () => s.slow.length === 1);
    s.freezeAgent();
    assert.equal((await s.hub.closed).code, 'heartbeat');
    assert.equal((await s.agent.closed).code, 'heartbeat');
    assert.ok(isTetherError(await streamErr, ErrorCode.TunnelClosed));
    await opening;
    await waitFor('the agent closed the dialed connection', () => s.dests[0]!.destroyed);
    s.slow[0]!.release();
    await waitFor('a dial finishing after the end is closed', () => s.slow[0]!.duplex.destroyed);
    assert.ok(s.hubLog.lines.some((l) => l.msg === 'tunnel session closed' && l.code === 'heartbeat' && l.level === 'warn'));
    s.assertClean();
  });

  t('drain from the agent: no new streams, the open one finishes, then both close as drained', async (s) => {
    const d = await s.hub.open('127.0.0.1', echo);
    s.agent.drain('agent stopping');
    const refused = await rejects(s.hub.open('127.0.0.1', echo), ErrorCode.TunnelDial, /the agent is draining: no new streams/);
    assert.ok(isTetherError(refused.cause, ErrorCode.TunnelClosed));
    await waitFor('the hub hears DRAIN', () => s.hub.state === 'draining');
    await rejects(s.hub.open('127.0.0.1', echo), ErrorCode.TunnelClosed, /draining/);
    d.write('still ');
    d.end('working');
    assert.equal((await readAll(d)).toString(), 'still working');
    assert.equal((await s.hub.closed).code, 'drained');
    assert.equal((await s.agent.closed).code, 'drained');
    s.assertClean();
  });

  const drains: string[] = [];
  t('drain from the hub: the agent is told, the stream finishes, the session closes', { onAgentDrain: (r) => drains.push(r) }, async (s) => {
    const d = await s.hub.open('127.0.0.1', replyAfterEof);
    s.hub.drain('hub replica stopping');
    await rejects(s.hub.open('127.0.0.1', echo), ErrorCode.TunnelClosed, /^open stream to 127\.0\.0\.1:7: the tunnel session is draining$/);
    await waitFor('onDrain on the agent', () => drains.length === 1);
    assert.deepEqual(drains, ['hub replica stopping']);
    d.end('abc');
    assert.equal((await readAll(d)).toString(), 'got 3 bytes');
    const closed = await s.agent.closed;
    assert.equal(closed.code, 'drained');
    s.assertClean();
  });

  t('drain with no streams closes at once', async (s) => {
    s.hub.drain();
    assert.equal((await s.hub.closed).code, 'drained');
    assert.equal((await s.agent.closed).code, 'drained');
  });

  t('close: streams and pending opens fail with E_TUNNEL_CLOSED, both sides learn the reason', async (s) => {
    const d = await s.hub.open('127.0.0.1', echo);
    const streamErr = new Promise<Error>((r) => d.once('error', r));
    const opening = rejects(s.hub.open('127.0.0.1', slowDial), ErrorCode.TunnelClosed, /test over/);
    await waitFor('the slow dial started', () => s.slow.length === 1);
    s.hub.close('test over');
    assert.deepEqual(await s.hub.closed, { reason: 'test over', code: 'normal', by: 'local' });
    const err = await streamErr;
    assert.ok(isTetherError(err, ErrorCode.TunnelClosed));
    assert.equal(err.message, 'tunnel session closed: test over');
    await opening;
    assert.deepEqual(await s.agent.closed, { reason: 'peer: test over', code: 'normal', by: 'peer' });
    await rejects(s.hub.open('127.0.0.1', echo), ErrorCode.TunnelClosed, /^open stream to 127\.0\.0\.1:7: the tunnel session is closed \(test over\)$/);
    await waitFor('the agent closed the dialed connection', () => s.dests[0]!.destroyed);
    s.slow[0]!.release();
    await waitFor('the late dial is closed', () => s.slow[0]!.duplex.destroyed);
    s.assertClean();
  });

  const refuse = () => {
    throw new TetherError(ErrorCode.TunnelDenied, 'node edge-1 may not register as edge-1 here');
  };
  t('onHello refusal: the agent is closed as refused with the reason, the hub logs it', { onHello: refuse, noWait: true }, async (s) => {
    const closed = await s.agent.closed;
    assert.deepEqual(closed, { reason: 'peer: node edge-1 may not register as edge-1 here', code: 'refused', by: 'peer' });
    await rejects(s.agent.ready, ErrorCode.TunnelClosed, /may not register/);
    assert.ok(s.hubLog.lines.some((l) => l.msg === 'tunnel agent refused' && l.node === 'edge-1' && /may not register/.test(String(l.reason))));
  });

  t('open timeout: E_TUNNEL_TIMEOUT, and the dial that finishes later is closed', async (s) => {
    await rejects(s.hub.open('127.0.0.1', slowDial, { timeoutMs: 30 }), ErrorCode.TunnelTimeout, /no answer from the peer within 30 ms/);
    await waitFor('the agent forgets the dial', () => inspectSession(s.agent).dials === 0);
    s.slow[0]!.release();
    await waitFor('the late connection is closed', () => s.slow[0]!.duplex.destroyed);
    s.assertClean();
  });

  t('abort: open() rejects and leaves no listener on the signal', async (s) => {
    const ac = new AbortController();
    const opening = rejects(s.hub.open('127.0.0.1', slowDial, { signal: ac.signal }), ErrorCode.TunnelDial, /aborted/);
    await waitFor('the slow dial started', () => s.slow.length === 1);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
    ac.abort(new Error('client gone'));
    await opening;
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    s.slow[0]!.release();
    await waitFor('the late connection is closed', () => s.slow[0]!.duplex.destroyed);
    s.assertClean();
  });

  t('maxStreams: opens beyond the limit are refused with a reason', { agentMaxStreams: 2 }, async (s) => {
    const a = await s.hub.open('127.0.0.1', stuck);
    const b = await s.hub.open('127.0.0.1', stuck);
    await rejects(s.hub.open('127.0.0.1', stuck), ErrorCode.TunnelDial, /too many streams \(limit 2\)/);
    a.destroy();
    b.destroy();
    await waitFor('released', () => s.agent.stats().streams === 0);
    await s.hub.open('127.0.0.1', stuck).then((d) => d.destroy());
  });

  t('a real TCP destination: bytes, half-close and the reply after EOF', async (s) => {
    const d = await s.hub.open('127.0.0.1', s.tcpPort);
    d.end('ping');
    assert.equal((await readAll(d)).toString(), 'ping|bye');
    await waitFor('streams released', () => s.hub.stats().streams === 0 && s.agent.stats().streams === 0);
    s.assertClean();
  });

  t('10,000 open/close cycles leave no streams, timers or listeners behind', async (s) => {
    const listeners = s.transportListeners();
    const ac = new AbortController();
    let done = 0;
    const worker = async () => {
      while (done < 10_000) {
        done++;
        const d = await s.hub.open('127.0.0.1', echo, { signal: ac.signal });
        d.end('x');
        assert.equal((await readAll(d)).toString(), 'x');
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    await waitFor('every stream released', () => s.hub.stats().streams === 0 && s.agent.stats().streams === 0);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    assert.deepEqual(s.transportListeners(), listeners);
    assert.ok(s.dests.length >= 10_000 && s.dests.every((x) => x.destroyed), 'every dialed connection closed');
    assert.deepEqual(Object.keys(s.hub.stats().queuedBytes), []);
    s.assertClean();
  });
}
