import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import { createProcessRuntime, type ProcessRuntime } from './index.ts';
import { startStreamServer, type StreamServer } from './test-harness.ts';

let runtime: ProcessRuntime;
let server: StreamServer;
beforeAll(async () => {
  runtime = createProcessRuntime();
  server = await startStreamServer(runtime);
});
afterAll(async () => {
  await server.close();
  runtime.close();
});

function path(command: string[], flags: string): string {
  const q = new URLSearchParams(flags);
  for (const c of command) q.append('command', c);
  return `/exec/default/pod1/c1?${q}`;
}

interface Session {
  messages: Buffer[];
  protocol: string;
  closeCode: number;
  output(channel: number): string;
}

/** Runs one exec over WebSocket; `drive` may send messages once the connection is open. */
function wsExec(p: string, protocols: string[], drive: (ws: WebSocket) => void = () => undefined): Promise<Session> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(server.url.replace('https', 'wss') + p, protocols, { ca: server.ca });
    const messages: Buffer[] = [];
    ws.on('open', () => drive(ws));
    ws.on('message', (data) => messages.push(data as Buffer));
    ws.on('error', reject);
    ws.on('close', (closeCode) =>
      resolve({
        messages,
        protocol: ws.protocol,
        closeCode,
        output: (channel) =>
          Buffer.concat(messages.filter((m) => m[0] === channel).map((m) => m.subarray(1))).toString(),
      }),
    );
  });
}

const frame = (channel: number, data: string | Buffer = '') => Buffer.concat([Buffer.from([channel]), Buffer.from(data)]);

describe('exec over WebSocket', () => {
  test('v5: an empty stdout message first, then output, the Status and a normal close', async () => {
    const s = await wsExec(path(['echo', 'hello'], 'output=1&error=1'), ['v5.channel.k8s.io']);
    expect(s.protocol).toBe('v5.channel.k8s.io');
    expect(s.messages[0]).toEqual(Buffer.from([1]));
    expect(s.output(1)).toBe('hello\n');
    expect(JSON.parse(s.output(3))).toEqual({ metadata: {}, status: 'Success' });
    expect(s.closeCode).toBe(1000);
  });

  test('v5: stdin ends with the close signal [255, 0]', async () => {
    const payload = randomBytes(512 * 1024).toString('hex');
    const s = await wsExec(path(['cat'], 'input=1&output=1&error=1'), ['v5.channel.k8s.io'], (ws) => {
      for (let i = 0; i < payload.length; i += 100_000) ws.send(frame(0, payload.slice(i, i + 100_000)));
      ws.send(Buffer.from([255, 0]));
    });
    expect(s.output(1)).toBe(payload);
    expect(JSON.parse(s.output(3)).status).toBe('Success');
  });

  test('v4: a non-zero exit reports the exit code', async () => {
    const s = await wsExec(path(['sh', '-c', 'echo oops >&2; exit 7'], 'output=1&error=1'), ['v4.channel.k8s.io']);
    expect(s.protocol).toBe('v4.channel.k8s.io');
    expect(s.output(2)).toBe('oops\n');
    const status = JSON.parse(s.output(3));
    expect([status.reason, status.details.causes]).toEqual(['NonZeroExitCode', [{ reason: 'ExitCode', message: '7' }]]);
  });

  test('the client preference picks the protocol', async () => {
    const s = await wsExec(path(['true'], 'output=1'), ['v4.channel.k8s.io', 'v5.channel.k8s.io']);
    expect(s.protocol).toBe('v4.channel.k8s.io');
  });

  test('TTY resize messages on channel 4 are accepted', async () => {
    const s = await wsExec(path(['sh', '-c', 'read line; echo "got $line"'], 'input=1&output=1&tty=1'), ['v5.channel.k8s.io'], (ws) => {
      ws.send(frame(4, '{"Width":100,"Height":30}'));
      ws.send(frame(0, 'typed\n'));
    });
    expect(s.output(1)).toBe('got typed\n');
    expect(JSON.parse(s.output(3)).status).toBe('Success');
  });

  test('an unsupported subprotocol is refused with 400', async () => {
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(server.url.replace('https', 'wss') + path(['true'], 'output=1'), ['base64.channel.k8s.io'], { ca: server.ca });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => undefined);
    });
    expect(status).toBe(400);
  });
});
