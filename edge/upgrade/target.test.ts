/** How the Node is followed: the store's copy first, one watch of its own only when no copy comes. */
import { afterEach, describe, expect, test } from 'bun:test';
import { createMemoryLogger } from '../../shared/log.ts';
import type { KubeObject } from '../store/index.ts';
import { type NodeSource, type NodeView, followNode } from './target.ts';

const node = (rv: string, annotations: Record<string, string> = {}): KubeObject => ({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'edge-1', resourceVersion: rv, annotations } });

const sources: NodeSource[] = [];
afterEach(() => sources.splice(0).forEach((s) => s.stop()));

function rig(o: { stored?: KubeObject | null; online?: boolean; fallbackAfterMs?: number; now?: () => number } = {}) {
  let stored = o.stored === null ? undefined : o.stored;
  let online = o.online ?? true;
  const views: NodeView[] = [];
  const watches: { path: string; onLine: (l: string) => void; end: (status: number) => void; stopped: boolean }[] = [];
  const src = followNode({
    nodeName: 'edge-1',
    stored: o.stored === null ? undefined : () => stored,
    online: () => online,
    watch: (path, onLine) => {
      let end: (status: number) => void = () => {};
      const w = { path, onLine, end: (s: number) => end(s), stopped: false };
      watches.push(w);
      const done = new Promise<{ status: number }>((r) => (end = (status) => r({ status })));
      return { done, stop: () => ((w.stopped = true), w.end(0)) };
    },
    onNode: (v) => views.push(v),
    log: createMemoryLogger('error'),
    fallbackAfterMs: o.fallbackAfterMs ?? 60_000,
    rewatchMs: 1,
    now: o.now,
  });
  sources.push(src);
  return {
    src,
    views,
    watches,
    store(n: KubeObject) {
      stored = n;
      src.recorded();
    },
    setOnline(v: boolean) {
      online = v;
      src.linkChanged();
    },
  };
}

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));
const until = async (f: () => boolean) => {
  for (let i = 0; i < 400 && !f(); i++) await tick();
};

describe('from the store', () => {
  test("the copy at start is passed on as not fresh; each recorded change as fresh; an unchanged one not again", async () => {
    const r = rig({ stored: node('5', { a: '1' }) });
    await tick();
    expect(r.views).toEqual([{ annotations: { a: '1' }, resourceVersion: '5', fresh: false }]);
    r.store(node('6', { a: '2' }));
    r.src.recorded(); // Nodes recorded again (another object, or the same version)
    expect(r.views.slice(1)).toEqual([{ annotations: { a: '2' }, resourceVersion: '6', fresh: true }]);
    expect(r.watches).toEqual([]);
  });
});

describe('the fallback watch', () => {
  test('opened when no copy is recorded for fallbackAfterMs while online: its events are fresh views', async () => {
    const r = rig({ fallbackAfterMs: 20 });
    await until(() => r.watches.length > 0);
    expect(r.watches[0]!.path).toBe('/api/v1/nodes?fieldSelector=metadata.name%3Dedge-1&watch=true&allowWatchBookmarks=true');
    r.watches[0]!.onLine(JSON.stringify({ type: 'ADDED', object: node('9', { t: 'x' }) }));
    expect(r.views).toEqual([{ annotations: { t: 'x' }, resourceVersion: '9', fresh: true }]);
    // The apiserver ends the watch: it is opened again from the last version seen.
    r.watches[0]!.end(200);
    await until(() => r.watches.length > 1);
    expect(r.watches[1]!.path).toEndWith('&resourceVersion=9');
  });

  test('stopped as soon as the store records the Node again (the kubelet is back)', async () => {
    const r = rig({ fallbackAfterMs: 20 });
    await until(() => r.watches.length > 0);
    r.store(node('10'));
    expect(r.watches[0]!.stopped).toBe(true);
    expect(r.src.watching).toBe(false);
  });

  test('never opened while offline; stopped when the link goes down', async () => {
    const r = rig({ online: false, fallbackAfterMs: 10 });
    await tick(40);
    expect(r.watches).toEqual([]);
    r.setOnline(true);
    await until(() => r.watches.length > 0);
    expect(r.watches.length).toBe(1);
    r.setOnline(false);
    expect(r.watches[0]!.stopped).toBe(true);
  });

  test('without a store, opened as soon as the link is up', async () => {
    const r = rig({ stored: null, fallbackAfterMs: 60_000 });
    await until(() => r.watches.length > 0);
    expect(r.watches.length).toBe(1);
  });

  test('not opened while the store keeps recording the Node; opened once it stops', async () => {
    let t = 1_000_000;
    const r = rig({ fallbackAfterMs: 20, now: () => t });
    for (let i = 0; i < 4; i++) {
      t += 15; // less than fallbackAfterMs since the last record
      r.store(node(String(20 + i)));
      await tick(30); // the check timer runs meanwhile
    }
    expect(r.watches).toEqual([]);
    t += 25;
    await until(() => r.watches.length > 0);
    expect(r.watches.length).toBe(1);
  });
});
