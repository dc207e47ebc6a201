#!/usr/bin/env bun
/**
 * Destination servers for scripts/bench/tunnel.ts, in a process of their own (as a kubelet is):
 *   echo    every byte back (request/response latency, open/close cycles)
 *   source  reads "<n>\n", sends n bytes with backpressure, then ends (bulk transfer)
 * Prints one JSON line {"echo": port, "source": port}.
 */
import { createServer, type Socket } from 'node:net';

const listen = (handler: (s: Socket) => void) =>
  new Promise<number>((resolve) => {
    const s = createServer(handler);
    s.listen(0, '127.0.0.1', () => resolve((s.address() as { port: number }).port));
  });

const chunk = Buffer.alloc(64 * 1024, 0x5a);
const echo = await listen((s) => {
  s.on('error', () => {});
  s.setNoDelay(true);
  s.pipe(s);
});
const source = await listen((s) => {
  s.on('error', () => {});
  let line = '';
  const onData = (d: Buffer) => {
    line += d.toString('latin1');
    const nl = line.indexOf('\n');
    if (nl < 0) return;
    s.off('data', onData);
    let left = Number(line.slice(0, nl));
    const pump = () => {
      while (left > 0) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= piece.length;
        if (!s.write(piece)) return void s.once('drain', pump);
      }
      s.end();
    };
    pump();
  };
  s.on('data', onData);
});
process.stdout.write(JSON.stringify({ echo, source }) + '\n');
