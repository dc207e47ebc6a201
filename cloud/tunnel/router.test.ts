import { expect, test } from 'bun:test';
import { PassThrough, type Duplex } from 'node:stream';
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import type { DirectDialer } from './direct-dial.ts';
import { createLeaseView } from './leases.ts';
import { createNodeDirectory } from './node-directory.ts';
import { createRouter, type Caller, type PeerDialer, type StreamOpener } from './router.ts';

const apiserver: Caller = { kind: 'apiserver', user: 'kube-apiserver-egress' };
const scrape: Caller = { kind: 'scrape', user: 'prometheus' };
const peer: Caller = { kind: 'peer', user: 'tether-hub' };

function setup() {
  const directory = createNodeDirectory();
  directory.setNode('edge-1', ['10.1.0.1']);
  directory.setNode('edge-2', ['10.2.0.1']);
  directory.setNode('edge-3', ['10.3.0.1']);
  directory.setNode('cloud-1', ['10.9.0.1']);
  const leases = createLeaseView();
  const lease = (node: string, holder: string) => leases.apply({ name: `tunnel-${node}`, node, holder, address: `${holder}:8132`, renewMs: Date.now(), acquireMs: 0, durationSeconds: 15, transitions: 0 });
  lease('edge-1', 'me');
  lease('edge-2', 'other');
  lease('edge-3', ''); // released: an edge node without a tunnel now
  const opened: string[] = [];
  const tunnels = new Map<string, StreamOpener>([
    ['edge-1', { open: async (h, p) => (opened.push(`${h}:${p}`), new PassThrough() as Duplex) }],
  ]);
  const forwarded: string[] = [];
  const forward: PeerDialer = async (address, host, port) => (forwarded.push(`${address}→${host}:${port}`), { ok: true, stream: new PassThrough(), route: 'forward' });
  const dialed: string[] = [];
  const direct: DirectDialer = {
    check: () => null,
    dial: async (h, p) => {
      dialed.push(`${h}:${p}`);
      if (h === '127.0.0.1') throw new TetherError(ErrorCode.TunnelDenied, 'direct dial 127.0.0.1:1: not allowed: 127.0.0.1 is in directDial.deny');
      return new PassThrough() as never;
    },
  };
  const route = createRouter({ directory, tunnelOf: (n) => tunnels.get(n), leases, replica: 'me', direct, forward, dialTimeoutMs: 1000 });
  return { route, opened, forwarded, dialed, tunnels };
}

test('an address of a node whose tunnel is held here opens a stream through it', async () => {
  const s = setup();
  const r = await s.route('10.1.0.1', 10250, apiserver);
  expect(r).toMatchObject({ ok: true, route: 'tunnel', node: 'edge-1' });
  expect(s.opened).toEqual(['10.1.0.1:10250']);
});

test("another replica's node is forwarded to it once; a peer's CONNECT is never forwarded again", async () => {
  const s = setup();
  expect(await s.route('10.2.0.1', 10250, apiserver)).toMatchObject({ ok: true, route: 'forward', node: 'edge-2' });
  expect(s.forwarded).toEqual(['other:8132→10.2.0.1:10250']);
  const again = await s.route('10.2.0.1', 10250, peer);
  expect(again).toMatchObject({ ok: false, status: 503, failure: 'no_tunnel' });
  expect(s.forwarded.length).toBe(1);
});

test('an edge node without a tunnel answers 503 at once, without dialing', async () => {
  const s = setup();
  expect(await s.route('10.3.0.1', 10250, apiserver)).toMatchObject({ ok: false, status: 503, failure: 'no_tunnel', reason: 'node edge-3 has no tunnel connected' });
  expect(s.dialed).toEqual([]);
});

test('a destination of no edge node is dialed directly for kube-apiserver only, and the policy refusal is a 403', async () => {
  const s = setup();
  expect(await s.route('10.9.0.1', 10250, apiserver)).toMatchObject({ ok: true, route: 'direct' });
  expect(await s.route('webhook.svc', 443, apiserver)).toMatchObject({ ok: true, route: 'direct' });
  expect(await s.route('127.0.0.1', 1, apiserver)).toMatchObject({ ok: false, status: 403, failure: 'not_allowed' });
  const r = await s.route('10.9.0.1', 10250, scrape);
  expect(r).toMatchObject({ ok: false, status: 403, failure: 'not_allowed' });
  expect(s.dialed).toEqual(['10.9.0.1:10250', 'webhook.svc:443', '127.0.0.1:1']);
});

test("the agent's refusal is a 403, its failed dial a 502, a timeout a 504, a closed tunnel a 503", async () => {
  const s = setup();
  const failWith = (e: Error) => s.tunnels.set('edge-1', { open: async () => Promise.reject(e) });
  const cases: [Error, number, string][] = [
    [new TetherError(ErrorCode.TunnelDial, 'open stream to 10.1.0.1:22: node edge-1 refuses', { cause: new TetherError(ErrorCode.TunnelDenied, 'x') }), 403, 'agent_refused'],
    [new TetherError(ErrorCode.TunnelDial, 'open stream to 10.1.0.1:10250: connect ECONNREFUSED'), 502, 'agent_dial'],
    [new TetherError(ErrorCode.TunnelTimeout, 'open stream: no answer within 1000 ms'), 504, 'timeout'],
    [new TetherError(ErrorCode.TunnelClosed, 'session closed'), 503, 'tunnel_closed'],
  ];
  for (const [e, status, failure] of cases) {
    failWith(e);
    expect(await s.route('10.1.0.1', 10250, apiserver)).toMatchObject({ ok: false, status, failure, node: 'edge-1', reason: e.message });
  }
});

test('an address two Node objects list goes through neither tunnel and is not dialed directly: 403 address_conflict', async () => {
  const s = setup();
  // edge-1 holds a tunnel here; a (compromised) edge-1 lists edge-2's and cloud-1's addresses in its Node status.
  const directory = createNodeDirectory();
  directory.setNode('edge-1', ['10.1.0.1', '10.2.0.1', '10.9.0.1']);
  directory.setNode('edge-2', ['10.2.0.1']);
  directory.setNode('cloud-1', ['10.9.0.1']);
  const dialed: string[] = [];
  const direct: DirectDialer = { check: () => null, dial: async (h, p) => (dialed.push(`${h}:${p}`), new PassThrough() as never) };
  const route = createRouter({ directory, tunnelOf: (n) => s.tunnels.get(n), replica: 'me', direct, forward: async () => ({ ok: false, status: 502, reason: 'no', failure: 'forward_failed' }), dialTimeoutMs: 1000 });
  for (const host of ['10.2.0.1', '10.9.0.1', '::ffff:10.9.0.1']) {
    const r = await route(host, 10250, apiserver);
    expect(r).toMatchObject({ ok: false, status: 403, failure: 'address_conflict' });
    if (!r.ok) expect(r.reason).toContain('is listed by several Node objects');
  }
  expect(s.opened).toEqual([]);
  expect(dialed).toEqual([]);
  expect(await route('10.1.0.1', 10250, apiserver)).toMatchObject({ ok: true, route: 'tunnel', node: 'edge-1' });
});
