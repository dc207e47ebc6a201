/**
 * Heartbeats: every interval, PING the peer, unless it has been silent for the timeout, in
 * which case the session is over. Any frame received counts as a sign of life, so a busy
 * session needs no PONG in time; an idle one gets one per interval. A dead peer is noticed
 * between timeout and timeout + interval after its last frame.
 */
export interface HeartbeatOptions {
  intervalMs: number;
  timeoutMs: number;
  now: () => number;
  ping: (data: Uint8Array) => void;
  onTimeout: (silentMs: number) => void;
}

export interface Heartbeat {
  /** A frame arrived. */
  heard(): void;
  pong(data: Uint8Array): void;
  stop(): void;
  readonly rttMs: number | undefined;
  readonly timers: number;
}

export function createHeartbeat(opts: HeartbeatOptions): Heartbeat {
  let lastHeard = opts.now();
  let seq = 0;
  let sentAt = 0;
  let rttMs: number | undefined;
  const nonce = new Uint8Array(8);
  const view = new DataView(nonce.buffer);
  let timer: ReturnType<typeof setInterval> | undefined = setInterval(() => {
    const silent = opts.now() - lastHeard;
    if (silent >= opts.timeoutMs) return opts.onTimeout(silent);
    seq = (seq + 1) >>> 0;
    view.setUint32(4, seq);
    sentAt = opts.now();
    opts.ping(nonce.slice());
  }, opts.intervalMs);
  timer.unref?.();

  return {
    heard() {
      lastHeard = opts.now();
    },
    pong(data) {
      if (data.length === 8 && new DataView(data.buffer, data.byteOffset, 8).getUint32(4) === seq) rttMs = opts.now() - sentAt;
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
    get rttMs() {
      return rttMs;
    },
    get timers() {
      return timer ? 1 : 0;
    },
  };
}
