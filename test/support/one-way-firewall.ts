/**
 * A one-way firewall for an edge site, as NAT or a site firewall makes it: connections the site
 * opens towards the cloud pass (both ways, for as long as they last), and new TCP connections
 * towards the site are dropped silently, so the control plane cannot dial a kubelet in the site.
 *
 * A classic-BPF filter (cls_bpf, direct action) on the ingress of the site's end of the veth pair
 * drops IPv4 TCP segments with SYN set and ACK clear, that is the first packet of a connection
 * someone outside opens; everything else passes. Same mechanism as netns.ts's cut(), another
 * filter priority, so both can be on at once; heal() removes the clsact qdisc and with it this
 * filter (call blockInbound again after a heal).
 */
import { ErrorCode, TetherError } from '../../shared/errors.ts';
import type { EdgeSite } from './netns.ts';
import { must, run } from './netns/commands.ts';
import { linkNames } from './netns/registry.ts';

/**
 * The program, one `code jt jf k` per instruction (offsets from the Ethernet header):
 *   0  ldh [12]              ethertype
 *   1  jeq #0x800, 2, 10     IPv4, else pass
 *   2  ldb [23]              IP protocol
 *   3  jeq #6, 4, 10         TCP, else pass
 *   4  ldh [20]              fragment offset
 *   5  jset #0x1fff, 10, 6   a later fragment has no TCP header: pass
 *   6  ldxb 4*([14]&0xf)     IP header length
 *   7  ldb [x+27]            TCP flags (14 + 13)
 *   8  and #0x12             SYN|ACK
 *   9  jeq #0x02, 11, 10     SYN alone: drop
 *  10  ret #0                TC_ACT_OK
 *  11  ret #2                TC_ACT_SHOT
 */
const PROGRAM: [number, number, number, number][] = [
  [0x28, 0, 0, 12],
  [0x15, 0, 8, 0x0800],
  [0x30, 0, 0, 23],
  [0x15, 0, 6, 6],
  [0x28, 0, 0, 20],
  [0x45, 4, 0, 0x1fff],
  [0xb1, 0, 0, 14],
  [0x50, 0, 0, 27],
  [0x54, 0, 0, 0x12],
  [0x15, 1, 0, 0x02],
  [0x06, 0, 0, 0],
  [0x06, 0, 0, 2],
];
const BYTECODE = `${PROGRAM.length},${PROGRAM.map((i) => i.join(' ')).join(',')}`;
const PREF = '7';
const OUTBOUND_PREF = '8';

/** Drops new inbound TCP connections to the site from now on. */
export async function blockInbound(site: EdgeSite): Promise<void> {
  const dev = linkNames(site.index).site;
  const tc = (args: string[]) => ['tc', '-n', site.ns, ...args];
  await run(tc(['qdisc', 'add', 'dev', dev, 'clsact'])); // already there after a cut(): fine
  const r = await run(tc(['filter', 'replace', 'dev', dev, 'ingress', 'pref', PREF, 'handle', '1', 'bpf', 'bytecode', BYTECODE, 'da']));
  if (r.code !== 0) throw new TetherError(ErrorCode.Internal, `block inbound connections to ${site.name}: tc filter: ${r.stderr.trim()}`);
}

/** Lets new inbound connections in again. */
export async function allowInbound(site: EdgeSite): Promise<void> {
  const dev = linkNames(site.index).site;
  await must(`allow inbound connections to ${site.name}`, ['tc', '-n', site.ns, 'filter', 'del', 'dev', dev, 'ingress', 'pref', PREF]);
}

/**
 * The strictest site firewall: the site may open TCP connections to the given ports of the cloud
 * and nothing else (every other IPv4 packet leaving the site is dropped; ARP passes). A classic-BPF
 * filter on the ingress of the root end of the veth pair, where the site's packets arrive; for n ports:
 *   0      ldh [12]              ethertype
 *   1      jeq #0x800, 2, pass   IPv4, else pass
 *   2      ldb [23]              IP protocol
 *   3      jeq #6, 4, drop       TCP, else drop
 *   4      ldh [20]              fragment offset
 *   5      jset #0x1fff, drop, 6 a later fragment: drop
 *   6      ldxb 4*([14]&0xf)     IP header length
 *   7      ldh [x+16]            TCP destination port (14 + 2)
 *   8..    jeq #port_i, pass, next (the last one's next is drop)
 *   pass   ret #0                TC_ACT_OK
 *   drop   ret #2                TC_ACT_SHOT
 * heal() removes it with the clsact qdisc (call it again after a heal).
 */
export async function allowOutboundOnly(site: EdgeSite, ports: number | number[]): Promise<void> {
  const list = Array.isArray(ports) ? ports : [ports];
  if (list.length === 0 || list.length > 16 || list.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
    throw new TetherError(ErrorCode.BadRequest, `allow outbound only: 1 to 16 ports, got ${JSON.stringify(ports)}`);
  }
  const n = list.length;
  const pass = 8 + n;
  const drop = pass + 1;
  const program: [number, number, number, number][] = [
    [0x28, 0, 0, 12],
    [0x15, 0, pass - 2, 0x0800],
    [0x30, 0, 0, 23],
    [0x15, 0, drop - 4, 6],
    [0x28, 0, 0, 20],
    [0x45, drop - 6, 0, 0x1fff],
    [0xb1, 0, 0, 14],
    [0x48, 0, 0, 16],
    ...list.map((p, i): [number, number, number, number] => [0x15, pass - (8 + i) - 1, i === n - 1 ? 1 : 0, p]),
    [0x06, 0, 0, 0],
    [0x06, 0, 0, 2],
  ];
  const bytecode = `${program.length},${program.map((i) => i.join(' ')).join(',')}`;
  const dev = linkNames(site.index).host;
  await run(['tc', 'qdisc', 'add', 'dev', dev, 'clsact']);
  const r = await run(['tc', 'filter', 'replace', 'dev', dev, 'ingress', 'pref', OUTBOUND_PREF, 'handle', '1', 'bpf', 'bytecode', bytecode, 'da']);
  if (r.code !== 0) throw new TetherError(ErrorCode.Internal, `allow ${site.name} out to ports ${list.join(', ')} only: tc filter: ${r.stderr.trim()}`);
}

/** Lets the site connect anywhere again. */
export async function allowOutbound(site: EdgeSite): Promise<void> {
  const dev = linkNames(site.index).host;
  await must(`allow outbound connections from ${site.name}`, ['tc', 'filter', 'del', 'dev', dev, 'ingress', 'pref', OUTBOUND_PREF]);
}
