/**
 * Inspects a plugin file BEFORE dlopen (in the spirit of PostgreSQL's PG_MODULE_MAGIC check): no plugin code runs,
 * not even its constructors, until we know the file is a shared library for this platform and CPU. That turns the
 * dynamic loader's terse "wrong ELF class" or "invalid ELF header" into errors that name what was found and how to
 * fix it, and lets the loader name every missing required symbol at once.
 *
 * Parses ELF (32/64-bit, either byte order) and Mach-O (thin, either byte order, and fat/universal). Everything else
 * is identified well enough to say what it is.
 */
import { readFileSync } from 'node:fs';
import { Errors } from '../errors.js';
import type { Language } from './plugin.js';

export type { Language };
export type BinaryFormat = 'elf' | 'macho' | 'macho-fat' | 'unknown';
/** 'shared' is what dlopen accepts: an ELF ET_DYN that is not a PIE executable, a Mach-O MH_DYLIB or MH_BUNDLE. */
export type BinaryKind = 'shared' | 'executable' | 'object' | 'core' | 'other';

export interface Host {
  platform: NodeJS.Platform;
  arch: string;
}

/** One architecture's code: the whole file for ELF and thin Mach-O, one slice of a fat Mach-O. */
export interface Slice {
  /** Node's name for the CPU (a `process.arch` value), or undefined when Node has none for it. */
  arch: string | undefined;
  /** The CPU as toolchains name it: "x86-64", "aarch64" (ELF), "x86_64", "arm64" (Mach-O) ... */
  cpu: string;
  bits: 32 | 64;
  endian: 'little' | 'big';
  kind: BinaryKind;
  /** The kind as `file` would put it: "shared object", "pie executable", "dynamic library", "bundle" ... */
  kindName: string;
  /** Defined, exported symbol names, in sorted order (Mach-O's leading underscore removed). */
  symbols: ReadonlySet<string>;
  /** False when the file has no symbol table to read (e.g. an sstrip'ed ELF): `symbols` is then empty, not known. */
  hasSymbolTable: boolean;
  language: Language;
}

export interface BinaryInfo {
  file: string;
  format: BinaryFormat;
  /** The OS the binary targets: "linux" or another ELF OS ABI, "darwin" for Mach-O; undefined for 'unknown'. */
  platform: string | undefined;
  /** One slice for ELF and thin Mach-O, one per architecture for fat Mach-O, none for 'unknown'. */
  slices: Slice[];
  /** Symbols and language of the slice the host would load (a fat file without one: its first slice; none: empty). */
  symbols: ReadonlySet<string>;
  hasSymbolTable: boolean;
  language: Language;
  /** For 'unknown': what the file is, with its article ("a text file", "a truncated ELF file (40 bytes) ..."). */
  what: string | undefined;
}

export function currentHost(): Host {
  return { platform: process.platform, arch: process.arch };
}

/** Reads and parses `file`. Throws PLUGIN_NOT_FOUND when it can't be read; any content yields a BinaryInfo. */
export function inspectBinary(file: string, host: Host = currentHost()): BinaryInfo {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (err) {
    // Node's message repeats the path ("ENOENT: no such file or directory, open '/x'"); the catalogue names it.
    throw Errors.PLUGIN_NOT_FOUND(file, (err as Error).message.replace(/, \w+ '.*'$/s, ''));
  }
  return parseBinary(file, buf, host);
}

/** Like inspectBinary, for bytes already in memory. */
export function parseBinary(file: string, buf: Buffer, host: Host = currentHost()): BinaryInfo {
  let parsed: Parsed;
  try {
    parsed = parse(buf);
  } catch (err) {
    if (!(err instanceof Malformed || err instanceof RangeError)) throw err;
    const what = err instanceof Malformed ? err.message : `a truncated or corrupt ${formatName(buf)} file`;
    parsed = { format: 'unknown', platform: undefined, slices: [], what };
  }
  const slice = hostSlice(parsed.slices, host) ?? parsed.slices[0];
  return {
    file,
    ...parsed,
    symbols: slice?.symbols ?? new Set(),
    hasSymbolTable: slice?.hasSymbolTable ?? false,
    language: slice?.language ?? 'unknown',
  };
}

