/**
 * systemd, when join and reset act on the real root of a machine that runs it: reload units,
 * start the agent, restart the kubelet. With `--root DIR` nothing here runs (files only).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface Systemd {
  /** Runs systemctl; resolves with its exit code and output, never rejects. */
  systemctl(args: string[]): Promise<{ code: number; output: string }>;
}

/** systemd is PID 1 (the check sd_booted() makes) and join acts on "/". */
export function detectSystemd(root: string): Systemd | undefined {
  if (root !== '/' || !existsSync('/run/systemd/system')) return undefined;
  return {
    systemctl: (args) =>
      new Promise((resolve) => {
        execFile('systemctl', args, { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
          resolve({ code, output: `${stdout}${stderr}`.trim() });
        });
      }),
  };
}
