/**
 * The store contract: behaviour both SQLite openers must share. It runs under Bun with bun:test
 * (store.bun.test.ts) and under Node 20 with node:test against a Node bundle of the same code
 * (store.node.contract.ts, bundled by scripts/test.sh). Assertions use node:assert, which both
 * runtimes provide.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, isTetherError } from '../../shared/errors.ts';
import type { OpenDb } from './db.ts';
import { MIGRATION_COUNT, SCHEMA_VERSION } from './db.ts';
import { createStore } from './index.ts';
import { createSnapshotStore, type KubeObject } from './snapshot-store.ts';

export type TestFn = (name: string, fn: () => void | Promise<void>) => void;

const pod = (name: string, rv: string, phase = 'Running'): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'default', uid: `uid-${name}`, resourceVersion: rv },
  spec: { nodeName: 'edge-1' },
  status: { phase },
});

function withDir(f: (dir: string) => void | Promise<void>) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-store-'));
    try {
      await f(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

function expectCode(f: () => unknown, code: ErrorCode, messagePart: RegExp) {
  let thrown: unknown;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown, `expected ${code}, nothing was thrown`);
  assert.ok(isTetherError(thrown, code), `expected ${code}, got ${String(thrown)}`);
  assert.match((thrown as Error).message, messagePart);
}

export function runStoreContract(test: TestFn, openDb: OpenDb): void {
  test('writes an object and reads it back after reopening', withDir((dir) => {
    const path = join(dir, 'store', 'tether.db');
    const a = openDb({ path });
    const store = createSnapshotStore(a);
    assert.equal(store.put('v1/pods', pod('web-1', '100')), true);
    a.close();
    const b = openDb({ path });
    const again = createSnapshotStore(b);
    assert.deepEqual(again.get('v1/pods', 'default', 'web-1'), pod('web-1', '100'));
    assert.deepEqual(again.counts(), { 'v1/pods': 1 });
    b.close();
  }));

  test('applying the migrations twice changes nothing', withDir((dir) => {
    const path = join(dir, 'tether.db');
    openDb({ path }).close();
    const s = openDb({ path });
    const rows = s.raw.get('SELECT count(*) AS n, max(created_at) AS v FROM __drizzle_migrations');
    assert.equal(Number(rows?.n), MIGRATION_COUNT);
    assert.equal(Number(rows?.v), SCHEMA_VERSION);
    s.close();
  }));

  test('uses WAL and a busy timeout', withDir((dir) => {
    const s = openDb({ path: join(dir, 'tether.db'), busyTimeoutMs: 1234 });
    assert.equal(String(s.raw.get('PRAGMA journal_mode')?.journal_mode).toLowerCase(), 'wal');
    assert.equal(Number(Object.values(s.raw.get('PRAGMA busy_timeout') ?? {})[0]), 1234);
    s.close();
  }));

  test('store files are 0600 inside a 0700 directory', withDir((dir) => {
    const path = join(dir, 'state', 'tether.db');
    const s = openDb({ path });
    createSnapshotStore(s).put('v1/secrets', { metadata: { name: 'token', namespace: 'kube-system', resourceVersion: '1' } });
    assert.equal(statSync(join(dir, 'state')).mode & 0o777, 0o700);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    s.close();
  }));

  test('a stale object never overwrites a newer one', withDir((dir) => {
    const s = openDb({ path: join(dir, 'tether.db') });
    const store = createSnapshotStore(s);
    store.put('v1/pods', pod('web-1', '200', 'Running'));
    assert.equal(store.put('v1/pods', pod('web-1', '150', 'Pending')), false);
    assert.equal((store.get('v1/pods', 'default', 'web-1')?.status as { phase: string }).phase, 'Running');
    assert.equal(store.put('v1/pods', pod('web-1', '250', 'Succeeded')), true);
    assert.equal((store.get('v1/pods', 'default', 'web-1')?.status as { phase: string }).phase, 'Succeeded');
    s.close();
  }));

  test('lists by resource and namespace, and deletes', withDir((dir) => {
    const s = openDb({ path: join(dir, 'tether.db') });
    const store = createSnapshotStore(s);
    store.put('v1/pods', pod('b', '3'));
    store.put('v1/pods', pod('a', '2'));
    store.put('v1/pods', { ...pod('c', '4'), metadata: { name: 'c', namespace: 'other', resourceVersion: '4' } });
    store.put('v1/nodes', { metadata: { name: 'edge-1', resourceVersion: '5' } });
    assert.deepEqual(store.list('v1/pods', 'default').map((o) => o.metadata.name), ['a', 'b']);
    assert.deepEqual(store.list('v1/pods').map((o) => o.metadata.name), ['a', 'b', 'c']);
    assert.equal(store.delete('v1/pods', 'default', 'a'), true);
    assert.equal(store.delete('v1/pods', 'default', 'a'), false);
    assert.deepEqual(store.counts(), { 'v1/pods': 2, 'v1/nodes': 1 });
    s.close();
  }));

  test('the stream log and the outbox survive a reopen', withDir((dir) => {
    const path = join(dir, 'tether.db');
    const scope = { gvr: 'v1/pods', namespace: '', labelSelector: '', fieldSelector: 'spec.nodeName=edge-1' };
    const a = openDb({ path });
    const s = createStore(a);
    s.streams.replaceList(scope, 'kubelet', [pod('web-1', '100')], '100', () => true);
    s.streams.applyEvents(scope, [{ type: 'MODIFIED', object: pod('web-1', '101', 'Failed') }, { type: 'ADDED', object: pod('web-2', '102') }]);
    s.outbox.enqueue({ kind: 'status', method: 'PATCH', path: '/api/v1/namespaces/default/pods/web-1/status', contentType: 'application/merge-patch+json', body: '{}' });
    a.close();
    const b = openDb({ path });
    const t = createStore(b);
    const st = t.streams.find(scope);
    assert.ok(st);
    assert.equal(st.watermark, 102);
    assert.deepEqual(t.streams.eventsAfter(st.id, 100).map((e) => `${e.type} ${e.object.metadata.name}@${e.rvNum}`), ['MODIFIED web-1@101', 'ADDED web-2@102']);
    assert.equal((t.objects.get('v1/pods', 'default', 'web-1')?.status as { phase: string }).phase, 'Failed');
    assert.deepEqual(t.outbox.peek(5).map((e) => e.path), ['/api/v1/namespaces/default/pods/web-1/status']);
    b.close();
  }));

  test('a file that is not a database gives a clear error', withDir((dir) => {
    const path = join(dir, 'tether.db');
    writeFileSync(path, 'this is not sqlite, just some bytes that fill a page '.repeat(200));
    expectCode(() => openDb({ path }), ErrorCode.StoreCorrupt, /is not a readable Tether store/);
  }));

  test('a store from a newer schema is refused', withDir((dir) => {
    const path = join(dir, 'tether.db');
    const s = openDb({ path });
    s.raw.exec(`INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('future', ${SCHEMA_VERSION + 1})`);
    s.close();
    expectCode(() => openDb({ path }), ErrorCode.StoreNewerSchema, /written by a newer Tether/);
  }));

  test('a store locked by another connection gives a clear error', withDir((dir) => {
    const path = join(dir, 'tether.db');
    const holder = openDb({ path });
    holder.raw.exec('BEGIN IMMEDIATE');
    try {
      expectCode(() => openDb({ path, busyTimeoutMs: 50 }), ErrorCode.StoreLocked, /locked by another process/);
    } finally {
      holder.raw.exec('ROLLBACK');
      holder.close();
    }
  }));

  test('a directory that cannot be created gives a clear error', withDir((dir) => {
    const blocker = join(dir, 'file');
    writeFileSync(blocker, '');
    expectCode(() => openDb({ path: join(blocker, 'sub', 'tether.db') }), ErrorCode.StoreOpen, /create directory/);
  }));

  test('a transaction over several parts commits all of them or none', withDir((dir) => {
    const s = openDb({ path: join(dir, 'tether.db') });
    const store = createStore(s);
    const scope = { gvr: 'v1/pods', namespace: '', labelSelector: '', fieldSelector: '' };
    store.streams.replaceList(scope, 'kubelet', [pod('web-1', '100')], '100', () => true);
    const entry = { kind: 'status' as const, method: 'PATCH', path: '/api/v1/namespaces/default/pods/web-1/status', contentType: 'application/merge-patch+json', body: '{}' };
    assert.throws(
      () =>
        store.transact('offline write', () => {
          store.streams.applyLocal('v1/pods', 'MODIFIED', pod('web-1', '100', 'Failed'), () => true);
          store.outbox.enqueue(entry);
          throw new Error('power cut between the writes');
        }),
      /power cut/,
    );
    assert.equal((store.objects.get('v1/pods', 'default', 'web-1')?.status as { phase: string }).phase, 'Running');
    assert.deepEqual(store.outbox.peek(5), []);
    assert.deepEqual(store.streams.eventsAfter(store.streams.find(scope)!.id, 0), []);
    store.transact('offline write', () => {
      store.streams.applyLocal('v1/pods', 'MODIFIED', pod('web-1', '100', 'Failed'), () => true);
      store.outbox.enqueue(entry);
    });
    assert.equal((store.objects.get('v1/pods', 'default', 'web-1')?.status as { phase: string }).phase, 'Failed');
    assert.equal(store.outbox.peek(5).length, 1);
    s.close();
  }));

  test('a durable transaction commits with synchronous=FULL; other commits stay NORMAL', withDir((dir) => {
    const s = openDb({ path: join(dir, 'tether.db') });
    const store = createStore(s);
    const sync = () => Number(Object.values(s.raw.get('PRAGMA synchronous') ?? {})[0]);
    assert.equal(sync(), 1); // NORMAL
    // A temporary trigger records the setting in force while the outbox row is written.
    s.raw.exec('CREATE TEMP TABLE seen (sync INTEGER)');
    s.raw.exec('CREATE TEMP TRIGGER seen_sync AFTER INSERT ON outbox BEGIN INSERT INTO seen SELECT synchronous FROM pragma_synchronous; END');
    const entry = { kind: 'event' as const, method: 'POST', path: '/api/v1/namespaces/default/events', contentType: 'application/json', body: '{}' };
    store.transact('offline event', () => store.outbox.enqueue(entry), { durable: true });
    store.outbox.enqueue(entry);
    assert.deepEqual(Object.values(s.raw.get("SELECT group_concat(sync, ',') AS v FROM seen") ?? {}), ['2,1']); // FULL, then NORMAL
    assert.equal(sync(), 1);
    assert.throws(() => store.transact('outer', () => store.transact('inner', () => 1, { durable: true })), /cannot be nested/);
    s.close();
  }));

  test('a full disk is reported until a write succeeds again; reads and no-op writes do not clear it', withDir((dir) => {
    const s = openDb({ path: join(dir, 'tether.db') });
    const store = createStore(s);
    assert.equal(s.health.problem(), null);
    // The database may not grow past its current size: the next page it needs fails with SQLITE_FULL.
    const pages = Number(Object.values(s.raw.get('PRAGMA page_count') ?? {})[0]);
    s.raw.exec(`PRAGMA max_page_count = ${pages}`);
    const big = (name: string) => ({ ...pod(name, '1'), spec: { nodeName: 'edge-1', blob: 'x'.repeat(64 * 1024) } });
    let thrown: unknown;
    try {
      store.objects.put('v1/pods', big('web-1'));
    } catch (e) {
      thrown = e;
    }
    assert.ok(isTetherError(thrown, ErrorCode.StoreOpen), `expected a store error, got ${String(thrown)}`);
    assert.match((thrown as Error).message, /disk is full/);
    assert.match(s.health.problem() ?? '', /writes to the store are failing .*disk is full/);
    store.objects.get('v1/pods', 'default', 'web-1'); // a read works…
    store.objects.delete('v1/pods', 'default', 'nothing-here'); // …and so does a write with nothing to change
    assert.equal(s.health.failing(), true);
    assert.match(s.health.problem() ?? '', /disk is full/);
    s.raw.exec(`PRAGMA max_page_count = ${pages * 100}`);
    store.objects.put('v1/pods', big('web-1'));
    assert.equal(s.health.problem(), null);
    s.close();
  }));

  test('little free space on the store filesystem is a problem before SQLite fails', withDir((dir) => {
    let free = 10 * 1024 * 1024;
    const s = openDb({ path: join(dir, 'tether.db'), minFreeBytes: 32 * 1024 * 1024, freeBytes: () => free });
    assert.match(s.health.problem() ?? '', /only 10 MiB free on the filesystem of .*tether\.db/);
    free = 64 * 1024 * 1024;
    assert.equal(s.health.problem(), null);
    s.close();
    const real = openDb({ path: join(dir, 'tether.db'), minFreeBytes: Number.MAX_SAFE_INTEGER });
    assert.match(real.health.problem() ?? '', /MiB free on the filesystem/); // statfs of the real filesystem
    real.close();
  }));

  test('token proofs survive a reopen; expired ones are neither loaded nor kept by prune', withDir((dir) => {
    const path = join(dir, 'tether.db');
    const a = createStore(openDb({ path }));
    const h = (c: string) => c.repeat(64);
    a.tokens.put({ hash: h('a'), expiresAt: 2_000, acceptedAt: 1_000, claims: { sub: 'system:serviceaccount:kube-system:kube-proxy', exp: 2 }, views: ['read-all/v1%2Fservices//%7C'] });
    a.tokens.put({ hash: h('b'), expiresAt: 500, acceptedAt: 100, claims: {}, views: [] });
    a.tokens.put({ hash: h('a'), expiresAt: 3_000, acceptedAt: 1_500, claims: { sub: 'system:serviceaccount:kube-system:kube-proxy', exp: 3 }, views: ['read-all/v1%2Fservices//%7C', 'read-one/v1%2Fnodes//n'] });
    a.db.close();
    const b = createStore(openDb({ path }));
    assert.deepEqual(b.tokens.load(1_000), [
      { hash: h('a'), expiresAt: 3_000, acceptedAt: 1_500, claims: { sub: 'system:serviceaccount:kube-system:kube-proxy', exp: 3 }, views: ['read-all/v1%2Fservices//%7C', 'read-one/v1%2Fnodes//n'] },
    ]);
    assert.equal(b.tokens.count(), 2);
    assert.equal(b.tokens.prune(1_000), 1);
    assert.equal(b.tokens.count(), 1);
    b.tokens.delete(h('a'));
    assert.equal(b.tokens.count(), 0);
    b.db.close();
  }));

  test('access records survive a reopen; a later answer to the same request replaces the earlier one', withDir((dir) => {
    const path = join(dir, 'tether.db');
    const a = createStore(openDb({ path }));
    const base = { component: 'kubelet', gvr: 'v1/configmaps', namespace: '', name: '', labelSelector: '', fieldSelector: '' };
    const refusal = { kind: 'Status', code: 403, reason: 'Forbidden', message: 'configmaps is forbidden' };
    a.access.put([
      { ...base, verb: 'list', status: 403, refusal },
      { ...base, verb: 'get', namespace: 'app', name: 'cfg', status: 403, refusal },
      { ...base, component: 'kube-proxy', verb: 'watch', gvr: 'v1/services', status: 200 },
    ]);
    a.access.put([{ ...base, verb: 'get', namespace: 'app', name: 'cfg', status: 200 }]);
    a.db.close();
    const b = createStore(openDb({ path }));
    const sorted = b.access.all().sort((x, y) => `${x.component}${x.verb}`.localeCompare(`${y.component}${y.verb}`));
    assert.deepEqual(sorted, [
      { ...base, component: 'kube-proxy', verb: 'watch', gvr: 'v1/services', status: 200 },
      { ...base, verb: 'get', namespace: 'app', name: 'cfg', status: 200 },
      { ...base, verb: 'list', status: 403, refusal },
    ]);
    assert.equal(b.access.count(), 3);
    b.db.close();
  }));
}
