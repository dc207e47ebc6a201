import { afterAll, describe, expect, test } from 'bun:test';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { treeSnapshot } from './_tree.ts';
import { type ChangePlan, applyChanges, readManifest, undoChanges } from './changes.ts';

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

/** A root that looks like a kubeadm node: a kubelet kubeconfig and kubelet defaults. */
function kubeadmRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'tether-changes-'));
  roots.push(root);
  const put = (p: string, content: string, mode: number) => {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), content);
    chmodSync(join(root, p), mode);
    utimesSync(join(root, p), new Date('2025-01-02T03:04:05Z'), new Date('2025-01-02T03:04:05Z'));
  };
  put('/etc/kubernetes/kubelet.conf', 'apiVersion: v1\nkind: Config\n# original\n', 0o600);
  put('/etc/default/kubelet', 'KUBELET_EXTRA_ARGS=--v=2\n', 0o644);
  mkdirSync(join(root, 'var/lib/kubelet'), { recursive: true });
  return root;
}

function plan(extra: Partial<ChangePlan> = {}): ChangePlan {
  return {
    manifestPath: '/etc/tether/join.json',
    backupDir: '/etc/tether/backup',
    dirs: [
      { path: '/etc/tether', mode: 0o755, owned: false },
      { path: '/etc/tether/pki', mode: 0o700, owned: true },
      { path: '/etc/tether/backup', mode: 0o700, owned: true },
      { path: '/var/lib/tether', mode: 0o700, owned: true },
    ],
    files: [
      { path: '/etc/tether/pki/node.key', content: 'KEY', mode: 0o600 },
      { path: '/etc/tether/edge.yaml', content: 'nodeName: n\n', mode: 0o644 },
      { path: '/etc/kubernetes/kubelet.conf', content: 'converted\n', mode: 0o600 },
      { path: '/etc/systemd/system/tether-edge.service', content: '[Unit]\n', mode: 0o644 },
    ],
    meta: { node: 'n' },
    ...extra,
  };
}

describe('join change set', () => {
  test('apply writes files with their modes and keeps a backup of what it replaces; undo leaves the root exactly as before', () => {
    const root = kubeadmRoot();
    const before = treeSnapshot(root);
    const m = applyChanges(root, plan());
    expect(readFileSync(join(root, 'etc/kubernetes/kubelet.conf'), 'utf8')).toBe('converted\n');
    expect(readFileSync(join(root, 'etc/tether/backup/etc/kubernetes/kubelet.conf'), 'utf8')).toContain('# original');
    expect(statSync(join(root, 'etc/tether/pki')).mode & 0o777).toBe(0o700);
    expect(statSync(join(root, 'etc/tether/pki/node.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(root, 'etc/tether/edge.yaml')).mode & 0o777).toBe(0o644);
    expect(m.backups.map((b) => b.path)).toEqual(['/etc/kubernetes/kubelet.conf']);
    expect(readManifest(root, '/etc/tether/join.json')).toEqual(m);
    // The agent writes its store; rotation leaves a file in pki.
    writeFileSync(join(root, 'var/lib/tether/tether.db'), 'db');
    writeFileSync(join(root, 'etc/tether/pki/node.crt.new'), 'x');

    const undone = undoChanges(root, '/etc/tether/join.json', m);
    expect(undone.restored).toEqual(['/etc/kubernetes/kubelet.conf']);
    expect(undone.kept).toEqual([]);
    expect(treeSnapshot(root)).toEqual(before);
  });

  test('a second apply is refused while the first is in place', () => {
    const root = kubeadmRoot();
    applyChanges(root, plan());
    expect(() => applyChanges(root, plan())).toThrow('has joined already');
  });

  test('a write that fails half-way undoes everything written before it', () => {
    const root = kubeadmRoot();
    // /etc/systemd is a file, so /etc/systemd/system cannot be created: the last step fails.
    writeFileSync(join(root, 'etc/systemd'), 'not a directory');
    const before = treeSnapshot(root);
    expect(() => applyChanges(root, plan())).toThrow(/every change was undone/);
    expect(treeSnapshot(root)).toEqual(before);
  });

  test('a failure after the backups undoes them too', () => {
    const root = kubeadmRoot();
    // A directory where the last file's temporary copy must go: that write fails after the
    // kubelet kubeconfig was backed up and replaced.
    mkdirSync(join(root, 'etc/systemd/system/tether-edge.service.tether-tmp'), { recursive: true });
    const before = treeSnapshot(root);
    expect(() => applyChanges(root, plan())).toThrow(/write .*tether-edge.service: .*every change was undone/);
    expect(treeSnapshot(root)).toEqual(before);
  });

  test('undo after a crash between manifest and backups leaves originals untouched', () => {
    const root = kubeadmRoot();
    const m = applyChanges(root, plan());
    // Simulate the crash: the backup was never taken and the original never replaced.
    writeFileSync(join(root, 'etc/kubernetes/kubelet.conf'), 'apiVersion: v1\nkind: Config\n# original\n');
    rmSync(join(root, 'etc/tether/backup/etc/kubernetes/kubelet.conf'));
    undoChanges(root, '/etc/tether/join.json', m);
    expect(readFileSync(join(root, 'etc/kubernetes/kubelet.conf'), 'utf8')).toContain('# original');
    expect(existsSync(join(root, 'etc/tether'))).toBe(false);
  });

  test('directories join created that now hold foreign files are kept and reported', () => {
    const root = kubeadmRoot();
    const m = applyChanges(root, plan());
    writeFileSync(join(root, 'etc/tether/notes.txt'), 'mine');
    const undone = undoChanges(root, '/etc/tether/join.json', m);
    expect(undone.kept).toEqual(['/etc/tether']);
    expect(readFileSync(join(root, 'etc/tether/notes.txt'), 'utf8')).toBe('mine');
  });
});
