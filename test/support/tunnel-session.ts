/**
 * Test support for the session contract: a hub and an agent session over a transport pair, the
 * agent's destinations (echo, reply after EOF, stuck, refusals, a slow dial, a real TCP server),
 * leak checks, and small stream helpers (waiting is test/support/wait.ts's).
 */
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import { createMemoryLogger } from '../../shared/log.ts';
import { freezable, type PairFactory } from './tunnel-pairs.ts';
import { createTunnelSession, inspectSession, type Hello, type TunnelSession } from '../../shared/tunnel/session.ts';

export const destinationPorts = { echo: 7, replyAfterEof: 8, stuck: 9, refusedPlain: 10, slowDial: 11 } as const;

export interface PairOptions {
  window?: number;
  agentOnly?: boolean;
  hubHeartbeat?: [number, number];
  agentHeartbeat?: [number, number];
  onAgentDrain?: (reason: string) => void;
  onHello?: (h: Hello) => void | Promise<void>;
  /** Do not wait for the handshake. */
  noWait?: boolean;
  agentMaxStreams?: number;
}

export interface SessionPair {
  hub: TunnelSession;
  agent: TunnelSession;
  hello: Hello;
  hubLog: ReturnType<typeof createMemoryLogger>;
  agentLog: ReturnType<typeof createMemoryLogger>;
  /** Connections the agent's onOpen returned, in order. */
  dests: Duplex[];
  /** Dials of the slow port, waiting for release(). */
  slow: { release(): void; duplex: Duplex }[];
  tcpPort: number;
  freezeAgent(): void;
  /** No stream, pending open, dial, queued send or stray timer in either session. */
  assertClean(): void;
  transportListeners(): number[];
  dispose(): Promise<void>;
}

export async function createSessionPair(factory: PairFactory, o: PairOptions = {}): Promise<SessionPair> {
  const pair = await factory.create();
  const agentTransport = freezable(pair.agent);
  const hubLog = createMemoryLogger('info');
  const agentLog = createMemoryLogger('info');
  const hello: Hello = { node: 'edge-1', addresses: ['198.18.1.2', '127.0.0.1'], version: '0.1.0' };
  const dests: Duplex[] = [];
  const slow: SessionPair['slow'] = [];
  const sockets = new Set<Socket>();
  const tcp = createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('end', () => sock.end(Buffer.concat([...chunks, Buffer.from('|bye')])));
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  const tcpPort = (tcp.address() as AddressInfo).port;

  const onOpen = async (host: string, port: number): Promise<Duplex> => {
    const d = await dial(host, port, tcpPort, slow);
    dests.push(d);
    return d;
  };
  const hb = (x?: [number, number]) => (x ? { heartbeatIntervalMs: x[0], heartbeatTimeoutMs: x[1] } : {});
  const agent = createTunnelSession({
    transport: agentTransport,
    role: 'agent',
    log: agentLog,
    hello,
    onOpen,
    onDrain: o.onAgentDrain,
    initialWindow: o.window,
    maxStreams: o.agentMaxStreams,
    ...hb(o.agentHeartbeat),
  });
  const hub = o.agentOnly
    ? undefined
    : createTunnelSession({ transport: pair.hub, role: 'hub', log: hubLog, onHello: o.onHello, initialWindow: o.window, ...hb(o.hubHeartbeat) });
  if (!o.noWait && hub) await Promise.all([hub.ready, agent.ready]);
  const sessions = hub ? [hub, agent] : [agent];
  return {
    hub: hub ?? agent,
    agent,
    hello,
    hubLog,
    agentLog,
    dests,
    slow,
    tcpPort,
    freezeAgent: () => agentTransport.freeze(),
    assertClean() {
      for (const s of sessions) {
        const i = inspectSession(s);
        assert.deepEqual(
          { streams: i.streams, pendingOpens: i.pendingOpens, dials: i.dials, scheduled: i.scheduled, timers: i.timers },
          { streams: 0, pendingOpens: 0, dials: 0, scheduled: 0, timers: i.state === 'closed' ? 0 : 1 },
          `session ${s.id} (${i.state}) holds nothing`,
        );
      }
    },
    transportListeners: () => [pair.hub, pair.agent].map((t) => (t as { listeners?: number }).listeners ?? -1),
    async dispose() {
      for (const s of slow) s.release();
      for (const s of sessions) s.close('test done');
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => tcp.close(() => r()));
      await pair.dispose();
    },
  };
}

async function dial(host: string, port: number, tcpPort: number, slow: SessionPair['slow']): Promise<Duplex> {
  const p = destinationPorts;
  if (port === p.echo) return new PassThrough();
  if (port === p.replyAfterEof) {
    let n = 0;
    return new Duplex({
      read() {},
      write(c: Buffer, _e, cb) {
        n += c.length;
        cb();
      },
      final(cb) {
        this.push(`got ${n} bytes`);
        this.push(null);
        cb();
      },
    });
  }
  if (port === p.stuck) return new Duplex({ read() {}, write() {} });
  if (port === p.refusedPlain) throw new Error(`connect ECONNREFUSED ${host}:${port}`);
  if (port === p.slowDial) {
    const duplex = new PassThrough();
    return new Promise((resolve) => slow.push({ release: () => resolve(duplex), duplex }));
  }
  if (port === tcpPort) {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port, allowHalfOpen: true });
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
  }
  throw new TetherError(ErrorCode.TunnelDenied, `destination ${host}:${port} not allowed`);
}

export function readAll(d: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    d.on('data', (c: Buffer) => chunks.push(c));
    d.once('end', () => resolve(Buffer.concat(chunks)));
    d.once('error', reject);
  });
}

/** Write with backpressure, in chunks; end() afterwards when asked. */
export async function writeAll(d: Duplex, data: Uint8Array, chunk: number, end: boolean): Promise<void> {
  for (let i = 0; i < data.length; i += chunk) {
    if (!d.write(data.subarray(i, i + chunk))) {
      await new Promise<void>((resolve, reject) => {
        const done = (e?: Error) => {
          d.off('drain', done);
          d.off('error', done);
          d.off('close', onClose);
          if (e) reject(e);
          else resolve();
        };
        const onClose = () => done(new Error('stream closed while writing'));
        d.on('drain', done);
        d.on('error', done);
        d.on('close', onClose);
      });
    }
  }
  if (end) d.end();
}
