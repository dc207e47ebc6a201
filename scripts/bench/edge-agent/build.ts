/** The compiled binaries the benchmarks measure, built by scripts/build.ts (x64 only, no copies or images) into `out`. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export function buildBinaries(out: string): { edge: string; hub: string } {
  const build = join(import.meta.dir, '../../build.ts');
  execFileSync(
    process.execPath,
    [build, '--only', 'tether-edge', '--only', 'tether-hub', '--no-gz', '--target', 'bun-linux-x64', '--no-xz', '--no-node', '--no-images', '--out', out],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return { edge: join(out, 'tether-edge-linux-x64'), hub: join(out, 'tether-hub-linux-x64') };
}
