/** Reports are JSON merge patches of the Node's annotations only; a refused or failed patch says false. */
import { expect, test } from 'bun:test';
import { EDGE_VERSION_ANNOTATION, UPGRADE_STATUS_ANNOTATION, type UpgradeStatus } from '../../shared/upgrade/contract.ts';
import { createReporter } from './report.ts';

test('status and version are merge patches of metadata.annotations, the status as the contract JSON', async () => {
  const bodies: string[] = [];
  const r = createReporter({ patch: async (b) => (bodies.push(b), { status: 200, body: '{}' }) });
  const s: UpgradeStatus = { upgrade: 'fleet', uid: 'u1', version: '0.2.0', phase: 'Failed', reason: 'downgrade refused', time: '2026-12-04T01:00:00.000Z' };
  expect(await r.status(s)).toBe(true);
  expect(await r.version('0.1.0')).toBe(true);
  expect(bodies.map((b) => JSON.parse(b))).toEqual([
    { metadata: { annotations: { [UPGRADE_STATUS_ANNOTATION]: JSON.stringify(s) } } },
    { metadata: { annotations: { [EDGE_VERSION_ANNOTATION]: '0.1.0' } } },
  ]);
});

test('a refused patch (403) or a failed request resolves false, with the reason passed on', async () => {
  const errors: string[] = [];
  const refused = createReporter({ patch: async () => ({ status: 403, body: 'forbidden' }), onError: (w, r) => errors.push(`${w}: ${r}`) });
  expect(await refused.version('0.1.0')).toBe(false);
  const offline = createReporter({ patch: () => Promise.reject(new Error('connect ENETUNREACH')), onError: (w, r) => errors.push(`${w}: ${r}`) });
  expect(await offline.version('0.1.0')).toBe(false);
  expect(errors).toEqual(['version: HTTP 403: forbidden', 'version: connect ENETUNREACH']);
});
