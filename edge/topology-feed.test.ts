import { describe, expect, test } from 'bun:test';
import { createMemoryLogger } from '../shared/log.ts';
import { Registry } from '../shared/metrics.ts';
import type { CallResult } from './upstream/calls.ts';
import { openDb } from './store/db.bun.ts';
import { createStore } from './store/index.ts';
import { FORBIDDEN_RECHECK_MS, NODEPOOLS_GVR, type PoolSource, createTopology } from './topology-feed.ts';

const POOLS = '/apis/apps.tether.dev/v1alpha1/nodepools';

/** A scripted apiserver for NodePools, a manual clock and waits that the test releases. */
function rig() {
  const log = createMemoryLogger();
  const registry = new Registry();
  let clock = 1_000_000;
  const store = createStore(openDb({ path: ':memory:' }));
  const topology = createTopology({
    nodeName: 'edge-1',
    store,
    log,
    filtered: registry.counter('f_total', 'f'),
    reemitted: registry.counter('r_total', 'r'),
    now: () => clock,
  });
  const calls: string[] = [];
  const watches: { path: string; onLine: (l: string) => void; end: (status: number) => void }[] = [];
  const waits: { ms: number; release: (go: boolean) => void }[] = [];
  let listAnswer: () => CallResult = () => ({ status: 200, body: '{"metadata":{"resourceVersion":"10"},"items":[]}', headers: {} }) as unknown as CallResult;
  let online = true;
  const source: PoolSource = {
    call: async (method, path) => {
      calls.push(`${method} ${path}`);
      return listAnswer();
    },
    watch(path, onLine) {
      let end!: (s: number) => void;
      const done = new Promise<{ status: number }>((r) => (end = (status) => r({ status })));
      watches.push({ path, onLine, end });
      return { done, stop: () => end(0) };
    },
    online: () => online,
    wait: (ms, signal) =>
      new Promise<boolean>((resolve) => {
        if (signal.aborted) return resolve(false);
        waits.push({ ms, release: resolve });
        signal.addEventListener('abort', () => resolve(false), { once: true });
      }),
  };
  const settle = async () => {
    for (let i = 0; i < 20; i++) await Promise.resolve();
    await new Promise((r) => setTimeout(r, 0));
  };
  return {
    topology, store, log, calls, watches, waits, source, settle,
    advance: (ms: number) => (clock += ms),
    setList: (f: () => { status: number; body: string }) => (listAnswer = f as never),
    setOnline: (v: boolean) => (online = v),
  };
}

const pool = (name: string, rv: string, nodes: string[]) => ({
  apiVersion: 'apps.tether.dev/v1alpha1', kind: 'NodePool', metadata: { name, resourceVersion: rv }, spec: { nodes },
});

describe('NodePools followed by a list-watch', () => {
  test('one LIST, then a watch from its resourceVersion that resumes from the last event, relisting only on 410', async () => {
    const r = rig();
    r.setList(() => ({ status: 200, body: JSON.stringify({ metadata: { resourceVersion: '10' }, items: [pool('a', '9', ['edge-1'])] }) }));
    const f = r.topology.followPools(r.source);
    await r.settle();
    expect(r.calls).toEqual([`GET ${POOLS}?resourceVersion=0`]);
    expect(r.watches).toHaveLength(1);
    expect(r.watches[0]!.path).toContain('resourceVersion=10');
    expect(r.store.objects.list(NODEPOOLS_GVR).map((o) => o.metadata.name)).toEqual(['a']);
    // An event, a bookmark, then the apiserver's timeout: the watch resumes from the bookmark, no LIST.
    r.watches[0]!.onLine(JSON.stringify({ type: 'ADDED', object: pool('b', '11', ['edge-2']) }));
    r.watches[0]!.onLine(JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '15' } } }));
    r.watches[0]!.end(200);
    await r.settle();
    expect(r.store.objects.list(NODEPOOLS_GVR).map((o) => o.metadata.name).sort()).toEqual(['a', 'b']);
    expect(r.watches).toHaveLength(2);
    expect(r.watches[1]!.path).toContain('resourceVersion=15');
    expect(r.calls).toHaveLength(1);
    // 410 Gone as an ERROR event: a relist.
    r.watches[1]!.onLine(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } }));
    await r.settle();
    expect(r.calls).toHaveLength(2);
    expect(r.watches).toHaveLength(3);
    f.stop();
    await f.done;
  });

  test('a 403 on the LIST: nothing more is asked for 10 minutes, logged once; then it asks again', async () => {
    const r = rig();
    r.setList(() => ({ status: 403, body: '{"kind":"Status","code":403,"reason":"Forbidden"}' }));
    const f = r.topology.followPools(r.source);
    await r.settle();
    expect(r.calls).toHaveLength(1);
    expect(r.watches).toHaveLength(0);
    expect(r.waits.map((w) => w.ms)).toEqual([FORBIDDEN_RECHECK_MS]);
    // The 10 minutes pass: one more LIST, again 403; still one log line.
    r.advance(FORBIDDEN_RECHECK_MS);
    r.waits.shift()!.release(true);
    await r.settle();
    expect(r.calls).toHaveLength(2);
    expect(r.waits.map((w) => w.ms)).toEqual([FORBIDDEN_RECHECK_MS]);
    expect(r.log.lines.filter((l) => String(l.msg).includes('(403)'))).toHaveLength(1);
    f.stop();
    await f.done;
  });

  test('a reconnect within the 10 minutes after a 403 does not ask again before they are over', async () => {
    const r = rig();
    r.setList(() => ({ status: 403, body: '' }));
    const first = r.topology.followPools(r.source);
    await r.settle();
    first.stop();
    await first.done;
    expect(r.calls).toHaveLength(1);
    // The link came back 3 minutes later: the agent follows again, which waits out the other 7.
    r.advance(3 * 60_000);
    r.waits.length = 0;
    const again = r.topology.followPools(r.source);
    await r.settle();
    expect(r.calls).toHaveLength(1);
    expect(r.waits.map((w) => w.ms)).toEqual([FORBIDDEN_RECHECK_MS - 3 * 60_000]);
    // RBAC now allows it: after the wait, a LIST and a watch.
    r.setList(() => ({ status: 200, body: '{"metadata":{"resourceVersion":"20"},"items":[]}' }));
    r.advance(7 * 60_000);
    r.waits.shift()!.release(true);
    await r.settle();
    expect(r.calls).toHaveLength(2);
    expect(r.watches).toHaveLength(1);
    again.stop();
    await again.done;
  });

  test('a 403 on the watch stops asking as well', async () => {
    const r = rig();
    const f = r.topology.followPools(r.source);
    await r.settle();
    expect(r.watches).toHaveLength(1);
    r.watches[0]!.end(403);
    await r.settle();
    expect(r.calls).toHaveLength(1);
    expect(r.watches).toHaveLength(1);
    expect(r.waits.map((w) => w.ms)).toEqual([FORBIDDEN_RECHECK_MS]);
    f.stop();
    await f.done;
  });
});
