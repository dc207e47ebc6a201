/**
 * Runs the real kubectl against a cluster: the one scripts/kube/build.sh builds from the same
 * k8s.io/kubernetes module as the control plane (TETHER_KUBE_BIN/kubectl, or build.sh's cached
 * folder), or the binary named by TETHER_KUBECTL. Never whatever kubectl the machine has on PATH.
 * It never throws on a non-zero exit, callers look at `code`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface KubectlOptions {
  input?: string;
  /** Kill kubectl after this long (code then 124); default 60 s. */
  timeoutMs?: number;
}

let built: string | undefined;

export function kubectlBinary(): string {
  if (process.env.TETHER_KUBECTL) return process.env.TETHER_KUBECTL;
  const fromEnv = process.env.TETHER_KUBE_BIN ? join(process.env.TETHER_KUBE_BIN, 'kubectl') : undefined;
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  if (!built) {
    // build.sh returns at once when the binaries are cached, and prints their folder last.
    const r = spawnSync('bash', [join(import.meta.dir, '..', '..', 'scripts', 'kube', 'build.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const bin = r.stdout.trim().split('\n').pop() ?? '';
    if (r.status !== 0 || !existsSync(join(bin, 'kubectl'))) throw new Error(`kubectl: scripts/kube/build.sh did not give a kubectl (exit ${r.status})`);
    built = join(bin, 'kubectl');
  }
  return built;
}

export function runKubectl(kubeconfig: string, args: string[], opts: KubectlOptions = {}): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(kubectlBinary(), [`--kubeconfig=${kubeconfig}`, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, KUBECONFIG: kubeconfig },
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`run ${kubectlBinary()}: ${e.message}`, { cause: e }));
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: timedOut ? 124 : (code ?? 1), stdout, stderr: timedOut ? `${stderr}\nkubectl timed out` : stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}
