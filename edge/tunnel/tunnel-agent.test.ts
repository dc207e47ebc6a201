/**
 * The tunnel agent's api streams (upstream via the hub) against two hub replicas on 127.0.0.1
 * (shared/tunnel's websocket transport, hub sessions that echo api streams): opening on the current
 * session, moving to the other replica when one drains, refusing at once with no session, and the
 * api byte counters across sessions; how a dial that failed is told from the hub refusing it.
 */
import { afterEach, expect, test } from 'bun:test';
import type { Duplex } from 'node:stream';
import { PassThrough } from 'node:stream';
import { ErrorCode, isTetherError } from '../../shared/errors.ts';
import { createMemoryLogger } from '../../shared/log.ts';
import { Registry } from '../../shared/metrics.ts';
import { startWsServer } from '../../test/support/tunnel-pairs.ts';
import { createTunnelSession, type OpenInfo, type TunnelSession } from '../../shared/tunnel/session.ts';
import { type TunnelAgent, type TunnelSessionEvent, startTunnelAgent } from './tunnel-agent.ts';
import { waitFor } from '../../test/support/wait.ts';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** A hub replica: accepts tunnels, echoes api streams, remembers what was opened. */
async function replica(name: string) {
  const srv = await startWsServer();
  const sessions: TunnelSession[] = [];
  const opens: OpenInfo[] = [];
  let stopped = false;
  void (async () => {
    while (!stopped) {
      const transport = await srv.next();
      if (stopped) return transport.close(1000, 'stopped');
      sessions.push(
        createTunnelSession({
          transport,
          role: 'hub',
          log: createMemoryLogger('info'),
          onOpen: async (host, port, info) => {
            if (host !== 'kube-apiserver' || port !== 0) throw new Error('api streams only');
            opens.push(info);
            return new PassThrough();
          },
        }),
      );
    }
  })();
  const r = {
    name,
    url: srv.url,
    sessions,
    opens,
    async stop() {
      stopped = true;
      for (const s of sessions) s.close('replica stopped');
      await srv.close();
    },
  };
  cleanup.push(() => r.stop());
  return r;
}

function agentFor(urls: string[], registry?: Registry): TunnelAgent & { events: TunnelSessionEvent[] } {
  const a = startTunnelAgent({ hubUrls: urls, nodeName: 'edge-1', addresses: ['127.0.0.1'], tls: () => ({}), log: createMemoryLogger('info'), registry, backoff: { initialMs: 50, maxMs: 100 } });
  const events: TunnelSessionEvent[] = [];
  a.onSession((ev) => events.push(ev));
  cleanup.push(() => a.close());
  return Object.assign(a, { events });
}

async function echo(d: Duplex, text: string): Promise<string> {
  const chunks: Buffer[] = [];
  d.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise<void>((resolve, reject) => {
    d.once('end', resolve);
    d.once('error', reject);
  });
  d.end(text);
  await ended;
  return Buffer.concat(chunks).toString();
}

test('openApiStream opens a compressed api stream kube-apiserver:0 on the current session, and the api bytes are counted', async () => {
  const a = await replica('a');
  const registry = new Registry();
  const agent = agentFor([a.url], registry);
  await waitFor('connected', () => agent.connected);
  expect(agent.events.map((e) => e.state)).toEqual(['up']);
  const text = JSON.stringify({ kind: 'PodList', items: Array.from({ length: 50 }, (_, i) => ({ metadata: { name: `pod-${i}`, namespace: 'default' } })) });
  expect(await echo(await agent.openApiStream(), text)).toBe(text);
  expect(a.opens).toEqual([{ compress: true }]);
  const bytes = agent.apiBytes();
  expect(bytes.rawOut).toBe(text.length);
  expect(bytes.rawIn).toBe(text.length);
  expect(bytes.wireOut).toBeGreaterThan(0);
  expect(bytes.wireOut).toBeLessThan(bytes.rawOut);
  expect(agent.status().api).toEqual(bytes);
  expect(agent.status().compression).toBe('deflate');
  const metrics = registry.render();
  expect(metrics).toContain(`tether_tunnel_api_bytes_total{direction="out",stage="raw"} ${text.length}`);
  expect(metrics).toContain(`tether_tunnel_api_bytes_total{direction="out",stage="wire"} ${bytes.wireOut}`);
  expect(metrics).toContain('tether_tunnel_api_streams_total{result="ok"} 1');
});

