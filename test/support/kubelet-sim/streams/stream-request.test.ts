import { describe, expect, test } from 'bun:test';
import { parseStreamRequest } from './stream-request.ts';

describe('parseStreamRequest', () => {
  test('exec: the path, repeated command parameters and the kubelet stream flags', () => {
    expect(parseStreamRequest('/exec/ns1/pod%2D1/app?command=sh&command=-c&command=echo+a%26b&input=1&output=1&error=1')).toEqual({
      ok: true,
      request: {
        kind: 'exec',
        target: { namespace: 'ns1', pod: 'pod-1', container: 'app' },
        command: ['sh', '-c', 'echo a&b'],
        streams: { stdin: true, stdout: true, stderr: true, tty: false },
      },
    });
  });

  test('a pod uid segment is allowed; tty drops stderr', () => {
    const parsed = parseStreamRequest('/attach/ns/pod/0b7e-uid/app?input=1&output=1&error=1&tty=1');
    expect(parsed).toEqual({
      ok: true,
      request: { kind: 'attach', target: { namespace: 'ns', pod: 'pod', container: 'app' }, streams: { stdin: true, stdout: true, stderr: false, tty: true } },
    });
  });

  test('flags count only when exactly "1"', () => {
    expect(parseStreamRequest('/exec/ns/pod/app?command=true&output=true&error=yes')).toEqual({
      ok: false,
      status: 400,
      message: 'you must specify at least 1 of stdin, stdout, stderr',
    });
  });

  test('exec without a command is refused', () => {
    expect(parseStreamRequest('/exec/ns/pod/app?output=1')).toMatchObject({ ok: false, status: 400 });
  });

  test('portForward with and without ports', () => {
    expect(parseStreamRequest('/portForward/ns/pod')).toEqual({ ok: true, request: { kind: 'portForward', target: { namespace: 'ns', pod: 'pod' }, ports: [] } });
    expect(parseStreamRequest('/portForward/ns/pod?port=80,443&port=8080')).toMatchObject({ ok: true, request: { ports: [80, 443, 8080] } });
    expect(parseStreamRequest('/portForward/ns/pod?port=70000')).toMatchObject({ ok: false, status: 400 });
  });

  test('wrong segment counts are 404; other paths are not ours', () => {
    expect(parseStreamRequest('/exec/ns/pod?command=true&output=1')).toMatchObject({ ok: false, status: 404 });
    expect(parseStreamRequest('/portForward/ns')).toMatchObject({ ok: false, status: 404 });
    expect(parseStreamRequest('/containerLogs/ns/pod/app')).toBeUndefined();
    expect(parseStreamRequest('/healthz')).toBeUndefined();
  });
});
