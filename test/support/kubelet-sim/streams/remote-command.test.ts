import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createMemoryLogger } from '../../../../shared/log.ts';
import net from 'node:net';
import { childCommand } from './command-io.ts';
import { createProcessRuntime, type ContainerRuntime, type ProcessRuntime } from './index.ts';
import { serveRemoteCommandSpdy } from './remote-command.ts';
import { SpdySession } from './spdy-session.ts';
import { dialSpdy, UpgradeRefused } from './spdy-dialer.ts';
import type { SpdyStream } from './spdy-stream.ts';
import { readAll, startStreamServer, type StreamServer } from './test-harness.ts';
import { waitFor } from '../../wait.ts';

const log = createMemoryLogger('warn');
let runtime: ProcessRuntime;
let server: StreamServer;
const started: ChildProcess[] = [];

beforeAll(async () => {
  runtime = createProcessRuntime();
  const recording: ContainerRuntime = {
    exec: (target, command, opts) => {
      if (target.pod === 'missing') throw new Error(`pod ${target.namespace}/${target.pod} does not exist`);
      const child = runtime.exec(target, command, opts);
      started.push(child);
      return child;
    },
    portTarget: (t, p) => runtime.portTarget(t, p),
    attach: (t, o) => runtime.attach(t, o),
  };
  server = await startStreamServer(recording);
});
afterAll(async () => {
  await server.close();
  runtime.close();
});

interface ExecOptions {
  stdin?: Buffer;
  tty?: boolean;
  protocol?: string;
  path?: string;
}

function execPath(command: string[], o: { stdin?: boolean; tty?: boolean }): string {
  const q = new URLSearchParams();
  for (const c of command) q.append('command', c);
  if (o.stdin) q.set('input', '1');
  q.set('output', '1');
  if (o.tty) q.set('tty', '1');
  else q.set('error', '1');
  return `/exec/default/pod1/c1?${q}`;
}

/** Opens the streams the way client-go does (error first, each waiting for its SYN_REPLY). */
async function openStreams(session: SpdySession, types: string[]): Promise<Record<string, SpdyStream>> {
  const streams: Record<string, SpdyStream> = {};
  for (const type of types) {
    const stream = session.openStream({ streamtype: [type] });
    await stream.replied;
    streams[type] = stream;
  }
  return streams;
}

async function exec(command: string[], o: ExecOptions = {}) {
  const protocol = o.protocol ?? 'v4.channel.k8s.io';
  const { session, protocol: chosen } = await dialSpdy({
    url: server.url + (o.path ?? execPath(command, { stdin: !!o.stdin, tty: o.tty })),
    protocols: [protocol],
    ca: server.ca,
    log,
  });
  const types = ['error', ...(o.stdin ? ['stdin'] : []), 'stdout', ...(o.tty ? ['resize'] : ['stderr'])];
  const streams = await openStreams(session, types);
  if (o.stdin) streams.stdin!.end(o.stdin);
  if (o.tty) streams.resize!.write('{"Width":80,"Height":24}\n');
  const [stdout, stderr, error] = await Promise.all([
    readAll(streams.stdout!),
    streams.stderr ? readAll(streams.stderr) : Promise.resolve(Buffer.alloc(0)),
    readAll(streams.error!),
  ]);
  await session.closed;
  return { chosen, stdout: stdout.toString(), stderr: stderr.toString(), error: error.toString() };
}

describe('exec over SPDY, protocol v4', () => {
  test('echo hello: stdout and a Success status', async () => {
    const r = await exec(['echo', 'hello']);
    expect(r.chosen).toBe('v4.channel.k8s.io');
    expect(r.stdout).toBe('hello\n');
    expect(JSON.parse(r.error)).toEqual({ metadata: {}, status: 'Success' });
  });

  test('cat returns 1 MiB of stdin', async () => {
    const payload = randomBytes(1 << 20).toString('base64');
    const r = await exec(['cat'], { stdin: Buffer.from(payload) });
    expect(r.stdout).toBe(payload);
  });

  test('stdout and stderr arrive on their own streams', async () => {
    const r = await exec(['sh', '-c', 'echo out; echo err >&2']);
    expect([r.stdout, r.stderr]).toEqual(['out\n', 'err\n']);
  });

  test('a non-zero exit is a NonZeroExitCode status with an ExitCode cause', async () => {
    const r = await exec(['sh', '-c', 'exit 3']);
    expect(JSON.parse(r.error)).toEqual({
      metadata: {},
      status: 'Failure',
      message: 'command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3',
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: '3' }] },
    });
  });

  test('with a TTY, stderr goes to stdout and resize events are accepted', async () => {
    const r = await exec(['sh', '-c', 'echo out; echo err >&2'], { tty: true });
    expect(r.stdout).toContain('out\n');
    expect(r.stdout).toContain('err\n');
    expect(JSON.parse(r.error).status).toBe('Success');
  });

  test('a command that cannot start is an InternalError status', async () => {
    const r = await exec(['/no/such/binary']);
    const status = JSON.parse(r.error);
    expect([status.reason, status.code]).toEqual(['InternalError', 500]);
    expect(status.message).toContain('error executing command in container');
    expect(status.message).toContain('/no/such/binary');
  });

  test('the process is killed when the client goes away', async () => {
    const before = started.length;
    const { session } = await dialSpdy({ url: server.url + execPath(['sh', '-c', 'echo up; exec sleep 600'], {}), protocols: ['v4.channel.k8s.io'], ca: server.ca, log });
    const streams = await openStreams(session, ['error', 'stdout', 'stderr']);
    await new Promise((resolve) => streams.stdout!.once('data', resolve));
    const child = started[before]!;
    expect(child.exitCode).toBeNull();
    await session.close();
    await waitFor('the process to be killed', () => child.signalCode !== null);
    expect(child.signalCode).toBe('SIGKILL');
  });
});

