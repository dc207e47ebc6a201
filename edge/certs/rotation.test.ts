import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { createServer } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryLogger } from '../../shared/log.ts';
import { checkTls } from '../upstream/tls.ts';
import { type FakeCsrApi, startFakeCsrApi } from '../../test/support/fake-csr-api.ts';
import { recoverCertFiles, writeCertPair } from './cert-files.ts';
import { type CertRotation, type RotatedTls, renewalDeadline, startCertRotation } from './rotation.ts';
import { waitFor } from '../../test/support/wait.ts';

let api: FakeCsrApi;
const dirs: string[] = [];
const rotations: CertRotation[] = [];
beforeAll(async () => {
  api = await startFakeCsrApi();
});
afterAll(async () => {
  await api.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
afterEach(() => {
  for (const r of rotations.splice(0)) r.stop();
});

/** A node directory with a CA file and a one-day certificate for `node`. */
async function nodeFiles(node: string) {
  const dir = mkdtempSync(join(tmpdir(), 'tether-rotation-'));
  dirs.push(dir);
  const files = { caFile: join(dir, 'ca.crt'), certFile: join(dir, 'pki', 'node.crt'), keyFile: join(dir, 'pki', 'node.key'), bootstrapTokenFile: join(dir, 'pki', 'bootstrap-token') };
  writeFileSync(files.caFile, api.caPem);
  const first = await api.issue(`system:node:${node}`);
  writeCertPair(files, first.certPem, first.keyPem);
  return { dir, ...files, first: new X509Certificate(first.certPem) };
}

async function closedPort(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `https://127.0.0.1:${port}`;
}

describe('renewal deadline', () => {
  test('falls at 70 % to 90 % of the lifetime, by the random draw', () => {
    const nb = new Date('2026-01-01T00:00:00Z');
    const na = new Date('2026-01-11T00:00:00Z'); // ten days
    expect(renewalDeadline(nb, na, () => 0)).toBe(Date.parse('2026-01-08T00:00:00Z'));
    expect(renewalDeadline(nb, na, () => 0.5)).toBe(Date.parse('2026-01-09T00:00:00Z'));
    expect(renewalDeadline(nb, na, () => 0.999999)).toBeLessThan(Date.parse('2026-01-10T00:00:00Z') + 1);
  });
});

describe('certificate rotation', () => {
  test('renews when the deadline passes, with the current certificate, and hands the new pair over', async () => {
    const f = await nodeFiles('n1');
    const log = createMemoryLogger();
    let clock = new Date(f.first.validTo).getTime() - 60_000; // past 90 %: due at once
    const handed: RotatedTls[] = [];
    const r = startCertRotation({
      nodeName: 'n1', servers: [api.url], ...f, log, now: () => clock,
      onRotated: (tls) => {
        handed.push(tls);
        clock = Date.now(); // the new certificate's deadline lies ahead
      },
    });
    rotations.push(r);
    await waitFor('the first rotation', () => r.status().rotations === 1, 20_000);
    const created = api.created.at(-1)!;
    expect(created.by).toBe('cert:system:node:n1');
    const onDisk = new X509Certificate(readFileSync(f.certFile));
    expect(onDisk.serialNumber).not.toBe(f.first.serialNumber);
    expect(onDisk.subject).toContain('CN=system:node:n1');
    expect(handed).toHaveLength(1);
    expect(handed[0]!.cert.toString()).toBe(readFileSync(f.certFile, 'utf8'));
    expect(() => checkTls(handed[0]!)).not.toThrow(); // the pool will accept it
    expect(statSync(f.keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(f.certFile).mode & 0o777).toBe(0o600);
    const st = r.status();
    expect(st.state).toBe('valid');
    expect(st.problem).toBeNull();
    expect(Date.parse(st.renewAt)).toBeGreaterThan(clock);
    expect(log.lines.map((l) => l.msg)).toContain('node certificate rotated');
  });

  test('through the hub: the CSR requests go on the given agent (plain HTTP to the via-hub name), and the hub lends the node identity', async () => {
    const f = await nodeFiles('n9');
    const target = new URL(api.url);
    let opened = 0;
    // Stands in for the hub agent: its connections reach the CSR API as the node, as tether-hub forwards them.
    class HubStandIn extends Agent {
      override createConnection() {
        opened++;
        return tlsConnect({ host: target.hostname, port: Number(target.port), ca: api.caPem, cert: readFileSync(f.certFile), key: readFileSync(f.keyFile) });
      }
    }
    const agent = new HubStandIn({ keepAlive: true });
    const r = startCertRotation({ nodeName: 'n9', servers: ['http://kube-apiserver.tether/'], agent: () => agent, ...f, log: createMemoryLogger(), onRotated: () => {} });
    rotations.push(r);
    await r.renewNow();
    agent.destroy();
    expect(r.status().rotations).toBe(1);
    expect(opened).toBeGreaterThan(0);
    expect(api.created.at(-1)!.by).toBe('cert:system:node:n9');
  });

  test('a server that cannot be reached is skipped for the next one', async () => {
    const f = await nodeFiles('n2');
    const r = startCertRotation({ nodeName: 'n2', servers: [await closedPort(), api.url], ...f, log: createMemoryLogger(), onRotated: () => {} });
    rotations.push(r);
    await r.renewNow();
    expect(r.status().rotations).toBe(1);
    expect(api.created.at(-1)!.by).toBe('cert:system:node:n2');
  });

  test('expired without a bootstrap token: a clear problem in status and an error in the log, then a fresh token re-bootstraps', async () => {
    const f = await nodeFiles('n3');
    const log = createMemoryLogger();
    let clock = new Date(f.first.validTo).getTime() + 1000;
    const r = startCertRotation({
      nodeName: 'n3', servers: [api.url], ...f, log, now: () => clock, retryMs: 3_600_000,
      onRotated: () => (clock = Date.now()),
    });
    rotations.push(r);
    await waitFor('a problem reported', () => r.status().problem !== null, 20_000);
    let st = r.status();
    expect(st.state).toBe('expired');
    expect(st.problem).toContain('certificate expired at');
    expect(st.problem).toContain('tether-hub token create');
    expect(st.problem).toContain(f.bootstrapTokenFile);
    expect(log.lines.find((l) => l.level === 'error' && l.msg === 'certificate renewal failed')).toBeDefined();

    // A token the apiserver rejects is reported as such.
    writeFileSync(f.bootstrapTokenFile, 'abcdef.0123456789abcdef\n');
    await expect(r.renewNow()).rejects.toThrow('rejected the bootstrap token');
    expect(r.status().problem).toContain('rejected the bootstrap token');

    // A valid one is used (without the expired certificate), then deleted.
    api.tokens.add('ghijkl.0123456789abcdef');
    writeFileSync(f.bootstrapTokenFile, 'ghijkl.0123456789abcdef\n');
    await r.renewNow();
    expect(api.created.at(-1)!.by).toBe('token:ghijkl');
    st = r.status();
    expect(st).toMatchObject({ state: 'valid', rotations: 1, problem: null });
    expect(existsSync(f.bootstrapTokenFile)).toBe(false);
  });

  test('a denied request is reported with its reason and retried later', async () => {
    const f = await nodeFiles('n4');
    const log = createMemoryLogger();
    api.deny = true;
    try {
      const r = startCertRotation({ nodeName: 'n4', servers: [api.url], ...f, log, onRotated: () => {}, retryMs: 3_600_000, maxRetryMs: 3_600_000 });
      rotations.push(r);
      const before = Date.now();
      await expect(r.renewNow()).rejects.toThrow('was denied (TestDenied)');
      const st = r.status();
      expect(st.problem).toContain('was denied (TestDenied)');
      expect(st.state).toBe('valid'); // the current certificate still works
      expect(Date.parse(st.renewAt)).toBeGreaterThanOrEqual(before + 0.8 * 3_600_000 - 1000);
      expect(readFileSync(f.certFile, 'utf8')).toBe(f.first.toString());
    } finally {
      api.deny = false;
    }
  });
});

describe('certificate files', () => {
  test('an interrupted replacement is completed when the new certificate pairs with the key, discarded otherwise', async () => {
    const f = await nodeFiles('n5');
    const next = await api.issue('system:node:n5');
    // Crash between the two renames: new key in place, new certificate still beside it.
    writeFileSync(f.keyFile, next.keyPem);
    writeFileSync(`${f.certFile}.new`, next.certPem);
    expect(recoverCertFiles(f)).toBe('completed');
    expect(readFileSync(f.certFile, 'utf8')).toBe(next.certPem);
    // Crash while writing: both .new files, the pair in place untouched.
    writeFileSync(`${f.keyFile}.new`, 'partial');
    writeFileSync(`${f.certFile}.new`, 'partial');
    expect(recoverCertFiles(f)).toBe('discarded');
    expect(existsSync(`${f.keyFile}.new`) || existsSync(`${f.certFile}.new`)).toBe(false);
    expect(readFileSync(f.keyFile, 'utf8')).toBe(next.keyPem);
    expect(recoverCertFiles(f)).toBe('none');
  });
});

