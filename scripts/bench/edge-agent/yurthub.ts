/**
 * OpenYurt's YurtHub, when the benchmark is given a binary (`--yurthub PATH`): the project never
 * builds or ships it. It runs in an edge site of its own, with the node's client certificate in a
 * kubeconfig as its bootstrap file, proxying on the site's address; requests reach it across the
 * site's veth. Its flags (OpenYurt's yurthub command): --server-addr, --node-name,
 * --bootstrap-file, --working-mode, --bind-address, --bind-proxy-address, --proxy-port,
 * --root-dir; `--yurthub-args` appends or overrides for other releases.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { EdgeSite } from '../../../test/support/netns.ts';

export interface YurtHubProc {
  child: ChildProcess;
  proxy: string;
  log: () => string;
  stop(): Promise<void>;
}

export interface YurtHubOptions {
  bin: string;
  site: EdgeSite;
  server: string;
  nodeName: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  dir: string;
  extraArgs?: string[];
}

/** A kubeconfig with the node's own certificate, which YurtHub uses as it is rather than bootstrapping one. */
function nodeKubeconfig(o: YurtHubOptions): string {
  const file = join(o.dir, 'bootstrap.kubeconfig');
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: o.server, 'certificate-authority': o.caFile } }],
      users: [{ name: 'node', user: { 'client-certificate': o.certFile, 'client-key': o.keyFile } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'node' } }],
      'current-context': 'c',
    }),
  );
  return file;
}

export function startYurtHub(o: YurtHubOptions): YurtHubProc {
  mkdirSync(o.dir, { recursive: true });
  const args = [
    `--server-addr=${o.server}`,
    `--node-name=${o.nodeName}`,
    `--bootstrap-file=${nodeKubeconfig(o)}`,
    '--working-mode=edge',
    `--bind-address=${o.site.address}`,
    `--bind-proxy-address=${o.site.address}`,
    '--proxy-port=10261',
    `--root-dir=${join(o.dir, 'root')}`,
    ...(o.extraArgs ?? []),
  ];
  const child = o.site.spawn([o.bin, ...args]);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    proxy: `http://${o.site.address}:10261`,
    log: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
