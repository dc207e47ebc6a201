import { describe, expect, test } from 'bun:test';
import { parse as parseYaml } from 'yaml';
import { edgeConfigSchema } from '../config.ts';
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