/** Throws the catalogue's error when `info` can't be loaded on `host`. */
export function checkCompatible(file: string, info: BinaryInfo, host: Host = currentHost()): void {
  if (host.platform !== 'linux' && host.platform !== 'darwin') throw Errors.PLUGIN_PLATFORM(file, host.platform);
  const needed =
    host.platform === 'linux'
      ? `an ELF shared object (.so) for linux/${host.arch}`
      : `a Mach-O dynamic library (.dylib) for darwin/${host.arch}`;
  const found = withArticle(describe(info));
  const formatOk = host.platform === 'linux' ? info.format === 'elf' : info.format.startsWith('macho');
  // glibc refuses ELF files branded for another OS (EI_OSABI), so a FreeBSD .so is the wrong format, not arch.
  if (!formatOk || info.platform !== host.platform) throw Errors.PLUGIN_FORMAT(file, found, needed);
  const shared = info.slices.filter((s) => s.kind === 'shared');
  if (shared.length === 0) throw Errors.PLUGIN_FORMAT(file, found, needed);
  if (!hostSlice(shared, host)) {
    const built = shared.map((s) => `${info.platform}/${s.arch ?? s.cpu} (${builtFor(info, s, host)})`).join(' and ');
    throw Errors.PLUGIN_ARCH(file, built, `${host.platform}/${host.arch} (${hostCpu(host)})`);
  }
  if (isGoPluginBuild(info)) throw Errors.PLUGIN_GO_BUILDMODE(file);
}

/**
 * Whether the file is a Go plugin built with -buildmode=plugin. Go's linker exports a package hash per linked package
 * (go.link.pkghash.<pkg>, go.link.pkghashbytes.<pkg>; "go:" since Go 1.20) for Go's own plugin loader to check, in a
 * plugin and in a program that can itself load plugins (one that imports Go's plugin package, even a c-shared
 * library). The two differ in their main package: a plugin has none (it is renamed to the plugin's path), so it
 * exports no main.* symbol, where the other exports main.main. All of these sit in the dynamic symbol table, which
 * `strip` and -ldflags=-s keep. A plugin's runtime waits forever for a Go host when dlopen'ed by anything else, so
 * it must be refused before dlopen.
 */
export function isGoPluginBuild(info: BinaryInfo): boolean {
  if (info.language !== 'go') return false;
  let pkghash = false;
  for (const s of info.symbols) {
    if (s.startsWith('main.')) return false;
    if (s.startsWith('go.link.pkghash') || s.startsWith('go:link.pkghash')) pkghash = true;
  }
  return pkghash;
}

/** One line saying what the file is, e.g. "ELF 64-bit LSB shared object, x86-64 (linux/x64)". */
export function describe(info: BinaryInfo): string {
  const slices = info.slices.map((s) => describeSlice(info, s));
  switch (info.format) {
    case 'elf':
    case 'macho':
      return slices.join('');
    case 'macho-fat':
      return `Mach-O universal binary with ${slices.length} architecture${slices.length === 1 ? '' : 's'}: ${
        slices.join('; ')
      }`;
    case 'unknown':
      return info.what ?? 'a file of unknown format';
  }
}

function describeSlice(info: BinaryInfo, s: Slice): string {
  const target = `(${info.platform}/${s.arch ?? s.cpu})`;
  if (info.format === 'elf') {
    return `ELF ${s.bits}-bit ${s.endian === 'little' ? 'LSB' : 'MSB'} ${s.kindName}, ${s.cpu} ${target}`;
  }
  return `Mach-O ${s.bits}-bit ${s.endian === 'big' ? 'big-endian ' : ''}${s.kindName}, ${s.cpu} ${target}`;
}

