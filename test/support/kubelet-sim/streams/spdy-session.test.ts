import { afterEach, describe, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { createMemoryLogger } from '../../../../shared/log.ts';
import { createFrameCodec } from './spdy-codec.ts';
import { FrameParser, GoAwayStatus, RstStatus, SettingId, type Frame } from './spdy-frames.ts';
import { SpdySession, type SpdySessionOptions } from './spdy-session.ts';
import type { SpdyStream } from './spdy-stream.ts';
import { readAll } from './test-harness.ts';
import { waitFor } from '../../wait.ts';

const log = createMemoryLogger('warn');
const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

/** A TCP server whose connections become server sessions; returns the port and the sessions. */
async function serve(opts: Omit<SpdySessionOptions, 'role' | 'log'>): Promise<{ port: number; sessions: SpdySession[] }> {
  const sessions: SpdySession[] = [];
  const server = net.createServer((socket) => {
    const session = new SpdySession(socket, { role: 'server', log, ...opts });
    sessions.push(session);
    session.start();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const s of sessions) void s.close();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, sessions };
}

async function clientSession(port: number): Promise<SpdySession> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise((resolve) => socket.once('connect', resolve));
  const session = new SpdySession(socket, { role: 'client', log });
  cleanups.push(() => socket.destroy());
  return session;
}

/** A hand-driven peer that sends exactly the frames a test gives it and never acknowledges data. */
async function rawPeer(port: number) {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise((resolve) => socket.once('connect', resolve));
  cleanups.push(() => socket.destroy());
  const codec = createFrameCodec();
  const parser = new FrameParser();
  const frames: Frame[] = [];
  let decoding = Promise.resolve();
  socket.on('data', (chunk: Buffer) => {
    parser.push(chunk);
    for (let raw = parser.next(); raw; raw = parser.next()) {
      const next = codec.decode(raw);
      decoding = decoding.then(async () => void frames.push(await next));
    }
  });
  let closed = false;
  socket.on('close', () => (closed = true));
  return {
    frames,
    closed: () => closed,
    send: async (frame: Frame) => void socket.write(await codec.encode(frame)),
    sendBytes: (bytes: Buffer) => socket.write(bytes),
    dataBytes: (streamId: number) =>
      frames.reduce((n, f) => n + (f.type === 'data' && f.streamId === streamId ? f.data.length : 0), 0),
    /** Pings and waits for the echo: everything the server sent before answering has arrived. */
    sync: async (id: number) => {
      await socket.write(await codec.encode({ type: 'ping', id }));
      await waitFor(`ping ${id} echo`, () => frames.some((f) => f.type === 'ping' && f.id === id));
    },
  };
}

const synStream = (streamId: number): Frame => ({
  type: 'syn_stream', streamId, associatedId: 0, priority: 0, fin: false, unidirectional: false, headers: { streamtype: ['data'] },
});

describe('SpdySession between two sessions', () => {
  test('an opened stream is answered and carries data both ways until both FINs', async () => {
    const { port, sessions } = await serve({ onStream: (s) => void s.pipe(s) });
    const client = await clientSession(port);
    const stream = client.openStream({ streamtype: ['data'] });
    expect(await stream.replied).toEqual({});
    const payload = randomBytes(300 * 1024);
    stream.end(payload);
    expect((await readAll(stream)).equals(payload)).toBe(true);
    await waitFor('both sides to forget the stream', () => client.streams.size === 0 && sessions[0]!.streams.size === 0);
  });

  test('the SYN_STREAM headers reach the handler', async () => {
    const seen: string[] = [];
    const { port } = await serve({ onStream: (s) => void seen.push(`${s.header('streamType')}:${s.header('port')}`) });
    const client = await clientSession(port);
    await client.openStream({ streamtype: ['error'], port: ['8080'] }).replied;
    expect(seen).toEqual(['error:8080']);
  });

  test('a refused stream is reset with REFUSED_STREAM', async () => {
    const { port } = await serve({ onStream: () => false });
    const client = await clientSession(port);
    const stream = client.openStream({ streamtype: ['nope'] });
    await expect(stream.replied).rejects.toThrow('reset by peer');
    expect(stream.resetStatus).toBe(RstStatus.RefusedStream);
  });

  test('a PING from the peer is echoed', async () => {
    const { port } = await serve({});
    const client = await clientSession(port);
    await client.ping();
  });

  test('close() sends GOAWAY and ends the connection', async () => {
    const { port, sessions } = await serve({});
    const peer = await rawPeer(port);
    await waitFor('the server session', () => sessions.length === 1);
    await sessions[0]!.close();
    await waitFor('the connection to close', () => peer.closed());
    expect(peer.frames).toContainEqual({ type: 'goaway', lastGoodStreamId: 0, status: GoAwayStatus.Ok });
  });
});

