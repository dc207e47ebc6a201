/**
 * The client side of scripts/bench/tunnel.ts: dialing a target directly or through the hub's
 * CONNECT endpoint, a timed bulk download, and timed small round trips.
 */
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';

export type Dialer = (port: number) => Promise<Duplex>;

export function directConnect(host: string, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host, port, noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });
}

/** TLS to the hub, CONNECT target; resolves with the tunnel once the hub answered 200. */
export function connectThroughHub(hub: string, target: string, tls: { ca: Buffer; cert: Buffer; key: Buffer }): Promise<Duplex> {
  const i = hub.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: hub.slice(0, i), port: Number(hub.slice(i + 1)), ...tls }, () => {
      s.setNoDelay(true);
      s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    });
    let head = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const at = head.indexOf('\r\n\r\n');
      if (at < 0) return;
      s.off('data', onData);
      s.pause();
      const status = head.subarray(0, head.indexOf('\r\n')).toString();
      if (!status.includes(' 200 ')) return reject(new Error(`CONNECT ${target}: ${status}`));
      if (head.length > at + 4) s.unshift(head.subarray(at + 4));
      resolve(s);
    };
    s.on('data', onData);
    s.once('error', reject);
  });
}

/** Asks the source target for `bytes` and times their arrival (stops early when `keepGoing` says so). */
export async function download(dial: Dialer, port: number, bytes: number, keepGoing: () => boolean = () => true): Promise<{ bytes: number; ms: number }> {
  const s = await dial(port);
  const t = performance.now();
  let got = 0;
  await new Promise<void>((resolve, reject) => {
    s.on('data', (c: Buffer) => {
      got += c.length;
      if (!keepGoing()) s.destroy();
    });
    s.once('end', () => resolve());
    s.once('close', () => resolve());
    s.once('error', reject);
    s.resume();
    s.write(`${bytes}\n`);
  });
  const took = performance.now() - t;
  s.destroy();
  return { bytes: got, ms: took };
}

/** Opens one connection to the echo target and times `count` round trips of `size` bytes. */
export async function roundTrips(dial: Dialer, port: number, count: number, size: number): Promise<number[]> {
  const s = await dial(port);
  const msg = Buffer.alloc(size, 0x61);
  const times: number[] = [];
  let pending = 0;
  let done: (() => void) | undefined;
  s.on('data', (c: Buffer) => {
    pending -= c.length;
    if (pending <= 0) done?.();
  });
  s.on('error', () => {});
  s.resume();
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    pending = size;
    await new Promise<void>((r) => {
      done = r;
      s.write(msg);
    });
    times.push(performance.now() - t);
  }
  await new Promise<void>((r) => {
    s.once('close', () => r());
    s.end();
  });
  return times;
}