function builtFor(info: BinaryInfo, s: Slice, host: Host): string {
  const endianNote = s.arch === host.arch && s.endian !== hostEndian(host.arch) ? ` ${s.endian}-endian` : '';
  return `${s.cpu}, ${info.format === 'elf' ? 'ELF' : 'Mach-O'} ${s.bits}-bit${endianNote}`;
}

function withArticle(phrase: string): string {
  return /^an? /.test(phrase) ? phrase : `${/^[aeiou]/i.test(phrase) ? 'an' : 'a'} ${phrase}`;
}

function hostSlice(slices: Slice[], host: Host): Slice | undefined {
  return slices.find((s) => s.arch === host.arch && s.endian === hostEndian(host.arch));
}

/** Node's big-endian arches; 'ppc64' is little-endian on Linux (ppc64le), the only platform we load plugins on. */
function hostEndian(arch: string): 'little' | 'big' {
  return ['s390x', 's390', 'mips', 'ppc'].includes(arch) ? 'big' : 'little';
}

function hostCpu(host: Host): string {
  const names: Record<string, string> =
    host.platform === 'darwin'
      ? { x64: 'x86_64', arm64: 'arm64', ia32: 'i386' }
      : { x64: 'x86-64', arm64: 'aarch64', ia32: 'i386', ppc64: 'ppc64le', loong64: 'loongarch64' };
  return names[host.arch] ?? host.arch;
}

// --- parsing -------------------------------------------------------------------------------------------------------

/** The file is recognisably of some format but unusable; the message says what it is, with its article. */
class Malformed extends Error {}

type Parsed = Omit<BinaryInfo, 'file' | 'symbols' | 'hasSymbolTable' | 'language'>;

const ELF_MAGIC = 0x7f454c46; // "\x7fELF", read big-endian
const MH_MAGIC = 0xfeedface;
const MH_MAGIC_64 = 0xfeedfacf;
const FAT_MAGIC = 0xcafebabe;
const FAT_MAGIC_64 = 0xcafebabf;

function parse(buf: Buffer): Parsed {
  const be = buf.length >= 4 ? buf.readUInt32BE(0) : -1;
  const le = buf.length >= 4 ? buf.readUInt32LE(0) : -1;
  if (be === ELF_MAGIC) return parseElf(buf);
  if (be === MH_MAGIC || be === MH_MAGIC_64 || le === MH_MAGIC || le === MH_MAGIC_64) {
    return { format: 'macho', platform: 'darwin', slices: [parseMachO(buf)], what: undefined };
  }
  // Java class files share 0xcafebabe; their next word (minor, major version) is >= 45, a fat file's arch count small.
  if (be === FAT_MAGIC_64 || (be === FAT_MAGIC && buf.length >= 8 && buf.readUInt32BE(4) < 45)) return parseFat(buf);
  return { format: 'unknown', platform: undefined, slices: [], what: sniff(buf) };
}

function formatName(buf: Buffer): string {
  if (buf.subarray(0, 4).equals(Buffer.from('\x7fELF', 'latin1'))) return 'ELF';
  return 'Mach-O';
}

