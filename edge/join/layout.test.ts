import { describe, expect, test } from 'bun:test';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../shared/config.ts';
import { EDGE_ENV_PREFIX, edgeConfigSchema } from '../config.ts';
import { createLocalCa, localCaFrom } from '../certs/local-ca.ts';
import { AGENT_URL, agentConfigYaml, checkNodeName, checkPoolName, kubeletEnv, kubeletKubeconfig, localKubeconfig, systemdUnit } from './layout.ts';

const localCa = createLocalCa('test local CA');
const creds = { caPem: localCa.certPem, ...localCaFrom('mem', localCa.certPem, localCa.keyPem).issue('kubelet', 'client') };
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('what join writes', () => {
  test("the agent configuration is accepted by the agent's own schema", () => {
    const text = agentConfigYaml({ nodeName: 'edge-1', server: 'https://10.0.0.1:6443', hubUrl: 'wss://hub.example:8443' });
    const config = edgeConfigSchema.parse(parseYaml(text));
    expect(config).toMatchObject({
      nodeName: 'edge-1',
      servers: ['https://10.0.0.1:6443'],
      caFile: '/etc/tether/pki/ca.crt',
      certFile: '/etc/tether/pki/node.crt',
      keyFile: '/etc/tether/pki/node.key',
      dataDir: '/var/lib/tether',
      localCaDir: '/etc/tether/pki/local',
      insecurePlainHttp: false,
      hubUrl: 'wss://hub.example:8443',
    });
  });

  test('with --upstream-via-hub the configuration turns the mode on, beside the hub URL', () => {
    const text = agentConfigYaml({ nodeName: 'edge-1', server: 'https://10.0.0.1:6443', hubUrl: 'wss://hub.example:8443', upstreamViaHub: true });
    const config = edgeConfigSchema.parse(parseYaml(text));
    expect(config).toMatchObject({ upstreamViaHub: true, hubUrl: 'wss://hub.example:8443' });
    expect(edgeConfigSchema.parse(parseYaml(agentConfigYaml({ nodeName: 'edge-1', server: 'https://10.0.0.1:6443' }))).upstreamViaHub).toBe(false);
  });

  test('the systemd unit runs the agent with that configuration', () => {
    expect(systemdUnit('/usr/local/bin/tether-edge')).toContain('ExecStart=/usr/local/bin/tether-edge run --config /etc/tether/edge.yaml\n');
  });

  test('the systemd unit runs the known-good binary\'s upgrade guard before every start, ignoring its absence, and keeps restarting', () => {
    const lines = systemdUnit('/opt/tether/bin/tether-edge').split('\n');
    const pre = lines.indexOf('ExecStartPre=-/var/lib/tether/upgrade/known-good upgrade guard --config /etc/tether/edge.yaml');
    const start = lines.indexOf('ExecStart=/opt/tether/bin/tether-edge run --config /etc/tether/edge.yaml');
    expect(pre).toBeGreaterThan(lines.indexOf('[Service]'));
    expect(start).toBe(pre + 1);
    expect(lines.filter((l) => l.startsWith('ExecStartPre='))).toHaveLength(1);
    expect(lines).toContain('Restart=always');
    expect(lines).toContain('RestartSec=2');
    expect(systemdUnit('/usr/local/bin/tether-edge', '/data/tether')).toContain('ExecStartPre=-/data/tether/upgrade/known-good upgrade guard');
  });

  test('the pinned release key and the binary the unit runs are in the configuration, as the agent reads them', () => {
    const releaseKey = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const text = agentConfigYaml({ nodeName: 'edge-1', server: 'https://10.0.0.1:6443', releaseKey, binary: '/opt/tether/bin/tether-edge' });
    expect(text).toContain('releaseKey: |\n  -----BEGIN PUBLIC KEY-----\n');
    const config = edgeConfigSchema.parse(parseYaml(text));
    expect(config.releaseKey).toBe(releaseKey);
    expect(config.upgrade).toEqual({ enabled: true, binary: '/opt/tether/bin/tether-edge', healthDeadlineSeconds: 120, allowDowngrade: false });

    // Without --release-key there is no key, and the upgrade defaults hold.
    const bare = edgeConfigSchema.parse(parseYaml(agentConfigYaml({ nodeName: 'edge-1', server: 'https://10.0.0.1:6443' })));
    expect(bare.releaseKey).toBeUndefined();
    expect(bare.upgrade).toEqual({ enabled: true, binary: '/usr/local/bin/tether-edge', healthDeadlineSeconds: 120, allowDowngrade: false });
  });

  test('a releaseKey that is not an Ed25519 public key is a readable configuration error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-release-key-'));
    try {
      const cases: [string, string][] = [
        [generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'expected an Ed25519 public key, got ec'],
        [generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'this is a private key: pin the public key'],
        ['-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n', 'not a readable PEM public key'],
        ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE', 'expected a PEM public key'],
      ];
      for (const [i, [key, message]] of cases.entries()) {
        const file = join(dir, `edge-${i}.yaml`);
        writeFileSync(file, `releaseKey: ${JSON.stringify(key)}\n`);
        expect(() => loadConfig(edgeConfigSchema, { file, envPrefix: EDGE_ENV_PREFIX })).toThrow(message);
        expect(() => loadConfig(edgeConfigSchema, { file, envPrefix: EDGE_ENV_PREFIX })).toThrow('releaseKey');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the upgrade section is checked like the rest: unknown keys and a non-positive deadline are refused', () => {
    expect(edgeConfigSchema.safeParse({ upgrade: { healthDeadlineSeconds: 0 } }).success).toBe(false);
    expect(edgeConfigSchema.safeParse({ upgrade: { binnary: '/x' } }).success).toBe(false);
    expect(edgeConfigSchema.parse({ upgrade: { dir: '/srv/up', allowDowngrade: true } }).upgrade).toEqual({
      enabled: true,
      binary: '/usr/local/bin/tether-edge',
      dir: '/srv/up',
      healthDeadlineSeconds: 120,
      allowDowngrade: true,
    });
  });

  test("a fresh kubelet kubeconfig names the agent over HTTPS, trusts the local CA and carries the kubelet's local certificate", () => {
    expect(AGENT_URL).toBe('https://127.0.0.1:10261');
    const doc = parseYaml(kubeletKubeconfig(creds)) as any;
    expect(doc.clusters).toEqual([{ name: 'tether-edge', cluster: { server: AGENT_URL, 'certificate-authority-data': b64(creds.caPem) } }]);
    expect(doc.users).toEqual([{ name: 'kubelet', user: { 'client-certificate-data': b64(creds.certPem), 'client-key-data': b64(creds.keyPem) } }]);
    const proxy = parseYaml(localKubeconfig('kube-proxy', creds, 'x')) as any;
    expect(proxy.users[0].name).toBe('kube-proxy');
    expect(proxy.contexts[0].context.user).toBe('kube-proxy');
  });

  test("a kubeadm kubelet kubeconfig is converted: the agent's address and the local credentials, its names and contexts kept", () => {
    const kubeadm = [
      'apiVersion: v1', 'kind: Config',
      'clusters:', '- cluster:', '    certificate-authority-data: QUJD', '    server: https://10.0.0.1:6443', '  name: default-cluster',
      'contexts:', '- context:', '    cluster: default-cluster', '    namespace: default', '    user: default-auth', '  name: default-context',
      'current-context: default-context',
      'users:', '- name: default-auth', '  user:', '    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem',
      '    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem', '',
    ].join('\n');
    const doc = parseYaml(kubeletKubeconfig(creds, kubeadm)) as any;
    expect(doc.clusters).toEqual([{ name: 'default-cluster', cluster: { server: AGENT_URL, 'certificate-authority-data': b64(creds.caPem) } }]);
    expect(doc.users).toEqual([{ name: 'default-auth', user: { 'client-certificate-data': b64(creds.certPem), 'client-key-data': b64(creds.keyPem) } }]);
    expect(doc['current-context']).toBe('default-context');
    expect(() => kubeletKubeconfig(creds, 'apiVersion: v1\nkind: Config\n')).toThrow('names no cluster');
  });

  test("the pool label request keeps the kubelet's extra arguments from /etc/default/kubelet", () => {
    expect(kubeletEnv('shop-7')).toContain('KUBELET_EXTRA_ARGS="--node-labels=apps.tether.dev/pool=shop-7"');
    expect(kubeletEnv('shop-7', '# x\nKUBELET_EXTRA_ARGS="--v=2 --max-pods=50"\n')).toContain(
      'KUBELET_EXTRA_ARGS="--v=2 --max-pods=50 --node-labels=apps.tether.dev/pool=shop-7"',
    );
  });

  test('node and pool names are checked', () => {
    expect(checkNodeName('edge-1.site')).toBe('edge-1.site');
    expect(() => checkNodeName('Edge_1')).toThrow('pass --node-name');
    expect(checkPoolName('Shop_7.a')).toBe('Shop_7.a');
    expect(() => checkPoolName('-bad')).toThrow('not a valid label value');
  });
});
