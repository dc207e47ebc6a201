/**
 * The relay's EdgeUpgrade lookup over a RestClient that records requests: the path it reads,
 * 404 as "unknown", caching of answers (shorter for missing objects), failures not cached.
 */
import { describe, expect, test } from 'bun:test';
import type { RestClient, RestRequest } from '../kube/client.ts';
import { createUpgradeLookup } from './artifact-upgrades.ts';

function rest(answer: (req: RestRequest) => { status: number; body: unknown }): RestClient & { paths: string[] } {
  const paths: string[] = [];
  return {
    paths,
    async request<T>(req: RestRequest) {
      paths.push(req.path);
      const a = answer(req);
      return { status: a.status, body: a.body as T };
    },
  };
}

const object = { metadata: { name: 'up-1', uid: 'u-1' }, spec: { version: '0.2.0', baseURL: 'https://198.18.5.5/rel', insecure: false } };

describe('EdgeUpgrade lookup', () => {
  test("reads the cluster-scoped object and gives its uid and origin", async () => {
    const r = rest(() => ({ status: 200, body: object }));
    const lookup = createUpgradeLookup(r);
    expect(await lookup('up-1')).toEqual({ name: 'up-1', uid: 'u-1', baseURL: 'https://198.18.5.5/rel', insecure: false });
    expect(r.paths).toEqual(['/apis/apps.tether.dev/v1alpha1/edgeupgrades/up-1']);
  });

  test('a 404 is undefined; other answers are errors with the apiserver message', async () => {
    const r = rest((req) => (req.path.endsWith('/gone') ? { status: 404, body: {} } : { status: 403, body: { kind: 'Status', message: 'edgeupgrades is forbidden' } }));
    const lookup = createUpgradeLookup(r);
    expect(await lookup('gone')).toBeUndefined();
    await expect(lookup('up-1')).rejects.toThrow('GET EdgeUpgrade up-1: kube-apiserver answered 403: edgeupgrades is forbidden');
  });

  test('answers are cached for ttlMs (missing ones for missingTtlMs); failures are not', async () => {
    let t = 0;
    let fail = true;
    const r = rest((req) => (req.path.endsWith('/gone') ? { status: 404, body: {} } : fail ? { status: 500, body: {} } : { status: 200, body: object }));
    const lookup = createUpgradeLookup(r, { ttlMs: 10_000, missingTtlMs: 2_000, now: () => t });
    await lookup('up-1').catch(() => {});
    fail = false;
    await lookup('up-1');
    await Promise.all([lookup('up-1'), lookup('up-1')]);
    await lookup('gone');
    await lookup('gone');
    expect(r.paths.length).toBe(3);
    t = 2_500;
    await lookup('up-1');
    await lookup('gone');
    expect(r.paths.length).toBe(4);
    t = 10_500;
    await lookup('up-1');
    expect(r.paths.length).toBe(5);
  });
});
