/**
 * Test support for the fuzz suites (`*.fuzz.test.ts`): a seeded generator, byte mutations, and
 * resource probes. Each suite runs a fixed seed and one random seed that it prints; to replay a
 * failure, run the suite with TETHER_FUZZ_SEED=<seed> (only that seed then), and TETHER_FUZZ_CASES
 * to change the number of inputs per seed.
 */
import { readdirSync } from 'node:fs';
import { goAwayCodes, type Frame } from '../../shared/tunnel/frames.ts';

export const FIXED_SEED = 0x7e7e_7e7e;

export interface FuzzPlan {
  seeds: number[];
  casesPerSeed: number;
}

/** The seeds to run (printed, so a failure names the one that replays it) and the inputs per seed. */
export function fuzzPlan(target: string, defaultCases: number): FuzzPlan {
  const env = process.env.TETHER_FUZZ_SEED;
  const seeds = env ? [Number(env) >>> 0] : [FIXED_SEED, (Math.random() * 2 ** 32) >>> 0];
  const casesPerSeed = Number(process.env.TETHER_FUZZ_CASES ?? 0) || Math.ceil(defaultCases / seeds.length);
  console.log(`fuzz ${target}: seeds ${seeds.join(', ')} × ${casesPerSeed} inputs (replay one with TETHER_FUZZ_SEED=<seed>)`);
  return { seeds, casesPerSeed };
}

/** mulberry32: small, fast, good enough to drive mutations; the same seed gives the same inputs. */
export function createRandom(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    next,
    int,
    pick: <T>(xs: readonly T[]): T => xs[int(xs.length)]!,
    bytes: (n: number) => Uint8Array.from({ length: n }, () => int(256)),
  };
}
export type Random = ReturnType<typeof createRandom>;

const interesting = [0, 1, 0x7f, 0x80, 0xff, 0x0a, 0x0d, 0x3a, 0x20, 0x00, 0x25, 0x5b, 0x5d];

/** One to four mutations of `base`: bit flips, interesting bytes, inserts, deletes, duplicated runs, truncation, random tails. */
export function mutate(r: Random, base: Uint8Array, maxLength = 96 * 1024): Uint8Array {
  let b = Array.from(base);
  const rounds = 1 + r.int(4);
  for (let i = 0; i < rounds; i++) {
    const at = b.length ? r.int(b.length) : 0;
    switch (r.int(8)) {
      case 0:
        if (b.length) b[at] = b[at]! ^ (1 << r.int(8));
        break;
      case 1:
        if (b.length) b[at] = r.pick(interesting);
        break;
      case 2:
        b.splice(at, 0, ...r.bytes(1 + r.int(16)));
        break;
      case 3:
        b.splice(at, 1 + r.int(16));
        break;
      case 4: {
        const len = 1 + r.int(Math.min(64, Math.max(1, b.length - at)));
        const run = b.slice(at, at + len);
        const times = 1 + r.int(64);
        for (let k = 0; k < times; k++) b.splice(at, 0, ...run);
        break;
      }
      case 5:
        b = b.slice(0, at);
        break;
      case 6:
        b.push(...r.bytes(r.int(32)));
        break;
      default:
        if (b.length >= 4) {
          const v = r.pick([0, 0xffffffff, 0x7fffffff, 0x10000, 0x10001, r.int(2 ** 32)]);
          b[at] = v >>> 24;
          if (at + 3 < b.length) [b[at + 1], b[at + 2], b[at + 3]] = [(v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
        }
    }
  }
  return Uint8Array.from(b.slice(0, maxLength));
}

/** Open file descriptors of this process (Linux). */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Heap in use after a full collection, in bytes. */
export function heapAfterGc(): number {
  const bun = (globalThis as { Bun?: { gc(sync: boolean): void } }).Bun;
  bun?.gc(true);
  return process.memoryUsage().heapUsed;
}

/** A valid frame of a random type (the starting point of mutations). */
export function sampleFrame(r: Random): Frame {
  const stream = 1 + r.int(1000);
  const host = r.pick(['10.0.0.1', 'fd00::1', 'edge-1', 'kubelet.local', '198.18.3.2']);
  switch (r.int(12)) {
    case 0:
      return { type: 'hello', hello: { node: 'edge-1', addresses: [host, '198.18.1.2'], version: '0.1.0' }, ...(r.int(2) ? { compression: ['deflate'] } : {}) };
    case 1:
      return { type: 'welcome', session: 's-' + r.int(1e6), ...(r.int(2) ? { compression: 'deflate' } : {}) };
    case 2:
      return { type: 'ping', data: r.bytes(8) };
    case 3:
      return { type: 'pong', data: r.bytes(8) };
    case 4:
      return { type: 'drain', reason: 'replica stopping' };
    case 5:
      return { type: 'goaway', code: r.pick(goAwayCodes), reason: 'bye' };
    case 6:
      return { type: 'open', stream, host, port: r.int(65536), window: 1 + r.int(2 ** 20), ...[{}, { compress: true as const }, { compress: 'answers' as const }][r.int(3)] };
    case 7:
      return { type: 'open-result', stream, result: r.int(2) ? { ok: true, window: 65536 } : { ok: false, code: 'E_TUNNEL_DENIED', reason: 'port 22 is not allowed' } };
    case 8:
      return { type: 'data', stream, data: r.bytes(1 + r.int(512)) };
    case 10:
      return { type: 'zdata', stream, data: r.bytes(1 + r.int(512)) };
    case 9:
      return { type: 'credit', stream, increment: 1 + r.int(2 ** 20) };
    default:
      return { type: 'close', stream, reset: r.int(2) === 1, reason: 'done' };
  }
}
