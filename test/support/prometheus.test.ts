/** The guard that keeps the tests' Prometheus from dialing anything but the test networks. */
import { expect, test } from 'bun:test';
import { checkConfig, type PrometheusConfig } from './prometheus.ts';

const job = (extra: Record<string, unknown> = {}, targets = ['198.18.3.2:9100']) =>
  ({ job_name: 'j', proxy_url: 'https://127.0.0.1:8132', static_configs: [{ targets }], ...extra });

test('accepts static targets and a proxy on loopback or in 198.18.0.0/15', () => {
  expect(() => checkConfig({ global: { scrape_interval: '1s' }, scrape_configs: [job(), job({}, ['127.0.0.1:9090', '198.19.255.1:10250'])] })).not.toThrow();
});

test('refuses targets and proxies elsewhere, service discovery, relabeling and other top-level sections', () => {
  const refused: [PrometheusConfig, string][] = [
    [{ scrape_configs: [job({}, ['10.0.0.1:9100'])] }, 'target 10.0.0.1:9100 is not on loopback'],
    [{ scrape_configs: [job({}, ['198.20.0.1:9100'])] }, 'target 198.20.0.1:9100'],
    [{ scrape_configs: [job({}, ['localhost:9100'])] }, 'target localhost:9100'],
    [{ scrape_configs: [job({ proxy_url: 'https://tether-hub.tether-system.svc:8132' })] }, 'proxy_url https://tether-hub.tether-system.svc:8132'],
    [{ scrape_configs: [job({ kubernetes_sd_configs: [{ role: 'node' }] })] }, 'kubernetes_sd_configs is not allowed'],
    [{ scrape_configs: [job({ relabel_configs: [] })] }, 'relabel_configs is not allowed'],
    [{ scrape_configs: [job({ proxy_from_environment: true })] }, 'proxy_from_environment is not allowed'],
    [{ scrape_configs: [], remote_write: [{ url: 'http://127.0.0.1:1' }] } as PrometheusConfig, 'remote_write is not allowed'],
    [{ scrape_configs: [], alerting: {} } as PrometheusConfig, 'alerting is not allowed'],
  ];
  for (const [config, why] of refused) expect(() => checkConfig(config)).toThrow(why);
});