describe('SpdySession against a raw peer', () => {
  test('auto flow control: a peer that never sends WINDOW_UPDATE (like spdystream) still gets everything', async () => {
    const { port } = await serve({ onStream: (s) => void s.end(randomBytes(300 * 1024)) });
    const peer = await rawPeer(port);
    await peer.send(synStream(1));
    await waitFor('FIN on stream 1', () => peer.frames.some((f) => f.type === 'data' && f.fin));
    expect(peer.dataBytes(1)).toBe(300 * 1024);
  });

  test('consumed data is acknowledged with stream and session WINDOW_UPDATEs', async () => {
    const got: Buffer[] = [];
    const { port } = await serve({ onStream: (s) => void s.on('data', (b: Buffer) => got.push(b)) });
    const peer = await rawPeer(port);
    await peer.send(synStream(1));
    await peer.send({ type: 'data', streamId: 1, fin: false, data: randomBytes(100_000) });
    await waitFor('the server to consume the data', () => got.reduce((n, b) => n + b.length, 0) === 100_000);
    await peer.sync(1);
    const updates = peer.frames.filter((f) => f.type === 'window_update');
    const acked = (id: number) => updates.reduce((n, f) => n + (f.type === 'window_update' && f.streamId === id ? f.delta : 0), 0);
    expect(acked(1)).toBeGreaterThanOrEqual(65_536);
    expect(acked(0)).toBeGreaterThanOrEqual(65_536);
  });

  test("enforced flow control stops at the peer's window and resumes on WINDOW_UPDATE", async () => {
    const { port } = await serve({ flowControl: 'enforce', onStream: (s) => void s.end(randomBytes(100_000)) });
    const peer = await rawPeer(port);
    await peer.send(synStream(1));
    await waitFor('the first window', () => peer.dataBytes(1) === 65_536);
    await peer.sync(1);
    expect(peer.dataBytes(1)).toBe(65_536);
    await peer.send({ type: 'window_update', streamId: 1, delta: 20_000 });
    await peer.send({ type: 'window_update', streamId: 0, delta: 20_000 });
    await waitFor('the second window', () => peer.dataBytes(1) === 85_536);
    await peer.sync(3);
    expect(peer.dataBytes(1)).toBe(85_536);
    await peer.send({ type: 'window_update', streamId: 1, delta: 20_000 });
    await peer.send({ type: 'window_update', streamId: 0, delta: 20_000 });
    await waitFor('FIN', () => peer.frames.some((f) => f.type === 'data' && f.fin));
    expect(peer.dataBytes(1)).toBe(100_000);
  });

  test('auto flow control is enforced once the peer sends SETTINGS_INITIAL_WINDOW_SIZE', async () => {
    const { port } = await serve({ onStream: (s) => void s.end(randomBytes(3000)) });
    const peer = await rawPeer(port);
    await peer.send({ type: 'settings', clear: false, entries: [{ id: SettingId.InitialWindowSize, flags: 0, value: 1000 }] });
    await peer.send(synStream(1));
    await waitFor('the first 1000 bytes', () => peer.dataBytes(1) === 1000);
    await peer.sync(1);
    expect(peer.dataBytes(1)).toBe(1000);
    await peer.send({ type: 'window_update', streamId: 1, delta: 2000 });
    await waitFor('FIN', () => peer.frames.some((f) => f.type === 'data' && f.fin));
    expect(peer.dataBytes(1)).toBe(3000);
  });

  test('a consumer that does not read pauses the whole connection until it reads', async () => {
    const streams: SpdyStream[] = [];
    const { port } = await serve({ onStream: (s) => void streams.push(s) });
    const peer = await rawPeer(port);
    await peer.send(synStream(1));
    const chunk = randomBytes(32 * 1024);
    for (let i = 0; i < 128; i++) await peer.send({ type: 'data', streamId: 1, fin: i === 127, data: chunk });
    await peer.send({ type: 'ping', id: 7 });
    await waitFor('the stream buffer to fill', () => (streams[0]?.readableLength ?? 0) >= 16 * 1024);
    // The ping sits behind 4 MiB the server may not read yet.
    expect(streams[0]!.readableLength).toBeLessThanOrEqual(64 * 1024);
    expect(peer.frames.some((f) => f.type === 'ping')).toBe(false);
    const all = await readAll(streams[0]!);
    expect(all.length).toBe(128 * chunk.length);
    await waitFor('the ping echo', () => peer.frames.some((f) => f.type === 'ping' && f.id === 7));
  });

  test('data after the peer already sent FIN is answered with STREAM_ALREADY_CLOSED', async () => {
    const { port } = await serve({ onStream: (s) => void s.resume() });
    const peer = await rawPeer(port);
    await peer.send(synStream(1));
    await peer.send({ type: 'data', streamId: 1, fin: true, data: Buffer.from('last') });
    await peer.send({ type: 'data', streamId: 1, fin: false, data: Buffer.from('too late') });
    await waitFor('RST_STREAM', () => peer.frames.some((f) => f.type === 'rst_stream'));
    expect(peer.frames).toContainEqual({ type: 'rst_stream', streamId: 1, status: RstStatus.StreamAlreadyClosed });
  });

  test('a stream id from the wrong side is a protocol error for that stream', async () => {
    const { port } = await serve({ onStream: () => true });
    const peer = await rawPeer(port);
    await peer.send(synStream(2));
    await waitFor('RST_STREAM', () => peer.frames.some((f) => f.type === 'rst_stream'));
    expect(peer.frames).toContainEqual({ type: 'rst_stream', streamId: 2, status: RstStatus.ProtocolError });
  });

  test('an undecodable frame ends the session with GOAWAY(PROTOCOL_ERROR)', async () => {
    const { port } = await serve({});
    const peer = await rawPeer(port);
    peer.sendBytes(Buffer.from('8002000600000004000000ff', 'hex')); // a SPDY/2 PING
    await waitFor('the connection to close', () => peer.closed());
    expect(peer.frames).toContainEqual({ type: 'goaway', lastGoodStreamId: 0, status: GoAwayStatus.ProtocolError });
  });
});
