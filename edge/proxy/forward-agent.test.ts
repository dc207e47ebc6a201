/**
 * Which connections a forwarded request takes: the node's, the bearer ones, or — where the node's
 * connections compress in a shared context (via the hub) — the separate ones for answers that carry
 * credentials (Secrets, service-account tokens), so no secret is compressed beside bytes another
 * client chose.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { Agent, type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { carriesCredentials, forward, type ForwardTarget } from './forward.ts';

class CountingAgent extends Agent {
  used = 0;
  constructor(opts: ConstructorParameters<typeof Agent>[0]) {
    super(opts);
    // addRequest is how node:http (and Bun's) hand a request to its agent; it is not in the public typings.
    const self = this as unknown as { addRequest: (...a: unknown[]) => void };
    const inner = self.addRequest.bind(this);
    self.addRequest = (...a: unknown[]) => {
      this.used++;
      inner(...a);
    };
  }
}

describe('carriesCredentials', () => {
  test.each([
    ['/api/v1/namespaces/a/secrets/s', true],
    ['/api/v1/namespaces/a/secrets?watch=1&fieldSelector=metadata.name%3Ds', true],
    ['/api/v1/secrets', true],
    ['/api/v1/namespaces/a/serviceaccounts/default/token', true],
    ['/api/v1/namespaces/a/configmaps/c', false],
    ['/api/v1/namespaces/a/serviceaccounts/default', false],
    ['/api/v1/namespaces/secrets/pods', false],
    ['/apis/example.com/v1/secrets', false],
  ])('%s → %p', (path, expected) => {
    expect(carriesCredentials(path)).toBe(expected);
  });
});

describe('forward picks the connections', () => {
  let upstream: Server;
  let front: Server;
  let url: URL;
  const node = new CountingAgent({ keepAlive: true });
  const bearer = new CountingAgent({ keepAlive: true });
  const sensitive = new CountingAgent({ keepAlive: true });
  beforeAll(async () => {
    upstream = createServer((_req, res) => res.end('{}'));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    url = new URL(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`);
    const target: ForwardTarget = { url, agent: node, bearerAgent: bearer, sensitiveAgent: sensitive };
    front = createServer((req: IncomingMessage, res: ServerResponse) => void forward(target, req, res));
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  });
  afterAll(() => {
    upstream.close();
    front.close();
    for (const a of [node, bearer, sensitive]) a.destroy();
  });
  const get = async (path: string, headers: Record<string, string> = {}) =>
    (await fetch(`http://127.0.0.1:${(front.address() as AddressInfo).port}${path}`, { headers })).text();

  test("the node's request for a ConfigMap takes the node's connections", async () => {
    const before = [node.used, bearer.used, sensitive.used];
    await get('/api/v1/namespaces/a/configmaps/c');
    expect([node.used - before[0]!, bearer.used - before[1]!, sensitive.used - before[2]!]).toEqual([1, 0, 0]);
  });

  test("the node's request for a Secret takes the separate connections", async () => {
    const before = [node.used, bearer.used, sensitive.used];
    await get('/api/v1/namespaces/a/secrets/s');
    await get('/api/v1/namespaces/a/serviceaccounts/default/token');
    expect([node.used - before[0]!, bearer.used - before[1]!, sensitive.used - before[2]!]).toEqual([0, 0, 2]);
  });

  test('a request with a bearer token takes the bearer connections, or the separate ones for Secrets', async () => {
    const before = [node.used, bearer.used, sensitive.used];
    await get('/api/v1/namespaces/a/configmaps/c', { authorization: 'Bearer t' });
    await get('/api/v1/namespaces/a/secrets/s', { authorization: 'Bearer t' });
    expect([node.used - before[0]!, bearer.used - before[1]!, sensitive.used - before[2]!]).toEqual([0, 1, 1]);
  });
});
