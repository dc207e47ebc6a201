/**
 * Container logs, kept in memory. Every running container gets one line per tick (the simulator
 * ticks every second): "<RFC 3339 time> <pod>/<container> line <n>". The newest `maxLines` lines
 * per container are kept. Followers get each new line as it is written, and an end call when the
 * container stops.
 */
export interface LogLine {
  time: Date;
  text: string;
}

export interface ReadOptions {
  tailLines?: number;
  sinceSeconds?: number;
  /** Prefix each line with its RFC 3339 (nanosecond) time, as `kubectl logs --timestamps`. */
  timestamps?: boolean;
  limitBytes?: number;
}

export interface Follower {
  line(formatted: string): void;
  end(): void;
}

export interface LogStore {
  startPod(namespace: string, pod: string, containers: string[]): void;
  stopPod(namespace: string, pod: string): void;
  /** Appends one line to every running container. */
  tick(): void;
  has(namespace: string, pod: string, container: string): boolean;
  /** The formatted lines (each ending in "\n"), or undefined for an unknown container. */
  read(namespace: string, pod: string, container: string, opts?: ReadOptions): string[] | undefined;
  /** Calls `f.line` for every line written from now on; returns the unsubscribe function. */
  follow(namespace: string, pod: string, container: string, f: Follower, opts?: ReadOptions): () => void;
  runningContainers(): number;
}

interface ContainerLog {
  pod: string;
  name: string;
  lines: LogLine[];
  count: number;
  followers: Set<{ f: Follower; timestamps: boolean }>;
}

/** Go's RFC3339Nano as the kubelet prints it: nine fractional digits. */
export function rfc3339Nano(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');
}

const format = (l: LogLine, timestamps: boolean) => `${timestamps ? rfc3339Nano(l.time) + ' ' : ''}${l.text}\n`;

export function createLogStore(opts: { now?: () => Date; maxLines?: number } = {}): LogStore {
  const now = opts.now ?? (() => new Date());
  const maxLines = opts.maxLines ?? 1000;
  const pods = new Map<string, Map<string, ContainerLog>>();
  const podKey = (ns: string, pod: string) => `${ns}/${pod}`;
  const get = (ns: string, pod: string, c: string) => pods.get(podKey(ns, pod))?.get(c);

  return {
    startPod(namespace, pod, containers) {
      const key = podKey(namespace, pod);
      const existing = pods.get(key) ?? new Map<string, ContainerLog>();
      for (const name of containers) {
        if (!existing.has(name)) existing.set(name, { pod, name, lines: [], count: 0, followers: new Set() });
      }
      pods.set(key, existing);
    },
    stopPod(namespace, pod) {
      const key = podKey(namespace, pod);
      for (const c of pods.get(key)?.values() ?? []) for (const { f } of c.followers) f.end();
      pods.delete(key);
    },
    tick() {
      const t = now();
      for (const containers of pods.values()) {
        for (const c of containers.values()) {
          const line = { time: t, text: `${t.toISOString()} ${c.pod}/${c.name} line ${++c.count}` };
          c.lines.push(line);
          if (c.lines.length > maxLines) c.lines.shift();
          for (const { f, timestamps } of c.followers) f.line(format(line, timestamps));
        }
      }
    },
    has: (ns, pod, c) => get(ns, pod, c) !== undefined,
    read(ns, pod, container, o = {}) {
      const c = get(ns, pod, container);
      if (!c) return undefined;
      let lines = c.lines;
      if (o.sinceSeconds !== undefined) {
        const since = now().getTime() - o.sinceSeconds * 1000;
        lines = lines.filter((l) => l.time.getTime() >= since);
      }
      if (o.tailLines !== undefined) lines = o.tailLines <= 0 ? [] : lines.slice(-o.tailLines);
      const out = lines.map((l) => format(l, o.timestamps ?? false));
      if (o.limitBytes === undefined) return out;
      const limited: string[] = [];
      let left = o.limitBytes;
      for (const l of out) {
        if (left <= 0) break;
        const piece = Buffer.from(l).subarray(0, left).toString();
        limited.push(piece);
        left -= Buffer.byteLength(l);
      }
      return limited;
    },
    follow(ns, pod, container, f, o = {}) {
      const c = get(ns, pod, container);
      if (!c) {
        f.end();
        return () => {};
      }
      const entry = { f, timestamps: o.timestamps ?? false };
      c.followers.add(entry);
      return () => c.followers.delete(entry);
    },
    runningContainers: () => [...pods.values()].reduce((n, m) => n + m.size, 0),
  };
}
