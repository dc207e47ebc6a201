/**
 * TUN devices through libc (bun:ffi): the one importer of bun:ffi. Linux only.
 *
 * `openTun(name)` creates a non-persistent layer-3 TUN device (IFF_TUN | IFF_NO_PI): every read
 * returns one IP packet and every write injects one. The device disappears when the descriptor
 * closes, which includes the process dying, so nothing can leak. The descriptor is non-blocking;
 * `pollReadable` waits for input on several descriptors.
 */
import { dlopen, FFIType, ptr } from 'bun:ffi';

const libc = dlopen('libc.so.6', {
  open: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  read: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
  write: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
  poll: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
});

const O_RDWR = 0x2;
const O_NONBLOCK = 0x800;
const TUNSETIFF = 0x400454ca;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
const POLLIN = 0x1;

export function openTun(name: string): number {
  if (name.length > 15) throw new Error(`open tun ${name}: name longer than 15 bytes`);
  const path = Buffer.from('/dev/net/tun\0');
  const fd = libc.symbols.open(ptr(path), O_RDWR | O_NONBLOCK);
  if (fd < 0) throw new Error(`open tun ${name}: open /dev/net/tun failed`);
  const ifr = new Uint8Array(40); // struct ifreq: char name[16]; short flags; …
  ifr.set(Buffer.from(name));
  new DataView(ifr.buffer).setInt16(16, IFF_TUN | IFF_NO_PI, true);
  if (libc.symbols.ioctl(fd, TUNSETIFF, ptr(ifr)) !== 0) throw new Error(`open tun ${name}: TUNSETIFF failed`);
  return fd;
}

/** One packet, or null when none is waiting (EAGAIN) or the descriptor failed. */
export function readPacket(fd: number, buf: Uint8Array): Uint8Array | null {
  const n = Number(libc.symbols.read(fd, ptr(buf), buf.length));
  return n > 0 ? buf.slice(0, n) : null;
}

export function writePacket(fd: number, packet: Uint8Array): void {
  libc.symbols.write(fd, ptr(packet), packet.length);
}

/** Raw read for non-TUN descriptors (stdin): bytes read, 0 at end of file, negative on EAGAIN/error. */
export function readBytes(fd: number, buf: Uint8Array): number {
  return Number(libc.symbols.read(fd, ptr(buf), buf.length));
}

/** Waits up to timeoutMs (-1: forever) and returns the descriptors that have input or hung up. */
export function pollReadable(fds: number[], timeoutMs: number): number[] {
  const set = new Uint8Array(8 * fds.length); // struct pollfd { int fd; short events; short revents; }
  const view = new DataView(set.buffer);
  fds.forEach((fd, i) => {
    view.setInt32(i * 8, fd, true);
    view.setInt16(i * 8 + 4, POLLIN, true);
  });
  if (libc.symbols.poll(ptr(set), fds.length, Math.max(-1, Math.ceil(timeoutMs))) <= 0) return [];
  return fds.filter((_, i) => view.getInt16(i * 8 + 6, true) !== 0);
}
