/**
 * Heartbeats: every interval, PING the peer, unless it has been silent for the timeout, in
 * which case the session is over. Any frame received counts as a sign of life, so a busy
 * session needs no PONG in time; an idle one gets one per interval. A dead peer is noticed
 * between timeout and timeout + interval after its last frame.
 *
 * On a metered link a PING is skipped when traffic already did its work since the last tick:
 * something was sent (the peer heard us) and something was received (we heard the peer). Then
 * the peer hears from us at least every two intervals (a frame just after one tick, the PING at
 * the tick after the next), so the skipping is on only when the timeout leaves room for that
 * (timeout ≥ 2.5 × interval; the defaults 5 s / 15 s do); otherwise every tick pings, as before.
 */
export interface HeartbeatOptions {
  intervalMs: number;
  timeoutMs: number;
  now: () => number;
  ping: (data: Uint8Array) => void;
  onTimeout: (silentMs: number) => void;
  /** Runs `tick` every `ms` until the returned function is called (tests drive it); default setInterval. */
  every?: (tick: () => void, ms: number) => () => void;
}

const everyInterval = (tick: () => void, ms: number) => {
  const t = setInterval(tick, ms);
  t.unref?.();
  return () => clearInterval(t);
};

export interface Heartbeat {
  /** A frame arrived. */
  heard(): void;
  /** A frame was sent. */
  sent(): void;
  pong(data: Uint8Array): void;
  stop(): void;
  readonly rttMs: number | undefined;
  readonly timers: number;
}

export function createHeartbeat(opts: HeartbeatOptions): Heartbeat {
  let lastHeard = opts.now();
  let heardSinceTick = false;
  let sentSinceTick = false;
  const maySkip = opts.timeoutMs >= 2.5 * opts.intervalMs;
  let seq = 0;
  let sentAt = 0;
  let rttMs: number | undefined;
  const nonce = new Uint8Array(8);
  const view = new DataView(nonce.buffer);
  let cancel: (() => void) | undefined = (opts.every ?? everyInterval)(() => {
    const silent = opts.now() - lastHeard;
    if (silent >= opts.timeoutMs) return opts.onTimeout(silent);
    const busy = maySkip && heardSinceTick && sentSinceTick;
    heardSinceTick = false;
    sentSinceTick = false;
    if (busy) return;
    seq = (seq + 1) >>> 0;
    view.setUint32(4, seq);
    sentAt = opts.now();
    opts.ping(nonce.slice());
  }, opts.intervalMs);

  return {
    heard() {
      lastHeard = opts.now();
      heardSinceTick = true;
    },
    sent() {
      sentSinceTick = true;
    },
    pong(data) {
      if (data.length === 8 && new DataView(data.buffer, data.byteOffset, 8).getUint32(4) === seq) rttMs = opts.now() - sentAt;
    },
    stop() {
      cancel?.();
      cancel = undefined;
    },
    get rttMs() {
      return rttMs;
    },
    get timers() {
      return cancel ? 1 : 0;
    },
  };
}
