import { afterEach, describe, expect, test } from 'bun:test';
import { createProcessRuntime, type ProcessRuntime } from './process-runtime.ts';
import { readAll } from './test-harness.ts';
import { waitFor } from '../../wait.ts';

const target = { namespace: 'ns', pod: 'pod', container: 'app' };
let runtime: ProcessRuntime;
afterEach(() => runtime.close());

describe('createProcessRuntime', () => {
  test('exec spawns the real command with piped stdio', async () => {
    runtime = createProcessRuntime();
    const child = runtime.exec(target, ['sh', '-c', 'read x; echo "in=$x"; echo err >&2'], { tty: false });
    child.stdin!.end('typed\n');
    const [out, err] = await Promise.all([readAll(child.stdout!), readAll(child.stderr!)]);
    expect([out.toString(), err.toString()]).toEqual(['in=typed\n', 'err\n']);
  });

  test('port-forward targets the configured host', () => {
    runtime = createProcessRuntime({ portHost: '127.0.0.2' });
    expect(runtime.portTarget(target, 8080)).toEqual({ host: '127.0.0.2', port: 8080 });
  });

  test('attach: attachments see the output made while attached; ending stdin ends the process for all', async () => {
    runtime = createProcessRuntime();
    const a = runtime.attach(target, { tty: false });
    const b = runtime.attach(target, { tty: false });
    let seenByB = '';
    b.stdout.on('data', (d: Buffer) => (seenByB += d));
    a.stdin.write('hello\n');
    await waitFor('b to see the output', () => seenByB === 'hello\n');
    a.stdin.end();
    await Promise.all([a.done, b.done]);
    expect((await readAll(a.stdout)).toString()).toBe('hello\n');
    const c = runtime.attach(target, { tty: false });
    let seenByC = '';
    c.stdout.on('data', (d: Buffer) => (seenByC += d));
    c.stdin.write('fresh\n');
    await waitFor('a fresh process to echo', () => seenByC === 'fresh\n');
    c.detach();
    await c.done;
  });

  test('close kills what the runtime started', async () => {
    runtime = createProcessRuntime();
    const child = runtime.exec(target, ['sleep', '600'], { tty: false });
    const attached = runtime.attach(target, { tty: false });
    runtime.close();
    await waitFor('the exec child to be killed', () => child.signalCode === 'SIGKILL');
    await attached.done;
  });
});
