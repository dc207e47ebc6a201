import { afterAll, afterEach, beforeAll, expect, test } from 'bun:test';
import http from 'node:http';
import https from 'node:https';
import { createMemoryLogger } from '../../shared/log.ts';
import { type TestPki, createTestPki } from '../../test/support/pki.ts';
import { createUpstreamPool, type UpstreamPool } from './pool.ts';
import { createUpstreamTargets, type UpstreamLinks } from './targets.ts';
import { createTrafficMeter } from './traffic.ts';
import type { UpstreamTls } from './tls.ts';

let pki: TestPki;
let first: { cert: string; key: string };
let second: { cert: string; key: string };
const pools: UpstreamPool[] = [];
beforeAll(async () => {
  pki = await createTestPki();
  const a = await pki.node('edge-1');
  const b = await pki.node('edge-1');
  first = { cert: a.certPem, key: a.keyPem };
  second = { cert: b.certPem, key: b.keyPem };
});
afterAll(() => pki.remove());
afterEach(() => {
  for (const p of pools.splice(0)) p.close();
});

const refused = () => Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:6443'), { code: 'ECONNREFUSED' });

/** A pool whose probes always succeed (no network): health changes only through what the targets report. */
async function rig(servers: string[], links?: UpstreamLinks) {
  const tls: UpstreamTls = { ca: pki.caPem, ...first };
  const meter = createTrafficMeter();
  const pool = createUpstreamPool({ servers, lbMode: 'priority', tls, log: createMemoryLogger('error'), probe: async () => {}, retryMinMs: 60_000, createAgent: links?.createAgent });
  pools.push(pool);
  await pool.ready;
  const targets = createUpstreamTargets({ pool, meter, tls, ...(links ? { links } : {}) });
  return { pool, meter, tls, targets };
}

test("one target per upstream, handed out by pick; failures and tracking reach that upstream, a stranger's are ignored", async () => {
  const { pool, targets } = await rig(['https://10.0.0.1:6443', 'https://10.0.0.2:6443']);
  const [ta, tb] = targets.all();
  expect(targets.pick()).toBe(ta!);
  expect(targets.pick()).toBe(ta!);
  expect(ta!.url.href).toBe('https://10.0.0.1:6443/');
  const watch = new AbortController();
  targets.track(ta!, watch);
  const stranger = { ...ta! };
  targets.reportFailure(stranger, refused());
  expect(pool.all()[0]!.healthy).toBe(true);
  const strangers = new AbortController();
  targets.track(stranger, strangers);
  targets.reportFailure(ta!, refused());
  expect(pool.all()[0]!.healthy).toBe(false);
  expect(watch.signal.aborted).toBe(true);
  expect(strangers.signal.aborted).toBe(false);
  expect(targets.pick()).toBe(tb!);
  expect(targets.online).toBe(true);
  targets.reportFailure(tb!, refused());
  expect(targets.pick()).toBeUndefined();
  expect(targets.online).toBe(false);
});

test("a target's exchange counts bytes by kind (heads and bodies of answers as received), and a broken answer is a failure of its upstream", async () => {
  const { pool, meter, targets } = await rig(['https://10.0.0.1:6443']);
  const t = targets.pick()!;
  const x = t.exchange('discovery');
  x.sent(100);
  x.answered(40);
  x.received(500);
  x.end();
  const w = t.exchange('watch');
  w.sent(10);
  w.received(7);
  expect(meter.total().sent).toMatchObject({ discovery: 100, watch: 10, request: 0 });
  expect(meter.total().received).toMatchObject({ discovery: 540, watch: 7 });
  w.broken(refused());
  expect(pool.all()[0]!.healthy).toBe(false);
  expect(pool.all()[0]!.lastError).toContain('ECONNREFUSED');
});

