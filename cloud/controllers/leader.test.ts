import { describe, expect, test } from 'bun:test';
import { createMemoryLogger } from '../../shared/log.ts';
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import type { Api } from './writes.ts';
import type { Lease } from './kube-types.ts';
import { startLeaderElection, type LeaderElection } from './leader.ts';

/** An in-memory Lease endpoint with the apiserver's optimistic concurrency (resourceVersion). */
function fakeLeaseApi() {
  let lease: Lease | undefined;
  let rv = 0;
  let down = false;
  let reads = 0;
  const conflict = () => Object.assign(new TetherError(ErrorCode.Internal, 'conflict'), { status: 409 });
  const api: Api = {
    async get<T>() {
      reads++;
      if (down) throw new TetherError(ErrorCode.UpstreamUnavailable, 'down');
      return structuredClone(lease) as T | undefined;
    },
    async create<T>(_p: string, body: unknown) {
      if (down) throw new TetherError(ErrorCode.UpstreamUnavailable, 'down');
      if (lease) throw conflict();
      lease = { ...(body as Lease), metadata: { ...(body as Lease).metadata, resourceVersion: String(++rv) } };
      return structuredClone(lease) as T;
    },
    async put<T>(_p: string, body: unknown) {
      if (down) throw new TetherError(ErrorCode.UpstreamUnavailable, 'down');
      const b = body as Lease;
      if (!lease || b.metadata.resourceVersion !== lease.metadata.resourceVersion) throw conflict();
      lease = { ...b, metadata: { ...b.metadata, resourceVersion: String(++rv) } };
      return structuredClone(lease) as T;
    },
    mergePatch: async () => undefined as never,
    apply: async () => undefined as never,
    delete: async () => {},
  };
  return { api, holder: () => lease?.spec?.holderIdentity ?? null, setDown: (d: boolean) => (down = d), reads: () => reads };
}

async function until(what: string, ok: () => boolean, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function candidate(api: Api, identity: string, events: string[], leaseDurationMs = 300): LeaderElection {
  return startLeaderElection({
    api,
    namespace: 'ns',
    name: 'l',
    identity,
    leaseDurationMs,
    renewDeadlineMs: 200,
    retryPeriodMs: 20,
    log: createMemoryLogger(),
    onStartedLeading: () => void events.push(`${identity} started`),
    onStoppedLeading: () => void events.push(`${identity} stopped`),
  });
}

describe('leader election over a Lease', () => {
  test('of two candidates exactly one leads; after it releases, the other takes over at once', async () => {
    const f = fakeLeaseApi();
    const events: string[] = [];
    // A lease of a minute: b can only get it before the test times out through a's release.
    const a = candidate(f.api, 'a', events, 60_000);
    await a.leading();
    const b = candidate(f.api, 'b', events, 60_000);
    await until('b tried a few times', () => f.reads() >= 5);
    expect([a.isLeader(), b.isLeader()]).toEqual([true, false]);
    expect(f.holder()).toBe('a');
    await a.stop();
    await b.leading();
    expect(f.holder()).toBe('b');
    expect(events).toEqual(['a started', 'a stopped', 'b started']);
    await b.stop();
  });

  test('a leader that cannot renew within the deadline stops leading; a candidate takes an expired lease', async () => {
    const f = fakeLeaseApi();
    const events: string[] = [];
    const a = candidate(f.api, 'a', events);
    await a.leading();
    f.setDown(true);
    await until('a steps down', () => !a.isLeader());
    expect(events).toEqual(['a started', 'a stopped']);
    f.setDown(false);
    await a.stop();
    // a's lease is left as it was (not released, a was not leading): b waits for it to expire
    const b = candidate(f.api, 'b', events);
    await until('b leads', () => b.isLeader());
    expect(f.holder()).toBe('b');
    await b.stop();
  });
});
