/**
 * The one-way firewall on a real edge site: outbound connections from the site work both ways,
 * inbound ones are dropped (a connect from the root namespace gets no answer), and allowInbound
 * undoes it. Needs root.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createServer, connect, type Server } from 'node:net';
import { createEdgeSite, type EdgeSite } from './netns.ts';
import { allowInbound, allowOutbound, allowOutboundOnly, blockInbound } from './one-way-firewall.ts';

const isRoot = process.getuid?.() === 0;

/** "connected" or "no answer" (nothing came back before the deadline: SYN dropped). */
function tryConnect(host: string, port: number, ms: number): Promise<'connected' | 'no answer' | string> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve('no answer');
    }, ms);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      resolve(e.message);
    });
  });
}

describe.skipIf(!isRoot)('one-way firewall', () => {
  let site: EdgeSite;
  let rootServer: Server;
  let rootPort = 0;
  const sitePort = 47_123;

  beforeAll(async () => {
    site = await createEdgeSite(`fw-${process.pid}`);
    rootServer = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => rootServer.listen(0, site.gateway, r));
    rootPort = (rootServer.address() as { port: number }).port;
    // A listener inside the site (the kubelet's place).
    const child = site.spawn([process.execPath, '-e', `require('net').createServer((s) => s.end('site\\n')).listen(${sitePort}, '${site.address}', () => console.log('ready'))`]);
    await new Promise<void>((r) => child.stdout!.once('data', () => r()));
  });

  afterAll(async () => {
    rootServer?.close();
    await site?.destroy();
  });

  test('before blocking, the root namespace can connect into the site', async () => {
    expect(await tryConnect(site.address, sitePort, 3000)).toBe('connected');
  });

  test('blocked: inbound connects get no answer, while the site still connects out and data flows both ways', async () => {
    await blockInbound(site);
    expect(await tryConnect(site.address, sitePort, 1500)).toBe('no answer');
    const script = `const s=require('net').connect(${rootPort}, '${site.gateway}', () => s.write('ping'));s.on('data', (d) => { console.log(String(d)); s.end(); });`;
    const r = await site.exec([process.execPath, '-e', script], { timeoutMs: 10_000 });
    expect(r.stdout.trim()).toBe('ping');
  });

  test('allowInbound lets inbound connections in again', async () => {
    await allowInbound(site);
    expect(await tryConnect(site.address, sitePort, 3000)).toBe('connected');
  });

  test('allowOutboundOnly: the site reaches one port of the cloud and no other; allowOutbound undoes it', async () => {
    const other = createServer((c) => c.end('other\n'));
    await new Promise<void>((r) => other.listen(0, site.gateway, r));
    const otherPort = (other.address() as { port: number }).port;
    const probe = (port: number) =>
      site.exec([process.execPath, '-e', `const s=require('net').connect(${port}, '${site.gateway}', () => { console.log('connected'); s.destroy(); }); s.on('error', (e) => console.log(e.message)); setTimeout(() => { console.log('no answer'); process.exit(0); }, 1500);`], { timeoutMs: 10_000 });
    try {
      await allowOutboundOnly(site, rootPort);
      expect((await probe(rootPort)).stdout.trim().split('\n')[0]).toBe('connected');
      expect((await probe(otherPort)).stdout.trim().split('\n')[0]).toBe('no answer');
      await allowOutboundOnly(site, [otherPort + 1, otherPort]); // replaces the filter: two ports, the first unused
      expect((await probe(otherPort)).stdout.trim().split('\n')[0]).toBe('connected');
      expect((await probe(rootPort)).stdout.trim().split('\n')[0]).toBe('no answer');
      await allowOutbound(site);
      expect((await probe(rootPort)).stdout.trim().split('\n')[0]).toBe('connected');
      expect((await probe(otherPort)).stdout.trim().split('\n')[0]).toBe('connected');
    } finally {
      other.close();
    }
  }, 60_000);
});