test("direct links: the node's agent from the pool (new on setTls), a bearer agent without the client certificate, upgrades on TLS with or without the identity", async () => {
  const { pool, tls, targets } = await rig(['https://10.0.0.1:6443', 'http://10.0.0.3:8080']);
  const [t, plain] = targets.all();
  expect(t!.agent).toBe(pool.all()[0]!.agent);
  expect(t!.bearerAgent).toBeInstanceOf(https.Agent);
  expect(t!.bearerAgent).not.toBe(t!.agent);
  expect((t!.bearerAgent as https.Agent).options.cert).toBeUndefined();
  expect((t!.bearerAgent as https.Agent).options.ca).toBe(pki.caPem);
  expect(plain!.bearerAgent).toBeInstanceOf(http.Agent);
  expect(plain!.bearerAgent).not.toBeInstanceOf(https.Agent);
  expect(t!.sensitiveAgent).toBeUndefined();
  expect(t!.connect).toBeUndefined();
  expect(t!.tlsOptions(false)).toEqual({ ca: pki.caPem });
  expect(t!.tlsOptions(true)).toEqual({ ca: pki.caPem, ...first });

  const before = t!.agent;
  targets.setTls({ ca: Buffer.from(pki.caPem), ...second });
  expect(t!.agent).not.toBe(before);
  expect(t!.agent).toBe(pool.all()[0]!.agent);
  // The shared material (the tunnel reads it per dial) has the new pair; the CA stays as read at start.
  expect(tls).toEqual({ ca: pki.caPem, ...second });
  expect(t!.tlsOptions(true)).toEqual({ ca: pki.caPem, ...second });
});

test('certificate renewal: https upstreams, the healthy one first; with links that renew on the upstream, every upstream and its own agent', async () => {
  const direct = await rig(['https://10.0.0.1:6443', 'http://10.0.0.3:8080', 'https://10.0.0.2:6443']);
  expect(direct.targets.renewalServers()).toEqual(['https://10.0.0.1:6443/', 'https://10.0.0.2:6443/']);
  direct.targets.reportFailure(direct.targets.all()[0]!, refused());
  expect(direct.targets.renewalServers()).toEqual(['http://10.0.0.3:8080/', 'https://10.0.0.1:6443/', 'https://10.0.0.2:6443/']);
  expect(direct.targets.renewalAgent).toBeUndefined();

  const made: http.Agent[] = [];
  const sensitive = new http.Agent();
  const links: UpstreamLinks = {
    createAgent: () => (made.push(new http.Agent()), made.at(-1)!),
    bearerAgent: () => new http.Agent(),
    sensitiveAgent: sensitive,
    connect: () => {
      throw new Error('not used here');
    },
    renewOnUpstream: true,
  };
  const hub = await rig(['http://kube-apiserver.tether/'], links);
  const t = hub.targets.pick()!;
  expect(t.agent).toBe(made[0]!);
  expect(t.sensitiveAgent).toBe(sensitive);
  expect(t.connect).toBe(links.connect!);
  expect(hub.targets.renewalServers()).toEqual(['http://kube-apiserver.tether/']);
  hub.targets.reportFailure(t, refused());
  expect(hub.targets.renewalServers()).toEqual(['http://kube-apiserver.tether/']);
  expect(hub.targets.renewalAgent?.()).toBe(made[0]!);
});

test('close destroys the bearer and sensitive agents the targets hold', async () => {
  const sensitive = new http.Agent({ keepAlive: true });
  const bearers: http.Agent[] = [];
  const { targets } = await rig(['http://10.0.0.1:8080', 'http://10.0.0.1:8080/'], {
    bearerAgent: () => (bearers.push(new http.Agent({ keepAlive: true })), bearers.at(-1)!),
    sensitiveAgent: sensitive,
  });
  // The same URL twice is one bearer agent.
  expect(bearers).toHaveLength(1);
  const destroyed: string[] = [];
  bearers[0]!.destroy = () => void destroyed.push('bearer');
  sensitive.destroy = () => void destroyed.push('sensitive');
  targets.close();
  expect(destroyed).toEqual(['bearer', 'sensitive']);
});
