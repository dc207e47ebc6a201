/**
 * Structured logging: `log.info('relist', { gvr, rv })` writes one JSON line (or a readable
 * line on a terminal). The logger is created in an entry point and passed down; nothing else
 * writes to the console.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(fields: Fields): Logger;
}

const rank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LoggerOptions {
  level?: Level;
  format?: 'json' | 'text';
  write?: (line: string) => void;
  now?: () => Date;
}

export function createLogger(opts: LoggerOptions = {}, base: Fields = {}): Logger {
  const min = rank[opts.level ?? 'info'];
  const format = opts.format ?? 'json';
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const now = opts.now ?? (() => new Date());
  const emit = (level: Level, msg: string, fields?: Fields) => {
    if (rank[level] < min) return;
    const all = { ...base, ...fields };
    for (const [k, v] of Object.entries(all)) if (v instanceof Error) all[k] = v.message;
    if (format === 'json') {
      write(JSON.stringify({ ts: now().toISOString(), level, msg, ...all }));
    } else {
      const kv = Object.entries(all)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      write(`${now().toISOString()} ${level.toUpperCase().padEnd(5)} ${msg}${kv ? ' ' + kv : ''}`);
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (f) => createLogger(opts, { ...base, ...f }),
  };
}

/** A logger that records lines in memory, for tests. */
export function createMemoryLogger(level: Level = 'debug'): Logger & { lines: Fields[] } {
  const lines: Fields[] = [];
  const log = createLogger({ level, write: (l) => lines.push(JSON.parse(l) as Fields) });
  return Object.assign(log, { lines });
}
