import { afterAll, beforeAll, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makePki, startApiServer, type Pki, type TestApiServer } from '../../test/support/upstream-servers.ts';

// close() must leave nothing that keeps a process alive: not the probe timers, not the keep-alive
// sockets, not a watch in flight. A child process proves it by exiting on its own, under both runtimes.

let pki: Pki;
let server: TestApiServer;
let out: string;

beforeAll(async () => {
  pki = await makePki(['system:node:edge-1']);
  server = await startApiServer(pki);
  out = mkdtempSync(join(tmpdir(), 'tether-upstream-node-'));
});
afterAll(async () => {
  await server.stop();
  pki.remove();
  rmSync(out, { recursive: true, force: true });
});

async function runChild(cmd: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { cert, key } = pki.client('system:node:edge-1');
  const arg = JSON.stringify({ server: server.url, ca: pki.ca, cert, key });
  const child = Bun.spawn([...cmd, arg], { stdout: 'pipe', stderr: 'pipe' });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), 20_000)));
  const outcome = await Promise.race([child.exited, deadline]);
  clearTimeout(timer);
  if (outcome === 'hung') child.kill('SIGKILL');
  await child.exited;
  return {
    code: outcome === 'hung' ? null : outcome,
    stdout: await new Response(child.stdout).text(),
    stderr: await new Response(child.stderr).text(),
  };
}

const expected = { healthy: true, whoami: 'system:node:edge-1', watchEnded: 'aborted' };

const title = 'the default probe presents the client certificate, and after close() the process exits by itself';

test(`under Bun: ${title}`, async () => {
  const r = await runChild([process.execPath, join(import.meta.dir, '../../test/support/upstream-close-child.ts')]);
  expect(r.code, r.stderr).toBe(0);
  expect(JSON.parse(r.stdout)).toEqual(expected);
});

const node = Bun.which('node');
test.skipIf(!node)(`under Node: ${title}`, async () => {
  const entry = join(import.meta.dir, '../../test/support/upstream-close-child.ts');
  const built = await Bun.build({ entrypoints: [entry], target: 'node', format: 'esm', outdir: out });
  expect(built.success).toBe(true);
  const r = await runChild([node!, built.outputs[0]!.path]);
  expect(r.code, r.stderr).toBe(0);
  expect(JSON.parse(r.stdout)).toEqual(expected);
});
