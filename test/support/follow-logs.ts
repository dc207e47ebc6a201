/** `kubectl logs -f` against the kubelet simulator: the line numbers it streams, followed until `count` arrive. */
import { spawn } from 'node:child_process';
import { kubectlBinary } from './kubectl.ts';
import { until } from './wait.ts';

export async function followLogLines(kubeconfig: string, pod: string, count = 3): Promise<number[]> {
  const follow = spawn(kubectlBinary(), [`--kubeconfig=${kubeconfig}`, 'logs', '-f', '--tail=1', pod]);
  let text = '';
  follow.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
  const numbers = () => [...text.matchAll(/line (\d+)/g)].map((m) => Number(m[1]));
  try {
    return await until('followed lines', async () => numbers(), (n) => n.length >= count, 30_000);
  } finally {
    follow.kill();
  }
}