test('when the hub drains the session, the next api stream opens on the other replica, and the counters keep what the first session moved', async () => {
  const a = await replica('a');
  const b = await replica('b');
  const agent = agentFor([a.url, b.url]);
  await waitFor('connected to a', () => agent.connected && a.sessions.length === 1);
  expect(await echo(await agent.openApiStream(), 'first')).toBe('first');
  const before = agent.apiBytes();
  const draining = new Promise<void>((resolve) => agent.onSession((ev) => ev.state === 'draining' && resolve()));
  a.sessions[0]!.drain('replica stopping');
  await draining;
  // Asked at once, while the agent is still dialing b: it waits for b instead of failing.
  expect(agent.connected).toBe(false);
  const d = await agent.openApiStream();
  expect(b.opens).toHaveLength(1);
  expect(await echo(d, 'second')).toBe('second');
  expect(agent.status().hub).toBe(b.url);
  const after = agent.apiBytes();
  expect(after.rawOut).toBe(before.rawOut + 'second'.length);
  await a.stop();
  await waitFor('the drained session ended', () => a.sessions[0]!.state === 'closed');
  expect(agent.events.map((e) => e.state)).toEqual(['up', 'draining', 'up']); // a drained session's end is not a "down"
  expect(agent.apiBytes().rawOut).toBe(after.rawOut); // a session's bytes outlive it
});

test('with no session openApiStream rejects at once with E_TUNNEL_CLOSED (the pool treats it as a refused connection)', async () => {
  const a = await replica('a');
  const url = a.url;
  await a.stop(); // nothing listens there any more
  const agent = agentFor([url]);
  const err = await agent.openApiStream().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isTetherError(err, ErrorCode.TunnelClosed)).toBe(true);
  expect(String((err as Error).message)).toStartWith('open api stream: no tunnel session to the hub');
});

test('the session ends → a down event; the agent reconnects and says up again', async () => {
  const a = await replica('a');
  const agent = agentFor([a.url]);
  await waitFor('connected', () => agent.connected);
  a.sessions[0]!.close('link cut');
  await waitFor('down', () => agent.events.some((e) => e.state === 'down'));
  await waitFor('up again', () => agent.events.filter((e) => e.state === 'up').length === 2);
  expect(agent.events.map((e) => e.state)).toEqual(['up', 'down', 'up']);
  expect(await echo(await agent.openApiStream(), 'again')).toBe('again');
});

test('a 4xx at the upgrade is logged as the hub refusing the agent, a hub that does not answer as a failed dial', async () => {
  const refusing = await startWsServer({ upgrade: { verify: () => ({ status: 401, reason: 'token rejected' }) } });
  cleanup.push(() => refusing.close());
  const log = createMemoryLogger('info');
  const a = startTunnelAgent({ hubUrls: [refusing.url], nodeName: 'edge-1', addresses: ['127.0.0.1'], tls: () => ({}), log, backoff: { initialMs: 50, maxMs: 100 } });
  cleanup.push(() => a.close());
  await waitFor('a refusal logged', () => log.lines.some((l) => l.msg === 'the hub refused the tunnel'));
  expect(log.lines.filter((l) => l.msg === 'dial hub failed')).toEqual([]);
  expect(a.status().lastError).toContain('refused: 401 Unauthorized: token rejected');

  // A port nobody listens on: the dial fails, and that is not a refusal.
  const gone = await startWsServer();
  await gone.close();
  const log2 = createMemoryLogger('info');
  const b = startTunnelAgent({ hubUrls: [gone.url], nodeName: 'edge-1', addresses: ['127.0.0.1'], tls: () => ({}), log: log2, backoff: { initialMs: 50, maxMs: 100 } });
  cleanup.push(() => b.close());
  await waitFor('a failed dial logged', () => log2.lines.some((l) => l.msg === 'dial hub failed'));
  expect(log2.lines.filter((l) => l.msg === 'the hub refused the tunnel')).toEqual([]);
});
