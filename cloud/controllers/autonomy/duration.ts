/**
 * Go's time.ParseDuration grammar ("300ms", "1.5h", "2h45m", "0"), as the autonomy annotation
 * is written. Returns whole seconds (rounded up, so a positive duration never becomes 0) or
 * `forever` for zero; an error message for anything else, negative durations included.
 */
const unitNs: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

export type Autonomy = { forever: true } | { forever: false; seconds: number };

export function parseAutonomyDuration(text: string): Autonomy | { error: string } {
  const s = text.trim();
  if (s === '0' || s === '+0' || s === '-0') return { forever: true };
  if (s.startsWith('-')) return { error: `${text}: a negative duration` };
  const body = s.startsWith('+') ? s.slice(1) : s;
  const re = /([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)/y;
  let ns = 0;
  let pos = 0;
  while (pos < body.length) {
    re.lastIndex = pos;
    const m = re.exec(body);
    if (!m || m[1] === '' || m[1] === '.') return { error: `${text}: not a duration (examples: 0, 90s, 10m, 1h30m)` };
    ns += Number(m[1]) * unitNs[m[2]!]!;
    pos = re.lastIndex;
  }
  if (pos === 0) return { error: `${text}: not a duration (examples: 0, 90s, 10m, 1h30m)` };
  if (ns === 0) return { forever: true };
  const seconds = Math.ceil(ns / 1e9 - 1e-9);
  if (seconds > 2 ** 31) return { error: `${text}: longer than tolerationSeconds can hold` };
  return { forever: false, seconds: Math.max(1, seconds) };
}
