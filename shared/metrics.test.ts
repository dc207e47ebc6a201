import { expect, test } from 'bun:test';
import { createAdminApp } from './admin.ts';
import { Registry } from './metrics.ts';

test('renders counters and computed gauges in the Prometheus text format', () => {
  const r = new Registry();
  const c = r.counter('tether_requests_total', 'Requests');
  c.inc({ verb: 'get' });
  c.inc({ verb: 'get' }, 2);
  c.inc({ verb: 'list' });
  r.gauge('tether_objects', 'Objects', () => [{ labels: { gvr: 'v1/pods' }, value: 7 }]);
  expect(r.render()).toBe(
    [
      '# HELP tether_requests_total Requests',
      '# TYPE tether_requests_total counter',
      'tether_requests_total{verb="get"} 3',
      'tether_requests_total{verb="list"} 1',
      '# HELP tether_objects Objects',
      '# TYPE tether_objects gauge',
      'tether_objects{gvr="v1/pods"} 7',
      '',
    ].join('\n'),
  );
});

test('readyz lists each check and fails with 503 when one fails', async () => {
  let storeProblem: string | null = null;
  const app = createAdminApp({ registry: new Registry(), checks: { store: () => storeProblem, upstream: () => null } });
  const ok = await app.request('/readyz');
  expect(ok.status).toBe(200);
  expect(await ok.text()).toContain('[+]store ok');
  storeProblem = 'disk full';
  const bad = await app.request('/readyz');
  expect(bad.status).toBe(503);
  expect(await bad.text()).toContain('[-]store failed: disk full');
  expect((await app.request('/healthz')).status).toBe(200);
});