describe('stream creation timeout', () => {
  test('a client that does not open all its streams in time is disconnected and the process killed', async () => {
    const child = runtime.exec({ namespace: 'ns', pod: 'p', container: 'c' }, ['sleep', '600'], { tty: false });
    const tcp = net.createServer((socket) => {
      serveRemoteCommandSpdy({
        socket, head: Buffer.alloc(0), protocol: 'v4.channel.k8s.io', action: 'exec', command: ['sleep', '600'],
        streams: { stdin: false, stdout: true, stderr: false, tty: false }, io: childCommand(child, ['sleep', '600']),
        log, streamCreationTimeoutMs: 50,
      });
    });
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    try {
      const socket = net.connect((tcp.address() as net.AddressInfo).port, '127.0.0.1');
      const client = new SpdySession(socket, { role: 'client', log });
      await client.openStream({ streamtype: ['error'] }).replied; // stdout never comes
      await client.closed;
      await waitFor('the process to be killed', () => child.signalCode === 'SIGKILL');
    } finally {
      tcp.close();
    }
  });
});

describe('exec over SPDY, older protocols', () => {
  for (const protocol of ['v3.channel.k8s.io', 'v2.channel.k8s.io']) {
    test(`${protocol}: success leaves the error stream empty, failure sends the message`, async () => {
      const ok = await exec(['echo', 'hi'], { protocol });
      expect([ok.chosen, ok.stdout, ok.error]).toEqual([protocol, 'hi\n', '']);
      const failed = await exec(['sh', '-c', 'exit 4'], { protocol });
      expect(failed.error).toBe('command terminated with non-zero exit code: error executing command [sh -c exit 4], exit code 4');
    });
  }

  test('channel.k8s.io: output arrives, the error stream is reset as the kubelet does', async () => {
    const r = await exec(['sh', '-c', 'echo v1; exit 4'], { protocol: 'channel.k8s.io' });
    expect([r.stdout, r.error]).toEqual(['v1\n', '']);
  });
});

describe('upgrade refusals', () => {
  const refusal = (path: string, protocols = ['v4.channel.k8s.io']) =>
    dialSpdy({ url: server.url + path, protocols, ca: server.ca, log }).then(
      () => undefined,
      (err: unknown) => err as UpgradeRefused,
    );

  test('no common protocol is 403 naming what the server accepts', async () => {
    const err = await refusal(execPath(['true'], {}), ['v9.channel.k8s.io']);
    expect(err?.status).toBe(403);
    expect(err?.body).toContain('v4.channel.k8s.io');
  });

  test('no standard stream asked for is 400 (the flags are input, output and error, as the kubelet reads them)', async () => {
    const err = await refusal('/exec/default/pod1/c1?command=true&stdin=1&stdout=1');
    expect(err?.status).toBe(400);
    expect(err?.body).toContain('you must specify at least 1 of stdin, stdout, stderr');
  });

  test('a pod the runtime does not know is 404 before any upgrade', async () => {
    const err = await refusal('/exec/default/missing/c1?command=true&output=1');
    expect(err?.status).toBe(404);
    expect(err?.body).toContain('pod default/missing does not exist');
  });
});

describe('attach over SPDY', () => {
  async function attach(path: string, types: string[]) {
    const { session } = await dialSpdy({ url: server.url + path, protocols: ['v4.channel.k8s.io'], ca: server.ca, log });
    return { session, streams: await openStreams(session, types) };
  }

  test("attachments share the container's process; ending stdin ends it (stdinOnce) and both with Success", async () => {
    const watcher = await attach('/attach/default/pod1/shared?output=1', ['error', 'stdout']);
    const writer = await attach('/attach/default/pod1/shared?input=1&output=1&error=1', ['error', 'stdin', 'stdout', 'stderr']);
    let seen = '';
    watcher.streams.stdout!.on('data', (b: Buffer) => (seen += b.toString()));
    writer.streams.stdin!.write('one line\n');
    await waitFor('the watcher to see the line', () => seen === 'one line\n');
    writer.streams.stdin!.end('last line\n');
    const [out, error, watcherError] = await Promise.all([
      readAll(writer.streams.stdout!),
      readAll(writer.streams.error!),
      readAll(watcher.streams.error!),
    ]);
    expect(out.toString()).toBe('one line\nlast line\n');
    expect(seen).toBe('one line\nlast line\n');
    expect(JSON.parse(error.toString())).toEqual({ metadata: {}, status: 'Success' });
    expect(JSON.parse(watcherError.toString())).toEqual({ metadata: {}, status: 'Success' });
  });

  test('a runtime without attach answers with an InternalError status', async () => {
    const plain: ContainerRuntime = { exec: runtime.exec, portTarget: runtime.portTarget };
    const other = await startStreamServer(plain);
    try {
      const { session } = await dialSpdy({ url: other.url + '/attach/default/pod1/c1?output=1', protocols: ['v4.channel.k8s.io'], ca: other.ca, log });
      const streams = await openStreams(session, ['error', 'stdout']);
      const status = JSON.parse((await readAll(streams.error!)).toString());
      expect(status.reason).toBe('InternalError');
      expect(status.message).toBe('Internal error occurred: error attaching to container: attach is not supported by this container runtime');
    } finally {
      await other.close();
    }
  });
});
