/**
 * A real Prometheus (Debian's 2.42) scrapes an edge node the cloud cannot dial through tether-hub,
 * configured as docs/tunnel.md tells users: `proxy_url` to the hub's CONNECT endpoint and a
 * `tls_config` whose client certificate (CN prometheus) is in `scrapeUsers` and whose CA file holds
 * the hub's CA and the CA of the kubelet's serving certificate. Two jobs, as in the doc: the
 * kubelet's /metrics (https: Prometheus sends CONNECT) and a node-exporter on port 9100 (http:
 * Prometheus sends an absolute-form GET). static_configs stand in for the doc's
 * kubernetes_sd_configs (the test's Prometheus must dial nothing but the test networks).
 *
 * The test reads what Prometheus scraped back from its own HTTP API: `up` is 1 and the series the
 * node exports arrived with the values the node serves; with the site's link cut `up` goes to 0 and
 * comes back after the heal; the same jobs with a certificate not in scrapeUsers are refused.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCa, issueCert } from '../scripts/cluster/pki.ts';
import { until } from './support/wait.ts';
import type { HubProcess } from './support/hub-process.ts';
import { prometheusBinary, startPrometheus, type PrometheusServer, type ScrapeConfig } from './support/prometheus.ts';
import { spawnLogged, startTunnelRig, type EdgeNode, type LoggedProcess, type TunnelRig } from './support/tunnel-rig.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('prometheus.e2e.test.ts skipped: edge network namespaces need root');

const simMain = fileURLToPath(new URL('./support/kubelet-sim/main.ts', import.meta.url));
const nodeName = `edge-prom-${process.pid}`;

describe.skipIf(!isRoot)('prometheus: a real Prometheus scrapes an edge node through the hub', () => {
  let rig: TunnelRig;
  let hub: HubProcess;
  let node: EdgeNode;
  let sim: LoggedProcess;
  let agent: LoggedProcess;
  let prom: PrometheusServer;
  let kubeletTarget: string;
  let exporterTarget: string;

  const explain = (e: unknown): never => {
    throw new Error(`${(e as Error).message}\n--- hub ---\n${hub?.log.slice(-25).join('\n')}\n--- agent ---\n${agent?.log.slice(-15).join('\n')}` +
      `\n--- prometheus ---\n${prom?.log.slice(-15).join('\n')}`);
  };
  /** The value of `up` for one job's target, or undefined while Prometheus has none. */
  const up = async (job: string, instance: string) => (await prom.query(`up{job="${job}",instance="${instance}"}`))[0]?.value;
  const waitUp = (job: string, instance: string, want: '0' | '1') =>
    until(`up{job="${job}"} = ${want}`, () => up(job, instance), (v) => v === want, 120_000).catch(explain);
  /** What the node serves on a port, read inside its site (not through the hub). */
  const servedInSite = async (url: string, caFile?: string) => {
    const code = `const r = await fetch(${JSON.stringify(url)}${caFile ? `, { tls: { ca: await Bun.file(${JSON.stringify(caFile)}).text() } }` : ''}); ` +
      'if (!r.ok) throw new Error(String(r.status)); process.stdout.write(await r.text());';
    const r = await node.site.exec([process.execPath, '-e', code], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`read ${url} in the site: ${r.stderr}`);
    return r.stdout;
  };

  beforeAll(async () => {
    // No skip without Prometheus: scripts/setup.sh installs it, and a missing binary is a failure.
    if (!prometheusBinary()) throw new Error("prometheus is not installed: bash scripts/setup.sh installs Debian's package");
    rig = await startTunnelRig({ replicas: 1 });
    hub = await rig.startHub(0);
    node = await rig.startEdgeNode(nodeName);

    // The kubelet serves with a certificate from a serving CA (as with serverTLSBootstrap), so that
    // Prometheus verifies it as the doc says: the rig's simulator (self-signed) is replaced by one
    // started with the same arguments and that certificate.
    const servingCa = await createCa({ certFile: join(rig.dir, 'kubelet-serving-ca.crt'), keyFile: join(rig.dir, 'kubelet-serving-ca.key') }, 'kubelet-serving-ca');
    const serving = await issueCert(servingCa, { certFile: join(rig.dir, 'kubelet-serving.crt'), keyFile: join(rig.dir, 'kubelet-serving.key') },
      { cn: `system:node:${nodeName}`, orgs: ['system:nodes'], usage: ['server'], ips: [node.site.address], dnsNames: [nodeName] });
    await node.sim.stop();
    sim = spawnLogged(node.site, [process.execPath, simMain, '--node-name', nodeName, '--server', rig.cluster.edgeServer,
      '--ca', rig.cluster.caFile, '--cert', node.cert.certFile, '--key', node.cert.keyFile, '--address', node.site.address,
      '--serving-cert', serving.certFile, '--serving-key', serving.keyFile]);
    await until('node Ready', async () => JSON.parse((await rig.cluster.kubectl(['get', 'node', nodeName, '-o', 'json', '--ignore-not-found'])).stdout || '{}'),
      (n) => n.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True'), 120_000)
      .catch((e) => { throw new Error(`${(e as Error).message}\n--- kubelet-sim ---\n${sim.log.slice(-20).join('\n')}`); });
    agent = rig.startAgent(node, { hubs: [hub.agentUrl] });
    await until('agent connected', async () => agent.lines('tunnel connected').length, (n) => n > 0, 60_000).catch(explain);

    // What docs/tunnel.md tells users to give Prometheus: its client certificate, and one CA file
    // with the hub's CA and the kubelet serving CA (the tls_config serves the proxy and the target).
    const prometheus = await rig.cluster.issueClientCert('prometheus', []);
    // A valid cluster identity that is not in scrapeUsers.
    const grafana = await rig.cluster.issueClientCert('grafana', []);
    const caBundle = join(rig.dir, 'prometheus-ca-bundle.crt');
    writeFileSync(caBundle, readFileSync(rig.hubCaFile, 'utf8') + readFileSync(servingCa.certFile, 'utf8'));
    kubeletTarget = `${node.site.address}:10250`;
    exporterTarget = `${node.site.address}:${node.metricsPort}`;
    const proxyUrl = `https://127.0.0.1:${rig.connectPorts[0]}`;
    const job = (name: string, scheme: 'https' | 'http', target: string, cert: { certFile: string; keyFile: string }): ScrapeConfig => ({
      job_name: name,
      scheme,
      proxy_url: proxyUrl,
      tls_config: { ca_file: caBundle, cert_file: cert.certFile, key_file: cert.keyFile },
      static_configs: [{ targets: [target] }],
    });
    prom = await startPrometheus({
      global: { scrape_interval: '1s', scrape_timeout: '1s' },
      scrape_configs: [
        job('edge-kubelet', 'https', kubeletTarget, prometheus),
        job('edge-node-exporter', 'http', exporterTarget, prometheus),
        job('edge-kubelet-grafana', 'https', kubeletTarget, grafana),
        job('edge-node-exporter-grafana', 'http', exporterTarget, grafana),
      ],
    });
  }, 1_800_000);

  afterAll(async () => {
    await prom?.stop();
    await sim?.stop();
    await rig?.stop();
  }, 120_000);

  test("up is 1 for the edge kubelet and the node-exporter, and their series arrive with the node's values", async () => {
    await waitUp('edge-kubelet', kubeletTarget, '1');
    await waitUp('edge-node-exporter', exporterTarget, '1');

    // The kubelet names itself: the series carries this run's node name.
    const named = await prom.query(`kubelet_node_name{job="edge-kubelet",instance="${kubeletTarget}"}`);
    expect(named.map((s) => [s.metric.node, s.value])).toEqual([[nodeName, '1']]);
    // process_start_time_seconds is this simulator process's own start time: Prometheus has the
    // value the node serves (read inside the site, with the serving CA).
    const served = await servedInSite(`https://${kubeletTarget}/metrics`, join(rig.dir, 'kubelet-serving-ca.crt'));
    const start = /^process_start_time_seconds (\S+)$/m.exec(served)?.[1];
    expect(start).toBeDefined();
    const scrapedStart = await prom.query(`process_start_time_seconds{job="edge-kubelet",instance="${kubeletTarget}"}`);
    expect(scrapedStart.map((s) => Number(s.value))).toEqual([Number(start)]);

    const exporterServed = await servedInSite(`http://${exporterTarget}/metrics`);
    const load = /^node_load1 (\S+)$/m.exec(exporterServed)?.[1];
    expect(load).toBeDefined();
    const scrapedLoad = await prom.query(`node_load1{job="edge-node-exporter",instance="${exporterTarget}"}`);
    expect(scrapedLoad.map((s) => Number(s.value))).toEqual([Number(load)]);

    // The hub carried those scrapes through the node's tunnel, as the prometheus user.
    const carried = hub.lines('connect').filter((l) => l.msg === 'connect' && l.user === 'prometheus' && l.node === nodeName && l.route === 'tunnel');
    expect(new Set(carried.map((l) => l.port))).toEqual(new Set([10250, node.metricsPort]));
  }, 180_000);

  test('a Prometheus whose certificate is not in scrapeUsers is refused: up is 0 and the hub logs why', async () => {
    await waitUp('edge-kubelet-grafana', kubeletTarget, '0');
    await waitUp('edge-node-exporter-grafana', exporterTarget, '0');
    const targets = await prom.targets();
    const errorOf = (job: string) => targets.find((t) => t.labels.job === job)?.lastError ?? '';
    // The hub's reason reaches Prometheus: https as the CONNECT's refusal, http as the GET's 403.
    const why = 'user grafana may not use the CONNECT endpoint';
    expect(errorOf('edge-kubelet-grafana')).toContain(why);
    expect(errorOf('edge-node-exporter-grafana')).toContain(why);
    expect(errorOf('edge-node-exporter-grafana')).toContain('403');
    const refused = hub.lines('connect refused: caller not allowed').filter((l) => l.user === 'grafana');
    expect(refused.length).toBeGreaterThan(0);
    expect(String(refused[0]!.reason)).toContain('user grafana may not use the CONNECT endpoint');
    // Meanwhile the prometheus identity keeps scraping the same targets.
    expect(await up('edge-kubelet', kubeletTarget)).toBe('1');
    expect(await up('edge-node-exporter', exporterTarget)).toBe('1');
  }, 180_000);

  test("with the site's link to the hub cut up goes to 0, and back to 1 after the heal", async () => {
    await waitUp('edge-kubelet', kubeletTarget, '1');
    await waitUp('edge-node-exporter', exporterTarget, '1');
    await node.site.cut();
    try {
      await waitUp('edge-kubelet', kubeletTarget, '0');
      await waitUp('edge-node-exporter', exporterTarget, '0');
    } finally {
      await node.site.heal();
    }
    await waitUp('edge-kubelet', kubeletTarget, '1');
    await waitUp('edge-node-exporter', exporterTarget, '1');
  }, 360_000);
});
