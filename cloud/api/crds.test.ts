import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { edgeUpgradeSchema } from './edge-upgrade.ts';
import { nodePoolSchema } from './node-pool.ts';
import { poolSetSchema } from './pool-set.ts';
import { renderCrdFiles } from './render.ts';
import { toStructural } from './structural.ts';

describe('CRDs generated from the zod schemas', () => {
  test('the committed deploy/crds/*.yaml are what the schemas produce (run `bun cloud/api/generate.ts` after a schema change)', () => {
    for (const [name, text] of Object.entries(renderCrdFiles())) {
      expect(readFileSync(join(import.meta.dir, '../../deploy/crds', name), 'utf8')).toBe(text);
    }
  });

  test('no $ref, anyOf or additionalProperties:false reach a CRD', () => {
    for (const text of Object.values(renderCrdFiles())) {
      expect(text).not.toMatch(/\$ref|anyOf|oneOf|allOf|additionalProperties: false|propertyNames|\$schema/);
    }
  });

  test('the structural conversion maps nullable types and numeric exclusive bounds, and refuses what Kubernetes cannot take', () => {
    expect(toStructural({ type: ['string', 'null'] })).toEqual({ type: 'string', nullable: true });
    expect(toStructural({ type: 'number', exclusiveMinimum: 0 })).toEqual({ type: 'number', minimum: 0, exclusiveMinimum: true });
    expect(toStructural({ type: 'integer', minimum: -9007199254740991, maximum: 9007199254740991 })).toEqual({ type: 'integer' });
    expect(() => toStructural({ anyOf: [{ type: 'string' }, { type: 'number' }] })).toThrow('not expressible');
    expect(() => toStructural({ properties: {} })).toThrow('without a type');
    expect(() => toStructural(z.toJSONSchema(z.union([z.string(), z.number()])) as never)).toThrow('not expressible');
  });
});

describe('the same rules in zod as in CEL', () => {
  test('NodePool: name, label keys and values, reserved keys, duplicate taints', () => {
    const bad = nodePoolSchema.safeParse({
      metadata: { name: 'Bad.Name' },
      spec: { labels: { 'bad key': 'x', 'apps.tether.dev/x': 'y', ok: 'bad value!' }, taints: [{ key: 'a', effect: 'NoSchedule' }, { key: 'a', effect: 'NoSchedule' }] },
    });
    expect(bad.success).toBe(false);
    const messages = bad.error!.issues.map((i) => i.message).join('\n');
    expect(messages).toContain('a NodePool name must be a DNS label');
    expect(messages).toContain('label keys must be qualified names');
    expect(messages).toContain('keys under apps.tether.dev/ are reserved');
    expect(messages).toContain('must be a label value');
    expect(messages).toContain('taints must be unique by key and effect');
    const good = nodePoolSchema.parse({ metadata: { name: 'north' }, spec: { annotations: { 'apps.tether.dev/autonomy-duration': '0' } } });
    expect(good.spec.type).toBe('Edge');
  });

  test('PoolSet: pools or a selector; tweaks choose pools and change something; add needs a value', () => {
    const bad = poolSetSchema.safeParse({
      metadata: { name: 'web', namespace: 'x' },
      spec: { workload: { kind: 'Deployment', spec: { template: {} } }, tweaks: [{ replicas: 1 }, { pools: ['a'] }, { pools: ['a'], patches: [{ op: 'add', path: '/spec/x' }] }] },
    });
    const messages = bad.error!.issues.map((i) => i.message).join('\n');
    expect(messages).toContain('a PoolSet names its pools');
    expect(messages).toContain('a tweak names its pools');
    expect(messages).toContain('a tweak must change something');
    expect(messages).toContain('add and replace patches need a value');
  });

  test('EdgeUpgrade: release version, https unless insecure, a URL without query, pools listed once; defaults', () => {
    const parse = (spec: Record<string, unknown>) => edgeUpgradeSchema.safeParse({ metadata: { name: 'u' }, spec: { version: '0.2.0', baseURL: 'https://r.example.com/0.2.0', pools: ['a'], ...spec } });
    const messages = (spec: Record<string, unknown>) => parse(spec).error?.issues.map((i) => i.message).join('\n') ?? '';
    expect(messages({ version: '../../etc' })).toContain('must be a release version such as 1.2.3');
    expect(messages({ baseURL: 'http://r.example.com/0.2.0' })).toContain('baseURL must be https (http only with insecure: true)');
    expect(parse({ baseURL: 'http://r.example.com/0.2.0', insecure: true }).success).toBe(true);
    expect(messages({ baseURL: 'https://r.example.com/x?sig=1' })).toContain('must be an http(s) URL with a host and no query or fragment');
    expect(messages({ baseURL: 'ftp://r.example.com/x' })).toContain('must be an http(s) URL');
    expect(messages({ pools: ['a', 'b', 'a'] })).toContain('pools must be listed once each');
    expect(parse({ pools: [] }).success).toBe(false);
    expect(parse({}).data!.spec).toEqual({ version: '0.2.0', baseURL: 'https://r.example.com/0.2.0', insecure: false, pools: ['a'], maxUnavailable: 1, pauseSeconds: 0, nodeTimeoutSeconds: 900 });
  });

  test('EdgeUpgrade: version, baseURL, insecure and pools are immutable (a CEL transition rule; zod never sees the old object)', () => {
    const text = renderCrdFiles()['apps.tether.dev_edgeupgrades.yaml']!;
    expect(text).toContain('self.version == oldSelf.version && self.baseURL == oldSelf.baseURL && self.insecure == oldSelf.insecure && self.pools == oldSelf.pools');
  });
});
