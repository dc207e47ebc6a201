/**
 * A user-space WAN between the root namespace and one edge site, for kernels without sch_netem.
 *
 *   bun wan-emulator.ts <root-tun> <site-tun>
 *
 * Creates two TUN devices (the parent moves <site-tun> into the site's namespace and routes the
 * site's traffic through the pair), prints "ready", then carries every packet read from one device
 * to the other after the configured one-way delay (± uniform jitter), dropping lossPct percent.
 * Each direction is delayed and dropped independently and stays in order (unlike netem, jitter does
 * not reorder, so TCP sees no spurious retransmissions). Settings arrive as JSON lines on stdin,
 * `{"delayMs":50,"jitterMs":5,"lossPct":1}`; end of stdin ends the process, and the devices go
 * with it, so a dead parent never leaves them behind.
 *
 * The loop is synchronous (poll + non-blocking reads): the process does nothing else.
 */
import { writeSync } from 'node:fs';
import { openTun, pollReadable, readBytes, readPacket, writePacket } from './tun.ts';

interface Settings {
  delayMs: number;
  jitterMs: number;
  lossPct: number;
}

interface Lane {
  from: number;
  to: number;
  queue: { due: number; packet: Uint8Array }[];
  lastDue: number;
}

const [rootName, siteName] = process.argv.slice(2);
if (!rootName || !siteName) {
  writeSync(2, 'usage: wan-emulator.ts <root-tun> <site-tun>\n');
  process.exit(2);
}

const rootFd = openTun(rootName);
const siteFd = openTun(siteName);
const lanes: Lane[] = [
  { from: rootFd, to: siteFd, queue: [], lastDue: 0 },
  { from: siteFd, to: rootFd, queue: [], lastDue: 0 },
];
let settings: Settings = { delayMs: 0, jitterMs: 0, lossPct: 0 };
let stdinRest = '';
const buf = new Uint8Array(65_536);
const stdinBuf = new Uint8Array(4096);
writeSync(1, 'ready\n');

/** Reads settings lines; returns false at end of stdin. */
function readSettings(): boolean {
  const n = readBytes(0, stdinBuf);
  if (n === 0) return false;
  if (n < 0) return true;
  stdinRest += Buffer.from(stdinBuf.subarray(0, n)).toString('utf8');
  let nl: number;
  while ((nl = stdinRest.indexOf('\n')) >= 0) {
    const line = stdinRest.slice(0, nl).trim();
    stdinRest = stdinRest.slice(nl + 1);
    if (!line) continue;
    const s = JSON.parse(line) as Partial<Settings>;
    settings = { delayMs: s.delayMs ?? 0, jitterMs: s.jitterMs ?? 0, lossPct: s.lossPct ?? 0 };
    writeSync(1, 'applied\n');
  }
  return true;
}

function admit(lane: Lane, packet: Uint8Array, now: number): void {
  if (Math.random() * 100 < settings.lossPct) return;
  const jitter = settings.jitterMs * (Math.random() * 2 - 1);
  const due = Math.max(now + settings.delayMs + jitter, lane.lastDue);
  lane.lastDue = due;
  lane.queue.push({ due, packet });
}

for (;;) {
  let now = performance.now();
  for (const lane of lanes) {
    while (lane.queue.length > 0 && lane.queue[0]!.due <= now) writePacket(lane.to, lane.queue.shift()!.packet);
  }
  const next = Math.min(...lanes.map((l) => l.queue[0]?.due ?? Infinity));
  const wait = next === Infinity ? 1000 : Math.max(0, next - now);
  const ready = pollReadable([0, rootFd, siteFd], wait);
  if (ready.includes(0) && !readSettings()) process.exit(0);
  now = performance.now();
  for (const lane of lanes) {
    if (!ready.includes(lane.from)) continue;
    for (let p = readPacket(lane.from, buf); p; p = readPacket(lane.from, buf)) admit(lane, p, now);
  }
}
