/**
 * The control-plane binaries: scripts/kube/build.sh builds them once into a cache folder and
 * prints that folder on its last stdout line (it returns at once when they are cached).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, TetherError } from '../../shared/errors.ts';

const buildScript = join(import.meta.dir, '..', 'kube', 'build.sh');
const binaries = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl'];

/** Runs build.sh; its progress lines (stderr) go to `progress`. Returns the bin folder. */
export function controlPlaneBinDir(progress: (line: string) => void = () => {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [buildScript], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      for (const line of d.split('\n')) if (line.trim()) progress(line);
    });
    child.once('error', (e) => reject(new TetherError(ErrorCode.Internal, `build control plane: ${e.message}`, { cause: e })));
    child.once('exit', (code) => {
      const bin = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !bin) {
        reject(new TetherError(ErrorCode.Internal, `build control plane: ${buildScript} exited ${code}:\n${err.trim().split('\n').slice(-10).join('\n')}`));
        return;
      }
      const missing = binaries.filter((b) => !existsSync(join(bin, b)));
      if (missing.length) reject(new TetherError(ErrorCode.Internal, `build control plane: ${bin} lacks ${missing.join(', ')}`));
      else resolve(bin);
    });
  });
}
