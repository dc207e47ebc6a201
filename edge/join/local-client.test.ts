import { afterAll, describe, expect, test } from 'bun:test';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { openLocalCa } from '../certs/local-ca.ts';
import { writeLocalClientKubeconfig } from './local-client.ts';

const work = mkdtempSync(join(tmpdir(), 'tether-local-client-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('tether-edge local-client', () => {
  test('writes a 0600 kubeconfig whose certificate the local CA issued for the name', () => {
    const caDir = join(work, 'ca');
    const ca = openLocalCa(caDir);
    const out = join(work, 'kubectl.kubeconfig');
    expect(writeLocalClientKubeconfig({ caDir, name: 'Kubectl', out })).toEqual({ path: out, name: 'kubectl' });
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const doc = parseYaml(readFileSync(out, 'utf8'));
    expect(doc.clusters[0].cluster.server).toBe('https://127.0.0.1:10261');
    const cert = new X509Certificate(Buffer.from(doc.users[0].user['client-certificate-data'], 'base64'));
    expect(cert.subject).toBe('CN=kubectl');
    expect(cert.checkIssued(ca.cert) && cert.verify(ca.cert.publicKey)).toBe(true);
    expect(() => writeLocalClientKubeconfig({ caDir, name: 'kubectl', out })).toThrow('exists');
  });

  test('refuses a bad name and a missing CA without writing anything', () => {
    expect(() => writeLocalClientKubeconfig({ caDir: join(work, 'ca'), name: 'a b', out: join(work, 'x') })).toThrow('not a component name');
    expect(() => writeLocalClientKubeconfig({ caDir: join(work, 'none'), name: 'x', out: join(work, 'y') })).toThrow('no local CA');
  });
});
