/**
 * Wires the client's streams of one exec/attach to the process side and waits for the end:
 * client stdin -> process stdin (ended with it; not asked for: exec gets EOF at once),
 * process stdout/stderr -> client stdout/stderr with backpressure. With a TTY there is no stderr
 * stream, so stderr goes to stdout as on a terminal. Resize events (JSON {Width,Height}, one
 * after another) are decoded and handed to the process side.
 * Resolves with the result once the process side is done and the client's output streams are
 * ended; the caller then writes the Status.
 */
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { z } from 'zod';
import type { Logger } from '../../../../shared/log.ts';
import type { CommandIo, CommandResult } from './command-io.ts';
import type { TerminalSize } from './types.ts';

export interface ClientStreams {
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  resize?: Readable;
}

export async function runCommand(io: CommandIo, client: ClientStreams, tty: boolean, log: Logger): Promise<CommandResult> {
  if (client.stdin) client.stdin.pipe(io.stdin);
  else io.noStdin();
  if (client.resize) decodeResizeEvents(client.resize, (size) => io.resize(size), log);

  const sinks = new Map<Writable, number>();
  const outputs: Array<Promise<void>> = [];
  const route = (source: Readable, sink: Writable | undefined) => {
    if (!sink) {
      source.resume();
      return;
    }
    sinks.set(sink, (sinks.get(sink) ?? 0) + 1);
    source.pipe(sink, { end: false });
    outputs.push(
      ended(source).then(async () => {
        const left = (sinks.get(sink) ?? 1) - 1;
        sinks.set(sink, left);
        if (left === 0) await endWritable(sink);
      }),
    );
  };
  route(io.stdout, client.stdout);
  route(io.stderr, tty ? client.stdout : client.stderr);

  const result = await io.result;
  if (client.stdin) {
    // Whatever the client still sends has nowhere to go; keep draining so the connection flows.
    client.stdin.unpipe(io.stdin);
    client.stdin.resume();
  }
  await Promise.all(outputs);
  return result;
}

function ended(stream: Readable): Promise<void> {
  if (stream.readableEnded || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('end', () => resolve());
    stream.once('close', () => resolve());
  });
}

async function endWritable(sink: Writable): Promise<void> {
  if (sink.destroyed || sink.writableFinished) return;
  sink.end();
  await Promise.race([once(sink, 'finish'), once(sink, 'close')]).catch(() => undefined);
}

const resizeEvent = z.object({ Width: z.number().int().nonnegative(), Height: z.number().int().nonnegative() });

/** Reads concatenated JSON objects (Go's json.Encoder output) and reports each terminal size. */
export function decodeResizeEvents(stream: Readable, onSize: (size: TerminalSize) => void, log: Logger): void {
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('error', () => undefined);
  stream.on('data', (text: string) => {
    pending += text;
    for (;;) {
      const end = endOfFirstObject(pending);
      if (end < 0) break;
      const json = pending.slice(0, end);
      pending = pending.slice(end);
      try {
        const size = resizeEvent.parse(JSON.parse(json));
        onSize({ width: size.Width, height: size.Height });
      } catch (err) {
        log.debug('resize event ignored', { json, err: err instanceof Error ? err.message : String(err) });
      }
    }
  });
}

/** Index just past the first complete top-level JSON object in text, or -1. */
function endOfFirstObject(text: string): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i + 1;
  }
  return -1;
}
