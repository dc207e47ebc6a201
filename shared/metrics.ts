/**
 * A small Prometheus registry: counters and gauges with labels, rendered in the text exposition
 * format (version 0.0.4). Gauges may be computed when scraped (`collect`).
 */
type Labels = Record<string, string>;

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  values: Map<string, { labels: Labels; value: number }>;
  collect?: () => { labels?: Labels; value: number }[];
}

export interface Counter {
  inc(labels?: Labels, by?: number): void;
}
export interface Gauge {
  set(value: number, labels?: Labels): void;
}

const key = (l: Labels) => JSON.stringify(Object.entries(l).sort(([a], [b]) => a.localeCompare(b)));
const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const fmt = (l: Labels) => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};

export class Registry {
  private readonly families = new Map<string, Family>();

  private family(name: string, help: string, type: Family['type']): Family {
    let f = this.families.get(name);
    if (!f) {
      f = { name, help, type, values: new Map() };
      this.families.set(name, f);
    }
    return f;
  }

  counter(name: string, help: string): Counter {
    const f = this.family(name, help, 'counter');
    return {
      inc(labels = {}, by = 1) {
        const k = key(labels);
        const cur = f.values.get(k);
        if (cur) cur.value += by;
        else f.values.set(k, { labels, value: by });
      },
    };
  }

  /** A counter whose values are read when scraped (totals kept elsewhere). */
  counterFrom(name: string, help: string, collect: NonNullable<Family['collect']>): void {
    this.family(name, help, 'counter').collect = collect;
  }

  gauge(name: string, help: string, collect?: Family['collect']): Gauge {
    const f = this.family(name, help, 'gauge');
    if (collect) f.collect = collect;
    return { set: (value, labels = {}) => void f.values.set(key(labels), { labels, value }) };
  }

  render(): string {
    const out: string[] = [];
    for (const f of this.families.values()) {
      out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
      const values = f.collect ? f.collect().map((v) => ({ labels: v.labels ?? {}, value: v.value })) : [...f.values.values()];
      for (const v of values) out.push(`${f.name}${fmt(v.labels)} ${v.value}`);
    }
    return out.join('\n') + '\n';
  }
}

/** Metrics every Tether process exposes. */
export function registerProcessMetrics(r: Registry, info: { version: string; commit: string; target: string }): void {
  r.gauge('tether_build_info', 'Build information of this binary', () => [{ labels: info, value: 1 }]);
  r.gauge('process_resident_memory_bytes', 'Resident set size', () => [{ value: process.memoryUsage.rss() }]);
  const started = Date.now() / 1000;
  r.gauge('process_start_time_seconds', 'Start time of the process since the epoch', () => [{ value: started }]);
}

/**
 * Bytes of an HTTP/1.1 request or response head as written on the wire: the start line, one
 * `name: value` line per header value, and the blank line. For counting what a link carries.
 */
export function httpHeadBytes(startLine: string, headers: Record<string, unknown>): number {
  let n = Buffer.byteLength(startLine) + 4;
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) n += Buffer.byteLength(k) + Buffer.byteLength(String(one)) + 4;
  }
  return n;
}
