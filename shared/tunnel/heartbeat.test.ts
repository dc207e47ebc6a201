/** Heartbeats (_heartbeat.ts), with the ticks driven by hand: when a PING goes out, and when the silence ends the session. */
import { describe, expect, test } from 'bun:test';
import { createHeartbeat } from './_heartbeat.ts';

function rig(intervalMs: number, timeoutMs: number) {
  let clock = 0;
  let tick: () => void = () => {};
  const pings: number[] = [];
  const timeouts: number[] = [];
  const hb = createHeartbeat({
    intervalMs,
    timeoutMs,
    now: () => clock,
    ping: () => pings.push(clock),
    onTimeout: (silent) => timeouts.push(silent),
    every: (fn) => {
      tick = fn;
      return () => {};
    },
  });
  /** Advances the clock by one interval and runs the tick. */
  const next = () => {
    clock += intervalMs;
    tick();
  };
  return { hb, pings, timeouts, next };
}

describe('heartbeats', () => {
  test('an idle session pings every other interval (its own PING and the PONG make the tick after it busy)', () => {
    const { hb, pings, next } = rig(5000, 15_000);
    for (let i = 0; i < 6; i++) {
      next();
      if (pings.length > 0 && pings.at(-1) === i * 5000 + 5000) {
        hb.sent(); // the PING went out (the session reports every frame it sends)
        hb.heard(); // and its PONG came back
      }
    }
    expect(pings).toEqual([5000, 15_000, 25_000]);
  });

  test('no PING while traffic flows both ways; one as soon as a tick saw nothing sent, or nothing received', () => {
    const { hb, pings, next } = rig(5000, 15_000);
    for (let i = 0; i < 4; i++) {
      hb.sent();
      hb.heard();
      next();
    }
    expect(pings).toEqual([]);
    hb.heard(); // the peer talks, we do not: it must hear from us
    next();
    expect(pings).toEqual([25_000]);
    hb.sent(); // we talk, the peer does not: ask it for a PONG
    next();
    expect(pings).toEqual([25_000, 30_000]);
  });

  test('with a timeout under 2.5 intervals every tick pings, busy or not (the peer must hear within its timeout)', () => {
    const { hb, pings, next } = rig(5000, 10_000);
    for (let i = 0; i < 3; i++) {
      hb.sent();
      hb.heard();
      next();
    }
    expect(pings).toEqual([5000, 10_000, 15_000]);
  });

  test('silence for the timeout ends the session, traffic or not on our side', () => {
    const { hb, timeouts, next } = rig(5000, 15_000);
    hb.heard();
    for (let i = 0; i < 3; i++) {
      hb.sent();
      next();
    }
    expect(timeouts).toEqual([15_000]);
  });
});
