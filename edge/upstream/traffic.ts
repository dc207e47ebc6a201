/**
 * What the link to the apiservers costs: bytes sent and received by the agent's own upstream
 * traffic, by kind, in total and over the last hour and day.
 *
 * Kinds: `probe` (health probes), `request` (proxied requests other than watches), `watch`
 * (proxied watches and the agent's own NodePool watch), `replay` (the outbox after a reconnect),
 * `discovery` (the discovery documents the agent keeps for offline kubectl).
 *
 * Bytes are counted at the HTTP level: request and status lines, headers and bodies as they cross
 * the connection (a gzip answer counts its compressed size). TLS records and TCP/IP headers are not
 * seen by the process and not included; `scripts/bench/wan.ts` measures the wire itself.
 *
 * The hour and day windows are kept in one-minute buckets (1,440 numbers per series).
 */
export type TrafficKind = 'probe' | 'request' | 'watch' | 'replay' | 'discovery';
export type TrafficDirection = 'sent' | 'received';
export const TRAFFIC_KINDS: readonly TrafficKind[] = ['probe', 'request', 'watch', 'replay', 'discovery'];
export const TRAFFIC_DIRECTIONS: readonly TrafficDirection[] = ['sent', 'received'];

/** Bytes by direction, then kind. */
export type TrafficFigures = Record<TrafficDirection, Record<TrafficKind, number>>;

export interface TrafficMeter {
  add(direction: TrafficDirection, kind: TrafficKind, bytes: number): void;
  total(): TrafficFigures;
  /** Bytes in the last `ms` (rounded to whole minutes, the current one included). */
  last(ms: number): TrafficFigures;
}

const MINUTE = 60_000;
const DAY_MINUTES = 24 * 60;

const empty = (): TrafficFigures => ({
  sent: { probe: 0, request: 0, watch: 0, replay: 0, discovery: 0 },
  received: { probe: 0, request: 0, watch: 0, replay: 0, discovery: 0 },
});

export function createTrafficMeter(opts: { now?: () => number } = {}): TrafficMeter {
  const now = opts.now ?? Date.now;
  const totals = empty();
  /** One ring per series: bucket i holds the bytes of minute `minuteOf[i]`. */
  const rings = new Map<string, { bytes: Float64Array; minuteOf: Float64Array }>();
  const ring = (d: TrafficDirection, k: TrafficKind) => {
    const id = `${d}/${k}`;
    let r = rings.get(id);
    if (!r) {
      r = { bytes: new Float64Array(DAY_MINUTES), minuteOf: new Float64Array(DAY_MINUTES).fill(-1) };
      rings.set(id, r);
    }
    return r;
  };
  return {
    add(direction, kind, bytes) {
      if (!(bytes > 0)) return;
      totals[direction][kind] += bytes;
      const minute = Math.floor(now() / MINUTE);
      const r = ring(direction, kind);
      const i = minute % DAY_MINUTES;
      if (r.minuteOf[i] !== minute) {
        r.minuteOf[i] = minute;
        r.bytes[i] = 0;
      }
      r.bytes[i]! += bytes;
    },
    total: () => structuredClone(totals),
    last(ms) {
      const out = empty();
      const current = Math.floor(now() / MINUTE);
      const span = Math.min(DAY_MINUTES, Math.max(1, Math.ceil(ms / MINUTE)));
      for (const d of TRAFFIC_DIRECTIONS) {
        for (const k of TRAFFIC_KINDS) {
          const r = rings.get(`${d}/${k}`);
          if (!r) continue;
          for (let i = 0; i < DAY_MINUTES; i++) {
            const m = r.minuteOf[i]!;
            if (m > current - span && m <= current) out[d][k] += r.bytes[i]!;
          }
        }
      }
      return out;
    },
  };
}
