/**
 * The link's round-trip time, estimated the way TCP does it (RFC 6298, Jacobson/Karels): a smoothed
 * mean `srtt` and a mean deviation `rttvar` of the samples, so a jittery link gets wider margins and
 * a steady one narrow margins. Samples are the durations of health probes and the time to the first
 * byte of ordinary requests, so server time is included (that only makes the margins wider).
 *
 * The two timeouts the upstream pool uses are derived here, each never below its floor:
 * - `stallMs()`: a request still without an answer, and nothing else heard from the upstream since it
 *   was sent, after this long makes the pool probe (2·srtt + 4·rttvar: one retransmitted round trip; floor 200 ms in the pool).
 * - `probeTimeoutMs()`: a probe may need a new TCP and TLS handshake before its request (about three
 *   round trips), and one retransmission: 4·srtt + 4·rttvar (floor 500 ms in the pool).
 * Both are capped (stall 10 s, probe timeout 20 s): a network that delays packets on purpose can
 * stretch the estimate, but not postpone the detection of a cut without bound.
 * - `strikes()`: consecutive failed probes before an upstream is declared dead. 1 where a probe's
 *   timeout is the floor (a LAN: detection stays within a second), 2 on a link slow enough that its
 *   timeouts exceed the floor (a satellite or cellular link, where one lost SYN costs a whole second).
 */
export interface RttEstimate {
  readonly srttMs: number | undefined;
  readonly rttvarMs: number | undefined;
  sample(ms: number): void;
  stallMs(): number;
  probeTimeoutMs(): number;
  strikes(): number;
}

export const MAX_STALL_MS = 10_000;
export const MAX_PROBE_TIMEOUT_MS = 20_000;

export function createRttEstimate(floors: { stallMs: number; probeTimeoutMs: number }): RttEstimate {
  let srtt: number | undefined;
  let rttvar: number | undefined;
  const est = {
    get srttMs() {
      return srtt;
    },
    get rttvarMs() {
      return rttvar;
    },
    sample(ms: number) {
      if (!(ms >= 0) || !Number.isFinite(ms)) return;
      if (srtt === undefined || rttvar === undefined) {
        srtt = ms;
        rttvar = ms / 2;
        return;
      }
      rttvar = 0.75 * rttvar + 0.25 * Math.abs(srtt - ms);
      srtt = 0.875 * srtt + 0.125 * ms;
    },
    stallMs: () => Math.min(MAX_STALL_MS, Math.max(floors.stallMs, 2 * (srtt ?? 0) + 4 * (rttvar ?? 0))),
    probeTimeoutMs: () => Math.min(MAX_PROBE_TIMEOUT_MS, Math.max(floors.probeTimeoutMs, 4 * (srtt ?? 0) + 4 * (rttvar ?? 0))),
    strikes: () => (4 * (srtt ?? 0) + 4 * (rttvar ?? 0) > floors.probeTimeoutMs ? 2 : 1),
  };
  return est;
}
