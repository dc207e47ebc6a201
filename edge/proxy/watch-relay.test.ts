import { afterEach, describe, expect, test } from 'bun:test';
import { Agent, type IncomingMessage, type Server, type ServerResponse, createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMemoryLogger } from '../../shared/log.ts';
import { parseRequest, type ResourceRequestInfo } from '../../shared/kube/index.ts';
import type { ForwardTarget } from './forward.ts';
import { type RelaySink, relayWatch, resumeTarget } from './watch-relay.ts';

const ev = (type: string, name: string, rv: number) => `${JSON.stringify({ type, object: { kind: 'ConfigMap', apiVersion: 'v1', metadata: { name, namespace: 'ns', resourceVersion: String(rv) } } })}\n`;
const rvs = (lines: string[]) => lines.map((l) => `${JSON.parse(l).type}@${JSON.parse(l).object.metadata?.resourceVersion ?? JSON.parse(l).object.code}`);

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});
const listen = (s: Server) =>
  new Promise<string>((r) => {
    servers.push(s);
    s.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(s.address() as AddressInfo).port}`));
  });
const until = async (what: string, ok: () => boolean) => {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!ok()) throw new Error(`timed out waiting for ${what}`);
};

/** A fake apiserver whose watch answers are scripted per request; the relay through a proxy in front of it. */
async function rig(
  script: (n: number, req: IncomingMessage, res: ServerResponse) => void,
  serveLog: (leg: ResourceRequestInfo, sink: RelaySink) => void,
  path = '/api/v1/namespaces/ns/configmaps?watch=1&resourceVersion=10&allowWatchBookmarks=true',
  opts: { offline?: boolean } = {},
) {
  let n = 0;
  const upstreamUrls: string[] = [];
  const up = createServer((req, res) => {
    upstreamUrls.push(req.url ?? '');
    script(n++, req, res);
  });
  const upUrl = await listen(up);
  const target: ForwardTarget = { url: new URL(upUrl), agent: new Agent(), bearerAgent: new Agent() };
  const state = { healthy: !opts.offline, tracked: new Set<AbortController>() };
  const upstreams = {
    pick: () => (state.healthy ? target : undefined),
    reportFailure: () => {},
    track: (_t: ForwardTarget, a: AbortController) => (state.tracked.add(a), () => void state.tracked.delete(a)),
  };
  const log = createMemoryLogger();
  const done: Promise<void>[] = [];
  const proxy = createServer((req, res) => {
    const info = parseRequest('GET', req.url ?? '/', {}) as ResourceRequestInfo;
    const start = opts.offline ? ('log' as const) : { upstream: target, signal: new AbortController().signal };
    done.push(relayWatch({ info, url: req.url ?? '/', headers: req.headers, upstreams, tapFor: () => undefined, serveLog, log, retryMs: 60_000 }, res, start));
  });
  const proxyUrl = await listen(proxy);
  const lines: string[] = [];
  let ended = false;
  const client = get(`${proxyUrl}${path}`, (res) => {
    let partial = '';
    res.on('data', (d: Buffer) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop() ?? '';
      lines.push(...parts.filter((l) => l.trim()));
    });
    res.on('end', () => (ended = true));
  });
  client.on('error', () => {});
  /** The pool turning unhealthy: tracked upstream watches are aborted. */
  const cut = () => {
    state.healthy = false;
    for (const a of state.tracked) a.abort();
  };
  return { lines, isEnded: () => ended, upstreamUrls, state, cut, client, done };
}

describe('watch relay', () => {
  test('a WatchList opened offline is answered by the log as sent: initial events, the initial-events-end BOOKMARK, then live events', async () => {
    const legs: ResourceRequestInfo[] = [];
    let sink: RelaySink | undefined;
    const r = await rig(
      () => {
        throw new Error('offline: no upstream request');
      },
      (leg, s) => {
        legs.push(leg);
        sink = s;
        s.write(ev('ADDED', 'a', 11));
        s.write(`${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'ConfigMap', apiVersion: 'v1', metadata: { resourceVersion: '11', annotations: { 'k8s.io/initial-events-end': 'true' } } } })}\n`);
      },
      '/api/v1/namespaces/ns/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true',
      { offline: true },
    );
    await until('initial events', () => r.lines.length === 2);
    expect(legs).toHaveLength(1);
    expect(legs[0]!.sendInitialEvents).toBe(true);
    expect(legs[0]!.resourceVersionMatch).toBe('NotOlderThan');
    sink!.write(ev('MODIFIED', 'a', 12));
    await until('live event', () => r.lines.length === 3);
    expect(rvs(r.lines)).toEqual(['ADDED@11', 'BOOKMARK@11', 'MODIFIED@12']);
    expect(r.upstreamUrls).toEqual([]);
    r.client.destroy();
  });

  test('a watch without a resourceVersion opened offline gets the log\'s ADDED events for what exists', async () => {
    const legs: ResourceRequestInfo[] = [];
    const r = await rig(
      () => {
        throw new Error('offline: no upstream request');
      },
      (leg, s) => {
        legs.push(leg);
        s.write(ev('ADDED', 'a', 11));
      },
      '/api/v1/namespaces/ns/configmaps?watch=1&allowWatchBookmarks=true',
      { offline: true },
    );
    await until('ADDED', () => r.lines.length === 1);
    expect(legs[0]!.resourceVersion).toBeUndefined();
    expect(rvs(r.lines)).toEqual(['ADDED@11']);
    r.client.destroy();
  });

  test('a watch lives through a cut and a heal: upstream, then the log after the last delivered version, then upstream from there', async () => {
    let sink: RelaySink | undefined;
    const logLegs: (string | undefined)[] = [];
    let breakFirst: (() => void) | undefined;
    const r = await rig(
      (n, _req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        if (n === 0) {
          res.write(ev('ADDED', 'a', 11));
          res.write(ev('MODIFIED', 'a', 12));
          breakFirst = () => res.destroy();
        } else {
          res.write(ev('MODIFIED', 'a', 14));
          res.end();
        }
      },
      (leg, s) => {
        logLegs.push(leg.resourceVersion);
        sink = s;
        s.write(ev('MODIFIED', 'a', 13));
      },
    );
    await until('two upstream events', () => r.lines.length === 2);
    r.state.healthy = false;
    breakFirst!();
    await until('the log leg', () => r.lines.length === 3);
    expect(logLegs).toEqual(['12']);
    expect(r.isEnded()).toBe(false);
    r.state.healthy = true;
    sink!.end(); // the bus ends offline watches: the upstream is back
    await until('the stream ends with the upstream', r.isEnded);
    expect(rvs(r.lines)).toEqual(['ADDED@11', 'MODIFIED@12', 'MODIFIED@13', 'MODIFIED@14']);
    expect(new URLSearchParams(r.upstreamUrls[1]!.split('?')[1]).get('resourceVersion')).toBe('13');
    expect(new URLSearchParams(r.upstreamUrls[1]!.split('?')[1]).get('allowWatchBookmarks')).toBe('true');
  });

  test('BOOKMARKs move the resume point; a re-watch the pool aborts (a cut) goes back to the log; the client leaving stops all', async () => {
    const logLegs: (string | undefined)[] = [];
    let sink: RelaySink | undefined;
    let breakFirst: (() => void) | undefined;
    const r = await rig(
      (n, _req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'ConfigMap', apiVersion: 'v1', metadata: { resourceVersion: String(20 + n) } } })}\n`);
        if (n === 0) breakFirst = () => res.destroy();
      },
      (leg, s) => {
        logLegs.push(leg.resourceVersion);
        sink = s;
      },
    );
    await until('the bookmark', () => r.lines.length === 1);
    r.state.healthy = false;
    breakFirst!();
    await until('the log leg', () => logLegs.length === 1);
    expect(logLegs).toEqual(['20']);
    r.state.healthy = true;
    sink!.end();
    await until('the re-watch and its bookmark', () => r.lines.length === 2 && r.state.tracked.size === 1);
    r.cut();
    await until('the log leg again', () => logLegs.length === 2);
    expect(logLegs).toEqual(['20', '21']);
    expect(r.isEnded()).toBe(false);
    r.client.destroy();
    await Promise.all(r.done);
    expect(r.state.tracked.size).toBe(0);
  });

  test('a re-watch answered 410 ends the stream with the ERROR event the apiserver sends', async () => {
    let sink: RelaySink | undefined;
    let breakFirst: (() => void) | undefined;
    const gone = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'too old resource version: 12 (40)', reason: 'Expired', code: 410 };
    const r = await rig(
      (n, _req, res) => {
        if (n === 0) {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write(ev('ADDED', 'a', 12));
          breakFirst = () => res.destroy();
        } else {
          res.writeHead(410, { 'content-type': 'application/json' });
          res.end(JSON.stringify(gone));
        }
      },
      (_leg, s) => (sink = s),
    );
    await until('the event', () => r.lines.length === 1);
    r.state.healthy = false;
    breakFirst!();
    await until('the log leg', () => sink !== undefined);
    r.state.healthy = true;
    sink!.end();
    await until('the end', r.isEnded);
    expect(r.lines.map((l) => JSON.parse(l))).toEqual([JSON.parse(ev('ADDED', 'a', 12)), { type: 'ERROR', object: gone }]);
  });

  test('an ERROR event in the stream is passed on and nothing is resumed after it', async () => {
    let logCalls = 0;
    const r = await rig(
      (_n, _req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } })}\n`);
        setTimeout(() => res.destroy(), 20);
      },
      () => void logCalls++,
    );
    await until('the end', r.isEnded);
    expect(rvs(r.lines)).toEqual(['ERROR@410']);
    expect(logCalls).toBe(0);
  });

  test('the client going away during the log leg closes the log subscription; timeoutSeconds ends the stream', async () => {
    let breakFirst: (() => void) | undefined;
    let closed = 0;
    const r = await rig(
      (_n, _req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(ev('ADDED', 'a', 11));
        breakFirst = () => res.destroy();
      },
      (_leg, s) => s.onClose(() => void closed++),
    );
    await until('the event', () => r.lines.length === 1);
    r.state.healthy = false;
    breakFirst!();
    await until('the log leg', () => r.upstreamUrls.length === 1 && closed === 0 && r.done.length === 1);
    await new Promise((res) => setTimeout(res, 50));
    r.client.destroy();
    await Promise.all(r.done);
    expect(closed).toBe(1);

    let logClosed = 0;
    const t = await rig(
      (_n, _req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(ev('ADDED', 'a', 11));
        setTimeout(() => res.destroy(), 20);
      },
      (_leg, s) => s.onClose(() => void logClosed++),
      '/api/v1/namespaces/ns/configmaps?watch=1&resourceVersion=10&timeoutSeconds=1',
    );
    t.state.healthy = false;
    await until('the stream ends at its timeout', t.isEnded);
    expect(logClosed).toBe(1);
  });

  test('a re-watch asks for the same selectors from the last version, without initial events, for what is left of the timeout', () => {
    expect(resumeTarget('/api/v1/pods?watch=1&labelSelector=a%3Db&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=300', '42', 120)).toBe(
      '/api/v1/pods?watch=1&labelSelector=a%3Db&timeoutSeconds=120&resourceVersion=42',
    );
  });
});
