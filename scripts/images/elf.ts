/**
 * Just enough of an ELF reader to put a dynamically linked binary into an image: its machine, its
 * program interpreter (the loader the kernel starts) and the shared libraries it names (DT_NEEDED).
 * Read from the file itself, not from `ldd`, because `ldd` cannot run an arm64 binary on an amd64
 * build machine. 64-bit little-endian only: the release targets are x86-64 and aarch64.
 */

export interface ElfInfo {
  /** e_machine: 62 x86-64, 183 aarch64. */
  machine: number;
  /** PT_INTERP, e.g. /lib64/ld-linux-x86-64.so.2; undefined for a static binary. */
  interpreter?: string;
  /** DT_NEEDED sonames, in the order the file lists them. */
  needed: string[];
}

export const ELF_MACHINE = { amd64: 62, arm64: 183 } as const;

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;

/** Reads `data` as an ELF file; throws a readable error naming `what` when it is not one we can read. */
export function readElf(data: Buffer, what: string): ElfInfo {
  if (data.length < 64 || data.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${what} is not an ELF executable`);
  if (data[4] !== 2 || data[5] !== 1) throw new Error(`${what} is not a 64-bit little-endian ELF file`);
  const machine = data.readUInt16LE(18);
  const phoff = Number(data.readBigUInt64LE(32));
  const phentsize = data.readUInt16LE(54);
  const phnum = data.readUInt16LE(56);
  if (phoff + phentsize * phnum > data.length) throw new Error(`${what}: ELF program headers lie past the end of the file`);

  const segments = Array.from({ length: phnum }, (_, i) => {
    const at = phoff + i * phentsize;
    return {
      type: data.readUInt32LE(at),
      offset: Number(data.readBigUInt64LE(at + 8)),
      vaddr: data.readBigUInt64LE(at + 16),
      filesz: Number(data.readBigUInt64LE(at + 32)),
    };
  });
  const inFile = (offset: number, size: number) => {
    if (offset < 0 || offset + size > data.length) throw new Error(`${what}: ELF segment lies past the end of the file`);
  };

  let interpreter: string | undefined;
  const interp = segments.find((s) => s.type === PT_INTERP);
  if (interp) {
    inFile(interp.offset, interp.filesz);
    interpreter = data.subarray(interp.offset, interp.offset + interp.filesz).toString('utf8').replace(/\0.*$/s, '');
  }

  const needed: string[] = [];
  const dynamic = segments.find((s) => s.type === PT_DYNAMIC);
  if (dynamic) {
    inFile(dynamic.offset, dynamic.filesz);
    const offsets: bigint[] = [];
    let strtab: bigint | undefined;
    for (let at = dynamic.offset; at + 16 <= dynamic.offset + dynamic.filesz; at += 16) {
      const tag = data.readBigInt64LE(at);
      const val = data.readBigUInt64LE(at + 8);
      if (tag === DT_NULL) break;
      if (tag === DT_NEEDED) offsets.push(val);
      if (tag === DT_STRTAB) strtab = val;
    }
    if (offsets.length && strtab === undefined) throw new Error(`${what}: ELF dynamic section names libraries but has no string table`);
    if (strtab !== undefined) {
      // DT_STRTAB is an address: find the loaded segment that holds it to get its place in the file.
      const load = segments.find((s) => s.type === PT_LOAD && s.vaddr <= strtab && strtab < s.vaddr + BigInt(s.filesz));
      if (!load && offsets.length) throw new Error(`${what}: ELF string table is not in a loaded segment`);
      for (const o of offsets) {
        const start = load!.offset + Number(strtab - load!.vaddr + o);
        const end = data.indexOf(0, start);
        if (start >= data.length || end < 0) throw new Error(`${what}: ELF library name lies past the end of the file`);
        needed.push(data.subarray(start, end).toString('utf8'));
      }
    }
  }
  return { machine, interpreter, needed };
}
