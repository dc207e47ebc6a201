/**
 * Runs the real kubectl against a cluster: the `kubectl` on PATH, or the binary named by
 * TETHER_KUBECTL. Works with kubectl 1.33 and 1.32 against the v1.34 control plane (see
 * docs/testing.md); it never throws on a non-zero exit, callers look at `code`.
 */
import { spawn } from 'node:child_process';

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

export function kubectlBinary(): string {
  return process.env.TETHER_KUBECTL || 'kubectl';
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