/** Names what a non-ELF, non-Mach-O file is, for the error message. */
function sniff(buf: Buffer): string {
  if (buf.length === 0) return 'an empty file';
  const starts = (s: string) => buf.subarray(0, s.length).equals(Buffer.from(s, 'latin1'));
  if (starts('\x7fEL') || starts('\xfe\xed\xfa') || starts('\xce\xfa\xed') || starts('\xcf\xfa\xed')) {
    return `a truncated ${starts('\x7f') ? 'ELF' : 'Mach-O'} file (${buf.length} bytes)`;
  }
  if (starts('!<arch>\n')) return 'a static library (ar archive)';
  if (starts('MZ')) return 'a Windows PE file (DLL or EXE)';
  if (starts('\xca\xfe\xba\xbe')) return 'a Java class file';
  if (starts('#!')) return 'a script';
  const head = buf.subarray(0, 4096);
  if (!head.some((b) => b < 0x09 || (b > 0x0d && b < 0x20 && b !== 0x1b))) {
    // Some "lib*.so" files, glibc's libc.so among them, are linker scripts pointing at the real library.
    if (/\b(GROUP|INPUT)\s*\(/.test(head.toString('utf8'))) return 'a linker script (text)';
    return 'a text file';
  }
  return `a file of unknown format (starts with ${buf.subarray(0, 4).toString('hex').replace(/(..)(?!$)/g, '$1 ')})`;
}

interface Reader {
  u8(off: number): number;
  u16(off: number): number;
  u32(off: number): number;
  /** A word of the file's class: 4 bytes in 32-bit files, 8 in 64-bit ones. */
  word(off: number): number;
}

function reader(buf: Buffer, little: boolean, bits: 32 | 64): Reader {
  const u64 = (off: number) => {
    const v = little ? buf.readBigUInt64LE(off) : buf.readBigUInt64BE(off);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('offset out of range');
    return Number(v);
  };
  const u32 = (off: number) => (little ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
  return {
    u8: (off) => buf.readUInt8(off),
    u16: (off) => (little ? buf.readUInt16LE(off) : buf.readUInt16BE(off)),
    u32,
    word: bits === 64 ? u64 : u32,
  };
}

/** A NUL-terminated string starting at `start`, not reading past `end`. */
function cstr(buf: Buffer, start: number, end: number): string {
  const nul = buf.indexOf(0, start);
  return buf.toString('latin1', start, nul === -1 || nul > end ? end : nul);
}

// --- ELF -----------------------------------------------------------------------------------------------------------

const ET_REL = 1;
const ET_EXEC = 2;
const ET_DYN = 3;
const ET_CORE = 4;
const SHT_DYNAMIC = 6;
const SHT_NOBITS = 8;
const SHT_DYNSYM = 11;
const DT_FLAGS_1 = 0x6ffffffb;
const DF_1_PIE = 0x08000000;
const STB_GLOBAL = 1;
const STB_WEAK = 2;
const STB_GNU_UNIQUE = 10;
const STT_OBJECT = 1;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10; // a function whose address a resolver picks at load time: still a callable export
const STV_DEFAULT = 0;
const STV_PROTECTED = 3;

const ELF_OSABI: Record<number, string> = {
  0: 'linux', // ELFOSABI_SYSV (NONE): what Linux toolchains write
  3: 'linux', // ELFOSABI_GNU: written when GNU extensions (IFUNC, unique symbols) are used
  2: 'netbsd',
  6: 'sunos',
  7: 'aix',
  9: 'freebsd',
  12: 'openbsd',
};

interface Section {
  name: number;
  type: number;
  offset: number;
  size: number;
  link: number;
  entsize: number;
}

function parseElf(buf: Buffer): Parsed {
  if (buf.length < 16) throw new Malformed(`a truncated ELF file (${buf.length} bytes)`);
  const cls = buf[4];
  const data = buf[5];
  if ((cls !== 1 && cls !== 2) || (data !== 1 && data !== 2)) {
    throw new Malformed(`an ELF file with an invalid header (EI_CLASS ${cls}, EI_DATA ${data})`);
  }
  const bits = cls === 2 ? 64 : 32;
  const endian = data === 1 ? 'little' : 'big';
  const headerSize = bits === 64 ? 64 : 52;
  if (buf.length < headerSize) {
    throw new Malformed(`a truncated ELF file (${buf.length} bytes; an ELF ${bits}-bit header alone is ${headerSize})`);
  }
  const r = reader(buf, endian === 'little', bits);
  const at =
    bits === 64
      ? { shoff: 40, shentsize: 58, shnum: 60, shstrndx: 62 }
      : { shoff: 32, shentsize: 46, shnum: 48, shstrndx: 50 };
  const type = r.u16(16);
  const osabi = r.u8(7);
  const { cpu, arch } = elfCpu(r.u16(18), bits, endian);

  const sections = readSections(buf, r, bits, r.word(at.shoff), r.u16(at.shentsize), r.u16(at.shnum));
  const dynsym = sections.find((s) => s.type === SHT_DYNSYM);
  const strtab = dynsym && sections[dynsym.link];
  const symbols = dynsym && strtab ? elfSymbols(buf, r, bits, dynsym, strtab) : new Set<string>();

  const [kind, kindName] = elfKind(type, type === ET_DYN && isPie(buf, r, bits, sections));

  // Section names only matter for language detection; a missing or odd e_shstrndx just means we don't know them.
  let shstrndx = r.u16(at.shstrndx);
  if (shstrndx === 0xffff && sections[0]) shstrndx = sections[0].link; // SHN_XINDEX: the real index is in section 0
  const names = sections[shstrndx];
  const nameOf = (s: Section) => (names ? cstr(buf, names.offset + s.name, names.offset + names.size) : '');
  const sectionNamed = (name: string) => sections.find((s) => s.type !== SHT_NOBITS && nameOf(s) === name);
  const comment = sectionNamed('.comment');
  const language = detectLanguage(buf, [...symbols], {
    goSection: Boolean(sectionNamed('.go.buildinfo') || sectionNamed('.note.go.buildid')),
    rustcComment: comment !== undefined && text(buf, comment).includes('rustc version'),
  });

  return {
    format: 'elf',
    platform: ELF_OSABI[osabi] ?? `osabi-${osabi}`,
    slices: [{ arch, cpu, bits, endian, kind, kindName, symbols, hasSymbolTable: Boolean(strtab), language }],
    what: undefined,
  };
}

function elfKind(type: number, pie: boolean): [BinaryKind, string] {
  switch (type) {
    case ET_DYN: return pie ? ['executable', 'pie executable'] : ['shared', 'shared object'];
    case ET_EXEC: return ['executable', 'executable'];
    case ET_REL: return ['object', 'relocatable'];
    case ET_CORE: return ['core', 'core file'];
    default: return ['other', `ELF type ${type}`];
  }
}

function text(buf: Buffer, s: Section): string {
  return buf.toString('latin1', s.offset, s.offset + s.size);
}

function readSections(buf: Buffer, r: Reader, bits: 32 | 64, shoff: number, shentsize: number, shnum: number): Section[] {
  if (shoff === 0) return []; // stripped of its section table (sstrip): no symbols to read, not an error
  const headerSize = bits === 64 ? 64 : 40;
  if (shentsize < headerSize) throw new Malformed(`a corrupt ELF file (section header size ${shentsize})`);
  const section = (i: number): Section => {
    const o = shoff + i * shentsize;
    // Elf64_Shdr: name, type, flags, addr, offset, size, link, info, addralign, entsize; Elf32_Shdr: the same in 4 bytes.
    const [offset, size, link, entsize] = bits === 64 ? [24, 32, 40, 56] : [16, 20, 24, 36];
    return {
      name: r.u32(o),
      type: r.u32(o + 4),
      offset: r.word(o + offset),
      size: r.word(o + size),
      link: r.u32(o + link),
      entsize: r.word(o + entsize),
    };
  };
  // With 0xff00 sections or more, e_shnum is 0 and the real count is section 0's sh_size.
  const count = shnum === 0 && shoff + headerSize <= buf.length ? section(0).size : shnum;
  const end = shoff + count * shentsize;
  if (end > buf.length) {
    throw new Malformed(`a truncated ELF file (${buf.length} bytes; its section table ends at byte ${end})`);
  }
  const sections = Array.from({ length: count }, (_, i) => section(i));
  for (const s of sections) {
    if (s.type !== SHT_NOBITS && s.offset + s.size > buf.length) {
      throw new Malformed(`a truncated ELF file (${buf.length} bytes; a section ends at byte ${s.offset + s.size})`);
    }
  }
  return sections;
}

function elfSymbols(buf: Buffer, r: Reader, bits: 32 | 64, symtab: Section, strtab: Section): Set<string> {
  const entsize = symtab.entsize || (bits === 64 ? 24 : 16);
  const names = new Set<string>();
  for (let o = symtab.offset + entsize; o + entsize <= symtab.offset + symtab.size; o += entsize) {
    // Elf64_Sym: name, info, other, shndx, value, size. Elf32_Sym: name, value, size, info, other, shndx.
    const at = bits === 64 ? o + 4 : o + 12;
    const [info, other, shndx] = [r.u8(at), r.u8(at + 1), r.u16(at + 2)];
    const bind = info >> 4;
    const type = info & 0xf;
    const visibility = other & 3;
    if (shndx === 0) continue; // SHN_UNDEF: imported, not exported
    if (bind !== STB_GLOBAL && bind !== STB_WEAK && bind !== STB_GNU_UNIQUE) continue;
    if (type !== STT_FUNC && type !== STT_OBJECT && type !== STT_GNU_IFUNC) continue;
    if (visibility !== STV_DEFAULT && visibility !== STV_PROTECTED) continue;
    const name = cstr(buf, strtab.offset + r.u32(o), strtab.offset + strtab.size);
    if (name) names.add(name);
  }
  return new Set([...names].sort());
}

/** A PIE executable is ET_DYN too; the linker marks it with DF_1_PIE, which is also how `file` tells them apart. */
function isPie(buf: Buffer, r: Reader, bits: 32 | 64, sections: Section[]): boolean {
  const dynamic = sections.find((s) => s.type === SHT_DYNAMIC);
  if (!dynamic) return false;
  const entsize = bits === 64 ? 16 : 8;
  for (let o = dynamic.offset; o + entsize <= dynamic.offset + dynamic.size; o += entsize) {
    const tag = r.word(o);
    if (tag === 0) break; // DT_NULL
    if (tag === DT_FLAGS_1) return (r.word(o + entsize / 2) & DF_1_PIE) !== 0;
  }
  return false;
}

function elfCpu(machine: number, bits: 32 | 64, endian: 'little' | 'big'): { cpu: string; arch: string | undefined } {
  const is64 = bits === 64;
  const pick = (cpu: string, arch64: string | undefined, arch32: string | undefined) => ({
    cpu,
    arch: is64 ? arch64 : arch32,
  });
  const le = endian === 'little';
  switch (machine) {
    case 62: return pick(is64 ? 'x86-64' : 'x86-64 (x32 ABI)', 'x64', undefined);
    case 3: return pick('i386', undefined, 'ia32');
    case 183: return pick(is64 ? 'aarch64' : 'aarch64 (ILP32)', 'arm64', undefined);
    case 40: return pick('arm', undefined, 'arm');
    case 243: return pick(is64 ? 'riscv64' : 'riscv32', 'riscv64', undefined);
    case 21: return pick(le ? 'ppc64le' : 'ppc64', 'ppc64', undefined);
    case 20: return pick('ppc', undefined, 'ppc');
    case 22: return pick(is64 ? 's390x' : 's390', 's390x', 's390');
    case 258: return pick(is64 ? 'loongarch64' : 'loongarch32', 'loong64', undefined);
    case 8: return pick(is64 ? 'mips64' : 'mips', le ? 'mips64el' : undefined, le ? 'mipsel' : 'mips');
    case 2: return pick('sparc', undefined, undefined);
    case 43: return pick('sparcv9', undefined, undefined);
    case 50: return pick('ia64', undefined, undefined);
    default: return pick(`machine ${machine}`, undefined, undefined);
  }
}

// --- Mach-O --------------------------------------------------------------------------------------------------------

const LC_SYMTAB = 0x2;
const MH_KINDS: Record<number, [BinaryKind, string]> = {
  1: ['object', 'object'],
  2: ['executable', 'executable'],
  4: ['core', 'core file'],
  6: ['shared', 'dynamic library'],
  7: ['other', 'dynamic linker'],
  8: ['shared', 'bundle'],
  9: ['other', 'dynamic library stub'],
  10: ['other', 'dSYM companion file'],
  11: ['other', 'kext bundle'],
};
const N_STAB = 0xe0;
const N_PEXT = 0x10;
const N_TYPE = 0x0e;
const N_EXT = 0x01;
const N_UNDF = 0x0;
const N_PBUD = 0xc;

function parseFat(buf: Buffer): Parsed {
  const is64 = buf.readUInt32BE(0) === FAT_MAGIC_64;
  const count = buf.readUInt32BE(4);
  const entry = is64 ? 32 : 20;
  if (8 + count * entry > buf.length) throw new Malformed(`a truncated Mach-O universal file (${buf.length} bytes)`);
  const slices = Array.from({ length: count }, (_, i): Slice => {
    // fat_arch: cputype, cpusubtype, offset, size, align (all u32, big-endian); fat_arch_64 widens offset and size.
    const o = 8 + i * entry;
    const [offset, size] = is64
      ? [Number(buf.readBigUInt64BE(o + 8)), Number(buf.readBigUInt64BE(o + 16))]
      : [buf.readUInt32BE(o + 8), buf.readUInt32BE(o + 12)];
    if (offset + size > buf.length) {
      const end = offset + size;
      throw new Malformed(`a truncated Mach-O universal file (${buf.length} bytes; slice ${i + 1} ends at byte ${end})`);
    }
    return parseMachO(buf.subarray(offset, offset + size));
  });
  return { format: 'macho-fat', platform: 'darwin', slices, what: undefined };
}

function parseMachO(buf: Buffer): Slice {
  const little = buf.readUInt32LE(0) === MH_MAGIC || buf.readUInt32LE(0) === MH_MAGIC_64;
  const bits = (little ? buf.readUInt32LE(0) : buf.readUInt32BE(0)) === MH_MAGIC_64 ? 64 : 32;
  const headerSize = bits === 64 ? 32 : 28;
  if (buf.length < headerSize) throw new Malformed(`a truncated Mach-O file (${buf.length} bytes)`);
  const r = reader(buf, little, bits);
  const { cpu, arch } = machoCpu(r.u32(4), r.u32(8));
  const filetype = r.u32(12);
  const [kind, kindName] = MH_KINDS[filetype] ?? ['other', `filetype ${filetype}`];

  let symbols: Set<string> | undefined;
  let allNames: string[] = [];
  let off = headerSize;
  for (let i = 0, n = r.u32(16); i < n; i++) {
    const cmd = r.u32(off);
    const cmdsize = r.u32(off + 4);
    if (cmdsize < 8) throw new Malformed(`a corrupt Mach-O file (load command ${i + 1} has size ${cmdsize})`);
    if (cmd === LC_SYMTAB) ({ symbols, allNames } = machoSymbols(buf, r, bits, off));
    off += cmdsize;
  }
  const language = detectLanguage(buf, allNames, { goSection: false, rustcComment: false });
  const endian = little ? 'little' : 'big';
  const hasSymbolTable = symbols !== undefined;
  return { arch, cpu, bits, endian, kind, kindName, symbols: symbols ?? new Set(), hasSymbolTable, language };
}

/** Exported symbols from LC_SYMTAB, plus every name in it (local ones too) for language detection. */
function machoSymbols(buf: Buffer, r: Reader, bits: 32 | 64, cmd: number): { symbols: Set<string>; allNames: string[] } {
  const [symoff, nsyms, stroff, strsize] = [r.u32(cmd + 8), r.u32(cmd + 12), r.u32(cmd + 16), r.u32(cmd + 20)];
  const entsize = bits === 64 ? 16 : 12; // nlist(_64): strx u32, type u8, sect u8, desc u16, value u32/u64
  if (symoff + nsyms * entsize > buf.length || stroff + strsize > buf.length) {
    throw new Malformed(`a truncated Mach-O file (${buf.length} bytes; its symbol table lies beyond the end)`);
  }
  const symbols = new Set<string>();
  const allNames: string[] = [];
  for (let i = 0; i < nsyms; i++) {
    const o = symoff + i * entsize;
    const strx = r.u32(o);
    const type = r.u8(o + 4);
    // C names carry a leading underscore in Mach-O; dlsym("GetName") looks up "_GetName".
    const name = strx < strsize ? cstr(buf, stroff + strx, stroff + strsize).replace(/^_/, '') : '';
    if (!name) continue;
    allNames.push(name);
    const defined = (type & N_TYPE) !== N_UNDF && (type & N_TYPE) !== N_PBUD;
    if ((type & N_STAB) === 0 && (type & N_EXT) !== 0 && (type & N_PEXT) === 0 && defined) symbols.add(name);
  }
  return { symbols: new Set([...symbols].sort()), allNames };
}

function machoCpu(cputype: number, cpusubtype: number): { cpu: string; arch: string | undefined } {
  switch (cputype) {
    case 0x01000007: return { cpu: 'x86_64', arch: 'x64' };
    case 7: return { cpu: 'i386', arch: 'ia32' };
    // arm64e (subtype 2) is Apple's pointer-authentication ABI; it still runs on arm64 hardware.
    case 0x0100000c: return { cpu: (cpusubtype & 0xff) === 2 ? 'arm64e' : 'arm64', arch: 'arm64' };
    case 0x0200000c: return { cpu: 'arm64_32', arch: undefined };
    case 12: return { cpu: 'arm', arch: 'arm' };
    case 18: return { cpu: 'ppc', arch: 'ppc' };
    case 0x01000012: return { cpu: 'ppc64', arch: 'ppc64' };
    default: return { cpu: `cputype ${cputype}`, arch: undefined };
  }
}

// --- language ------------------------------------------------------------------------------------------------------

/**
 * Go c-shared libraries always export the cgo runtime's entry points (crosscall2, _cgo_*, x_cgo_*), even when built
 * with -ldflags=-s -w. Rust cdylibs export only the #[no_mangle] functions, so the signs are elsewhere: rustc writes
 * "rustc version ..." into .comment (ELF), and the standard library's panic locations embed
 * "/rustc/<commit hash>/library/..." paths in the data; both survive `strip`. Rust symbol names (rust_eh_personality,
 * __rust_alloc, hashed or v0-mangled names) are checked too: Mach-O's LC_SYMTAB lists local names until stripped.
 * (ELF's .symtab is not read: it adds nothing the two signs above miss, and `strip` removes it.)
 */
function detectLanguage(buf: Buffer, names: string[], hints: { goSection: boolean; rustcComment: boolean }): Language {
  const goName = (n: string) => n === 'crosscall2' || n.startsWith('_cgo_') || n.startsWith('x_cgo_');
  if (hints.goSection || names.some(goName)) return 'go';
  const rustName = (n: string) =>
    n === 'rust_eh_personality' ||
    n === 'rust_begin_unwind' ||
    n.startsWith('__rust_') ||
    n.startsWith('_RNv') || // v0 mangling
    /^_?_ZN.*17h[0-9a-f]{16}E$/.test(n); // legacy mangling: C++-like, plus a 16-hex-digit hash no C++ name has
  if (hints.rustcComment || names.some(rustName) || hasRustcPath(buf)) return 'rust';
  return 'c';
}

function hasRustcPath(buf: Buffer): boolean {
  for (let i = buf.indexOf('/rustc/'); i !== -1; i = buf.indexOf('/rustc/', i + 1)) {
    if (/^[0-9a-f]{40}\//.test(buf.toString('latin1', i + 7, i + 48))) return true;
  }
  return false;
}
