/**
 * Over-the-air upgrades end to end (issue 18), on the real control plane: three edge nodes in two
 * NodePools, each in its own edge site, joined by the compiled tether-edge 0.90.0 with
 * `join --release-key` under a temporary root, and run as systemd runs them (test/support/
 * unit-runner.ts: the unit join wrote, its ExecStartPre guard by the known-good binary, Restart=
 * always, RestartSec=2); a simulated kubelet on each talks to its agent with the kubeconfig join
 * wrote. The hub's EdgeUpgrade controller runs in this process with the hub's RBAC; the releases
 * are real signed builds (test/support/upgrade-release.ts) served over HTTPS from 198.18.0.1.
 *
 * In order: a release whose binary changed after signing, and one signed by another key, are
 * refused by the node they reach, nothing is swapped, and the EdgeUpgrade fails naming the node
 * and the reason; 0.91.0 rolls out pool by pool, one node at a time, every Node reports it, every
 * install path holds it (n2's agent is killed with SIGKILL right after it restarts into 0.91.0),
 * the status says Complete; a build that fails its start-up (0.92.0) is
 * rolled back by the guard on the node it reached, the rollout stops in that wave, the status
 * says why, and every node still runs a working 0.91.0.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EDGE_VERSION_ANNOTATION, FINAL_PHASES, UPGRADE_STATUS_ANNOTATION, UPGRADE_TARGET_ANNOTATION, type UpgradePhase } from '../shared/upgrade/contract.ts';
import { type Cluster, type CsrApprover, sharedCluster, startCsrApprover } from './support/cluster.ts';
import { type EdgeSite, createEdgeSite } from './support/netns.ts';
import { crdDir, deployDir, kubectlOf, nodeReady, startHub, tokenKubeconfig, until, type InProcessHub } from './support/pools.ts';
import { bunBin, run } from './support/run.ts';
import { type UnitRunner, runUnit } from './support/unit-runner.ts';
import { ARTIFACT, type ReleaseServer, buildBroken, buildEdge, makeReleaseKey, serveReleases, writeRelease } from './support/upgrade-release.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('edge-upgrade.e2e.test.ts skipped: edge network namespaces need root');

const hubMain = fileURLToPath(new URL('../cloud/main.ts', import.meta.url));
const simMain = fileURLToPath(new URL('./support/kubelet-sim/main.ts', import.meta.url));
const id = String(process.pid);
const ns = `up-e2e-${id}`;
const north = `up-north-${id}`;
const south = `up-south-${id}`;
const names = [1, 2, 3].map((i) => `up-n${i}-${id}`);
const [n1, n2, n3] = names as [string, string, string];
const poolOf: Record<string, string> = { [n1]: north, [n2]: north, [n3]: south };
const V1 = '0.90.0';
const V2 = '0.91.0';
const BROKEN = '0.92.0';
const rollouts = { sum: `up-checksum-${id}`, sig: `up-signature-${id}`, good: `up-good-${id}`, broken: `up-broken-${id}` };

interface EdgeNode {
  name: string;
  site: EdgeSite;
  root: string;
  unit: UnitRunner;
  sim?: ChildProcess;
  simLog: string[];
}

describe.skipIf(!isRoot)('over-the-air upgrades of tether-edge on the real control plane', () => {
  const work = mkdtempSync(join(tmpdir(), 'tether-upgrade-e2e-'));
  let cluster: Cluster;
  let kubectl: ReturnType<typeof kubectlOf>;
  let approver: CsrApprover | undefined;
  let hub: InProcessHub | undefined;
  let server: ReleaseServer | undefined;
  const nodes: EdgeNode[] = [];
  const binaries: Record<string, string> = {};

  const getJson = async (args: string[]) => JSON.parse(await kubectl([...args, '-o', 'json']));
  const node = (n: string) => getJson(['get', 'node', n]);
  const eu = (name: string) => getJson(['get', 'edgeupgrade', name]);
  const versions = async () => Object.fromEntries((await Promise.all(names.map(node))).map((n) => [n.metadata.name, n.metadata.annotations?.[EDGE_VERSION_ANNOTATION]]));
  const targeted = async () => (await Promise.all(names.map(node))).filter((n) => n.metadata.annotations?.[UPGRADE_TARGET_ANNOTATION]).map((n) => n.metadata.name as string);
  /** Nodes targeted whose own status for that target is not final yet: the ones upgrading now. */
  const upgrading = async () =>
    (await Promise.all(names.map(node)))
      .filter((n) => {
        const a = n.metadata.annotations ?? {};
        if (!a[UPGRADE_TARGET_ANNOTATION]) return false;
        const t = JSON.parse(a[UPGRADE_TARGET_ANNOTATION]);
        const st = a[UPGRADE_STATUS_ANNOTATION] ? JSON.parse(a[UPGRADE_STATUS_ANNOTATION]) : undefined;
        return !(st && st.uid === t.uid && st.version === t.version && FINAL_PHASES.has(st.phase as UpgradePhase));
      })
      .map((n) => n.metadata.name as string);
  const installed = (n: EdgeNode) => readFileSync(join(n.root, 'usr/local/bin/tether-edge'));
  const isBuild = (n: EdgeNode, v: string) => installed(n).equals(readFileSync(binaries[v]!));
  const explain = (e: unknown): never => {
    const tail = nodes.map((n) => `--- ${n.name} ---\n${n.unit.log.slice(-25).join('\n')}`).join('\n');
    throw new Error(`${(e as Error).message}\n--- hub ---\n${(hub?.log ?? []).slice(-20).join('\n')}\n${tail}`);
  };
  const edgeUpgrade = (name: string, version: string, release: string, o: { pools?: string[]; maxUnavailable?: number } = {}) =>
    JSON.stringify({
      apiVersion: 'apps.tether.dev/v1alpha1', kind: 'EdgeUpgrade', metadata: { name },
      spec: { version, baseURL: server!.baseURL(release), pools: o.pools ?? [north, south], maxUnavailable: o.maxUnavailable ?? 1 },
    });
  /** `tether-edge status --json` of the agent in the node's site (its own 127.0.0.1:10267). */
  const agentStatus = async (n: EdgeNode) => {
    const r = await n.site.exec([join(n.root, 'usr/local/bin/tether-edge'), 'status', '--json'], { timeoutMs: 20_000 });
    return JSON.parse(r.stdout);
  };

  beforeAll(async () => {
    cluster = await sharedCluster();
    kubectl = kubectlOf(cluster);
    approver = await startCsrApprover(cluster);
    // Releases: three real builds (cached), one signing key pinned at join, four release folders.
    binaries[V1] = buildEdge(V1);
    binaries[V2] = buildEdge(V2);
    binaries[BROKEN] = await buildBroken(BROKEN);
    const key = makeReleaseKey(work);
    const releases = join(work, 'releases');
    writeRelease(releases, 'good', { version: V2, binary: binaries[V2], key });
    writeRelease(releases, 'broken', { version: BROKEN, binary: binaries[BROKEN], key });
    writeRelease(releases, 'checksum', { version: '0.93.0', binary: binaries[V2], key, tamper: 'checksum' });
    writeRelease(releases, 'signature', { version: '0.93.1', binary: binaries[V2], key, tamper: 'signature' });
    server = await serveReleases(releases, work);

    await kubectl(['apply', '-f', crdDir]);
    await kubectl(['wait', '--for', 'condition=established', 'crd/nodepools.apps.tether.dev', 'crd/edgeupgrades.apps.tether.dev']);
    await kubectl(['apply', '-f', `${deployDir}namespace.yaml`, '-f', `${deployDir}rbac.yaml`]);
    await kubectl(['create', 'namespace', ns]);
    await kubectl(['create', 'role', 'lease', '-n', ns, '--verb=get,update', '--resource=leases', '--resource-name=tether-hub-controllers']);
    await kubectl(['create', 'role', 'lease-create', '-n', ns, '--verb=create', '--resource=leases']);
    for (const r of ['lease', 'lease-create']) await kubectl(['create', 'rolebinding', r, '-n', ns, `--role=${r}`, '--serviceaccount=tether-system:tether-hub']);

    // The join command as an operator gets it, used on each node with its pool and the release key.
    const tok = await run([bunBin, hubMain, 'token', 'create', '--kubeconfig', cluster.adminKubeconfig, '--ttl', '30m', '--hub', 'wss://198.18.0.1:8443', '--description', 'upgrade e2e']);
    if (tok.code !== 0) throw new Error(`tether-hub token create: ${tok.stderr}`);
    const joinWords = tok.stdout.trim().split(' ').slice(2);
    for (const [i, name] of names.entries()) {
      const site = await createEdgeSite(`up${i + 1}-${id}`);
      const root = join(work, name);
      mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
      copyFileSync(binaries[V1], join(root, 'usr/local/bin/tether-edge'));
      const j = await site.exec(
        [join(root, 'usr/local/bin/tether-edge'), 'join', ...joinWords, '--node-name', name, '--pool', poolOf[name]!, '--release-key', key.publicKeyFile, '--binary', '/usr/local/bin/tether-edge', '--root', root],
        { timeoutMs: 180_000 },
      );
      if (j.code !== 0) throw new Error(`join ${name}: ${j.stderr}${j.stdout}`);
      const unitText = readFileSync(join(root, 'etc/systemd/system/tether-edge.service'), 'utf8');
      // The release server's test CA stands for the node's system CA store.
      const unit = runUnit({ site, unit: unitText, root, env: { NODE_EXTRA_CA_CERTS: server.caFile } });
      const simLog: string[] = [];
      const sim = site.spawn([bunBin, simMain, '--node-name', name, '--kubeconfig', join(root, 'etc/kubernetes/kubelet.conf'), '--address', site.address, '--log-level', 'warn']);
      sim.stderr?.on('data', (d: Buffer) => simLog.push(String(d)));
      nodes.push({ name, site, root, unit, sim, simLog });
    }
    await until('nodes Ready', () => Promise.all(names.map(node)), (xs) => xs.every(nodeReady), 180_000).catch(explain);
    await kubectl(['label', '--overwrite', 'node', n1, n2, `apps.tether.dev/pool=${north}`]);
    await kubectl(['label', '--overwrite', 'node', n3, `apps.tether.dev/pool=${south}`]);
    const pools = [north, south].map((name) => ({ apiVersion: 'apps.tether.dev/v1alpha1', kind: 'NodePool', metadata: { name }, spec: {} }));
    await kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: pools }));
    const token = (await kubectl(['create', 'token', 'tether-hub', '-n', 'tether-system', '--duration=2h'])).trim();
    hub = startHub(tokenKubeconfig(cluster, token), `hub-${id}`, ns, { edgeUpgrades: true, poolSets: false, autonomy: false, csrApproval: false });
    await hub.controllers.running();
  }, 1_200_000);

  afterAll(async () => {
    await hub?.controllers.stop();
    for (const n of nodes) {
      n.sim?.kill('SIGTERM');
      await n.unit.stop();
      await n.site.destroy();
    }
    await approver?.stop();
    await server?.close();
    if (cluster) {
      await cluster.kubectl(['delete', 'edgeupgrade', ...Object.values(rollouts), '--ignore-not-found']);
      await cluster.kubectl(['delete', 'namespace', ns, '--wait=false', '--ignore-not-found']);
      await cluster.kubectl(['delete', 'nodepool', north, south, '--ignore-not-found']);
      await cluster.kubectl(['delete', 'node', ...names, '--ignore-not-found', '--wait=false']);
    }
    rmSync(work, { recursive: true, force: true });
  }, 180_000);

  test('joined with --release-key and run by the unit join wrote: every Node reports 0.90.0, the guard has nothing to do', async () => {
    expect(await until('versions reported', versions, (v) => names.every((n) => v[n] === V1)).catch(explain)).toEqual(Object.fromEntries(names.map((n) => [n, V1])));
    for (const n of nodes) {
      expect(readFileSync(join(n.root, 'etc/tether/edge.yaml'), 'utf8')).toContain('releaseKey: |');
      expect(n.unit.starts()).toBe(1);
      expect(isBuild(n, V1)).toBe(true);
    }
  }, 120_000);

  for (const [kind, name, version, reason] of [
    ['whose binary changed after signing', rollouts.sum, '0.93.0', new RegExp(`${ARTIFACT}\\.gz: sha256 [0-9a-f]{64} does not match SHA256SUMS`)],
    ['signed by another key', rollouts.sig, '0.93.1', /SHA256SUMS\.sig does not verify with the pinned release key/],
  ] as const) {
    test(`a release ${kind} is refused by every node, nothing is swapped, and the EdgeUpgrade fails naming node and reason`, async () => {
      // One rollout per pool, each pool's nodes all in one wave: every node is asked, and every node refuses.
      for (const [pool, members] of [[north, [n1, n2]], [south, [n3]]] as const) {
        const rollout = `${name}-${pool === north ? 'n' : 's'}`;
        await kubectl(['apply', '-f', '-'], edgeUpgrade(rollout, version, kind.startsWith('whose') ? 'checksum' : 'signature', { pools: [pool], maxUnavailable: 3 }));
        const failed = await until(`${rollout} Failed with every node's report`, () => eu(rollout),
          (u) => u.status?.phase === 'Failed' && (u.status.nodes ?? []).filter((n: any) => n.phase === 'Failed').length === members.length, 240_000).catch(explain);
        expect(failed.status.message).toMatch(new RegExp(`^node (${members.join('|')}): Failed: `));
        expect(failed.status.message).toMatch(reason);
        const refused = failed.status.nodes.filter((n: any) => n.phase === 'Failed');
        expect(refused.map((n: any) => n.name).sort()).toEqual([...members].sort());
        for (const n of refused) expect(n.reason).toMatch(reason);
        await until('targets removed', targeted, (t) => t.length === 0).catch(explain);
        await kubectl(['delete', 'edgeupgrade', rollout]);
      }
      for (const n of nodes) {
        expect(isBuild(n, V1)).toBe(true);
        expect(n.unit.starts()).toBe(1);
        expect(existsSync(join(n.root, 'var/lib/tether/upgrade/releases', version))).toBe(false);
      }
      expect(await versions()).toEqual(Object.fromEntries(names.map((n) => [n, V1])));
    }, 600_000);
  }

  test('0.91.0 rolls out pool by pool, one node at a time, through a kill -9 of one agent on trial; every Node reports it, every install path holds it; Complete', async () => {
    await kubectl(['apply', '-f', '-'], edgeUpgrade(rollouts.good, V2, 'good'));
    // Watch the waves: never two nodes upgrading at once, and the south pool only after the north one.
    const seen: string[][] = [];
    const violations: string[] = [];
    // kill -9 of n2's agent as soon as it has restarted into the new binary (mid-trial, or just
    // after its commit: either way the unit's next start must converge on 0.91.0).
    const second = nodes[1]!;
    let killed = false;
    const done = await until(
      'Complete',
      async () => {
        if (!killed && second.unit.starts() === 2) {
          second.unit.killMain('SIGKILL');
          killed = true;
        }
        const [t, busy, v, u] = await Promise.all([targeted(), upgrading(), versions(), eu(rollouts.good)]);
        seen.push([...t].sort());
        if (busy.length > 1) violations.push(`upgrading at once: ${busy.join(', ')}`);
        if (t.includes(n3) && (v[n1] !== V2 || v[n2] !== V2)) violations.push(`${n3} targeted while the north pool runs ${v[n1]}, ${v[n2]}`);
        return { t, v, u };
      },
      ({ u }) => u.status?.phase === 'Complete',
      600_000,
    ).catch(explain);
    expect(violations).toEqual([]);
    expect(killed).toBe(true);
    expect(second.unit.events.some((e) => e.kind === 'exit' && e.signal === 'SIGKILL')).toBe(true);
    expect(done.u.status).toMatchObject({ updated: 3, total: 3, progress: '3/3' });
    const order = [...new Set(seen.flat())];
    expect(order).toEqual([n1, n2, n3]);
    expect(await until('versions', versions, (v) => names.every((n) => v[n] === V2)).catch(explain)).toEqual(Object.fromEntries(names.map((n) => [n, V2])));
    for (const n of nodes) {
      expect(isBuild(n, V2)).toBe(true);
      expect(readFileSync(join(n.root, 'var/lib/tether/upgrade/known-good')).equals(readFileSync(binaries[V2]!))).toBe(true);
      // One restart into the new binary, through the guard (n2: and one after its kill -9); the unit never hit systemd's start limit.
      expect(n.unit.starts()).toBe(n === second ? 3 : 2);
      expect(n.unit.failed()).toBe(false);
      // `tether-edge status` of the new agent shows both versions and the rollout that brought it.
      const st = await agentStatus(n);
      expect(st.upgrade).toMatchObject({ running: V2, previous: V1, last: { upgrade: rollouts.good, version: V2, phase: 'Healthy' } });
    }
  }, 900_000);

  test('a build that fails its start-up is rolled back by the guard on the node it reached; the rollout stops in that wave and says why', async () => {
    const startsBefore = nodes.map((n) => n.unit.starts());
    await kubectl(['apply', '-f', '-'], edgeUpgrade(rollouts.broken, BROKEN, 'broken'));
    const failed = await until(`${rollouts.broken} Failed`, () => eu(rollouts.broken), (u) => u.status?.phase === 'Failed', 600_000).catch(explain);
    expect(failed.status.message).toMatch(new RegExp(`^node ${n1}: RolledBack: `));
    expect(failed.status.message).toContain(`tether-edge ${BROKEN} did not become healthy in 3 starts`);
    const first = nodes[0]!;
    // The broken binary was started (and failed) before the guard put 0.91.0 back; n1 runs it again.
    expect(first.unit.log.some((l) => l.includes(`${BROKEN} (broken test build)`))).toBe(true);
    expect(isBuild(first, V2)).toBe(true);
    expect(first.unit.failed()).toBe(false);
    const state = JSON.parse(readFileSync(join(first.root, 'var/lib/tether/upgrade/state.json'), 'utf8'));
    expect(state.trial).toBeUndefined();
    expect(state.running).toBe(V2);
    expect(readFileSync(join(first.root, 'var/lib/tether/upgrade/known-good')).equals(readFileSync(binaries[V2]!))).toBe(true);
    expect(first.unit.starts()).toBeGreaterThan(startsBefore[0]! + 1);
    expect(await until('n1 reports 0.91.0', versions, (v) => v[n1] === V2).catch(explain)).toEqual(Object.fromEntries(names.map((n) => [n, V2])));
    // The next nodes were never targeted; nothing changed on them.
    for (const [i, n] of nodes.entries()) {
      if (i === 0) continue;
      expect(isBuild(n, V2)).toBe(true);
      expect(n.unit.starts()).toBe(startsBefore[i]!);
    }
    expect(failed.status.nodes.filter((n: any) => n.name !== n1).every((n: any) => n.phase !== 'RolledBack' && n.phase !== 'Restarting')).toBe(true);
    // Every node ends on a working binary: its agent answers.
    for (const n of nodes) expect((await agentStatus(n)).store).toBeDefined();
  }, 900_000);
});
