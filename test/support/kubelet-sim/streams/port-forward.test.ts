import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { createMemoryLogger } from '../../../../shared/log.ts';
import { createProcessRuntime, type ContainerRuntime } from './index.ts';
import { dialSpdy } from './spdy-dialer.ts';
import { RstStatus, type HeaderMap } from './spdy-frames.ts';
import type { SpdySession } from './spdy-session.ts';
import type { SpdyStream } from './spdy-stream.ts';
import { readAll, startEchoServer, startStreamServer, type EchoServer, type StreamServer } from './test-harness.ts';
import { waitFor } from '../../wait.ts';

const log = createMemoryLogger('warn');
const processRuntime = createProcessRuntime();
const runtime: ContainerRuntime = {
  exec: processRuntime.exec,
  portTarget: (target, port) => {
    if (target.pod === 'gone') throw new Error('pod default/gone does not exist');
    return processRuntime.portTarget(target, port);
  },
};
let server: StreamServer;
let echo: EchoServer;
beforeAll(async () => {
  server = await startStreamServer(runtime);
  echo = await startEchoServer();
});
afterAll(async () => {
  await server.close();
  await echo.close();
});

async function connect(pod = 'pod1'): Promise<SpdySession> {
  const { session, protocol } = await dialSpdy({ url: `${server.url}/portForward/default/${pod}`, protocols: ['portforward.k8s.io'], ca: server.ca, log });
  expect(protocol).toBe('portforward.k8s.io');
  return session;
}

/** Opens a request's stream pair as client-go does: error (half-closed at once), then data. */
async function request(session: SpdySession, port: number, requestId?: number): Promise<{ data: SpdyStream; error: Promise<string> }> {
  const base: Record<string, string[]> = { port: [String(port)] };
  if (requestId !== undefined) base.requestid = [String(requestId)];
  const errorStream = session.openStream({ ...base, streamtype: ['error'] });
  await errorStream.replied;
  errorStream.end();
  const error = readAll(errorStream).then((b) => b.toString());
  const data = session.openStream({ ...base, streamtype: ['data'] });
  await data.replied;
  return { data, error };
}

async function unusedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

describe('port-forward over SPDY', () => {
  test('twenty concurrent requests on one session each echo their own bytes', async () => {
    const session = await connect();
    const results = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const { data, error } = await request(session, echo.port, i);
        const payload = randomBytes(i === 0 ? 2 << 20 : 64 * 1024);
        data.end(payload);
        const [back, err] = await Promise.all([readAll(data), error]);
        return back.equals(payload) && err === '';
      }),
    );
    expect(results.every(Boolean)).toBe(true);
    await session.close();
  });

  test('requests without a requestID header are paired by stream id', async () => {
    const session = await connect();
    const { data, error } = await request(session, echo.port);
    data.end('old client');
    expect((await readAll(data)).toString()).toBe('old client');
    expect(await error).toBe('');
    await session.close();
  });

  test('a target that closes first ends the data stream, then the error stream, without error', async () => {
    const target = net.createServer((c) => c.end('bye'));
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    try {
      const session = await connect();
      const { data, error } = await request(session, (target.address() as net.AddressInfo).port, 1);
      expect((await readAll(data)).toString()).toBe('bye');
      data.end();
      expect(await error).toBe('');
      await session.close();
    } finally {
      target.close();
    }
  });

  test('a reset data stream closes the connection to the target', async () => {
    const session = await connect();
    const before = echo.accepted();
    const { data, error } = await request(session, echo.port, 1);
    data.write('ping');
    await new Promise((resolve) => data.once('data', resolve));
    expect(echo.accepted()).toBe(before + 1);
    data.reset();
    expect(await error).toBe('');
    await session.close();
  });

  test('a refused connection is reported on the error stream and the data stream is reset', async () => {
    const port = await unusedPort();
    const session = await connect();
    const { data, error } = await request(session, port, 1);
    const message = await error;
    expect(message).toStartWith(`error forwarding port ${port} to pod pod1_default, uid : `);
    expect(message).toContain('ECONNREFUSED');
    await waitFor('the data stream to be reset', () => data.destroyed);
    expect(data.resetStatus).toBe(RstStatus.Cancel);
    await session.close();
  });

  test('a pod the runtime does not know is reported on the error stream', async () => {
    const session = await connect('gone');
    const { error } = await request(session, echo.port, 1);
    expect(await error).toContain('pod default/gone does not exist');
    await session.close();
  });

  test('streams without a valid port or stream type are refused', async () => {
    const session = await connect();
    const invalid: HeaderMap[] = [{ streamtype: ['data'] }, { streamtype: ['data'], port: ['0'] }, { streamtype: ['other'], port: ['80'] }];
    for (const headers of invalid) {
      const stream = session.openStream(headers);
      await expect(stream.replied).rejects.toThrow('reset by peer');
      expect(stream.resetStatus).toBe(RstStatus.RefusedStream);
    }
    await session.close();
  });

  test('websocket port-forward is refused with 400', async () => {
    const res = await fetch(`${server.url}/portForward/default/pod1`, {
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
      tls: { ca: server.ca },
    } as RequestInit);
    expect(res.status).toBe(400);
  });
});
