import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Errors, HeimdallError } from '../src/errors.js';
import {
  checkCompatible,
  currentHost,
  describe,
  inspectBinary,
  parseBinary,
  type Host,
} from '../src/plugins/inspect.js';
import { buildBinaries, type Binaries } from './fixtures/binaries/build.mjs';
import { needs } from './helpers/toolchains.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const linuxX64: Host = { platform: 'linux', arch: 'x64' };
const linuxArm64: Host = { platform: 'linux', arch: 'arm64' };
const macArm64: Host = { platform: 'darwin', arch: 'arm64' };
const macX64: Host = { platform: 'darwin', arch: 'x64' };
const ABI = ['Cleanup', 'GetName', 'heimdall_plugin_abi_version', 'heimdall_plugin_free'];

/** The HeimdallError that checkCompatible throws for `file` on `host`. */
function refusal(file: string, host: Host): HeimdallError {
  try {
    checkCompatible(file, inspectBinary(file, host), host);
  } catch (err) {
    if (err instanceof HeimdallError) return err;
    throw err;
  }
  throw new Error(`checkCompatible accepted ${file} on ${host.platform}/${host.arch}`);
}

function accepts(t: Test, file: string, host: Host): void {
  t.doesNotThrow(() => checkCompatible(file, inspectBinary(file, host), host), `loads on ${host.platform}/${host.arch}`);
}

function needsElf(file: string, found: string): string {
  return Errors.PLUGIN_FORMAT(file, found, 'an ELF shared object (.so) for linux/x64').message;
}

if (process.platform !== 'linux') {
  t.plan(0, 'the fixtures are built with a Linux toolchain (cc)');
} else {
  t.setTimeout(180_000); // a first Go c-shared build compiles the cgo runtime
  run(await buildBinaries(path.join(root, 'build', 'test-fixtures', 'binaries')));
}

function run(bin: Binaries): void {
  t.test('a real x86-64 shared object from cc', async (t) => {
    const info = inspectBinary(bin.cX64);
    t.match(info, { format: 'elf', platform: 'linux', language: 'c', hasSymbolTable: true });
    t.match(info.slices, [
      { arch: 'x64', cpu: 'x86-64', bits: 64, endian: 'little', kind: 'shared', kindName: 'shared object' },
    ]);
    // Defined, default-visibility FUNC and OBJECT symbols, global or weak; not `free` (imported), not the hidden helper.
    t.same([...info.symbols], [
      'Cleanup',
      'GetName',
      'heimdall_fixture_counter',
      'heimdall_fixture_weak',
      'heimdall_plugin_abi_version',
      'heimdall_plugin_free',
    ]);
    t.equal(describe(info), 'ELF 64-bit LSB shared object, x86-64 (linux/x64)');
    accepts(t, bin.cX64, linuxX64);
    t.equal(
      refusal(bin.cX64, linuxArm64).message,
      Errors.PLUGIN_ARCH(bin.cX64, 'linux/x64 (x86-64, ELF 64-bit)', 'linux/arm64 (aarch64)').message,
    );
  });

  t.test('an x86-64 object patched to aarch64 is refused as arm64, with no cross-compiler needed', async (t) => {
    const info = inspectBinary(bin.armPatched);
    t.match(info.slices, [{ arch: 'arm64', cpu: 'aarch64', bits: 64, kind: 'shared' }]);
    const err = refusal(bin.armPatched, linuxX64);
    t.equal(err.code, Errors.PLUGIN_ARCH.code);
    t.match(err.message, `plugin ${bin.armPatched} is built for linux/arm64 (aarch64, ELF 64-bit)`);
    accepts(t, bin.armPatched, linuxArm64);
  });

  const realArm = needs(bin.cArm64 ? false : `not built: ${bin.skipped.cArm64}`);
  t.test('a real aarch64 shared object on x86-64 names both sides', { skip: realArm }, async (t) => {
    if (!bin.cArm64) return;
    const info = inspectBinary(bin.cArm64);
    t.match(info.slices, [{ arch: 'arm64', cpu: 'aarch64', bits: 64, kind: 'shared' }]);
    t.same([...info.symbols], [...inspectBinary(bin.cX64).symbols]);
    const err = refusal(bin.cArm64, linuxX64);
    t.equal(err.code, Errors.PLUGIN_ARCH.code);
    t.ok(
      err.message.startsWith(
        `plugin ${bin.cArm64} is built for linux/arm64 (aarch64, ELF 64-bit); this gateway runs on linux/x64 (x86-64). ` +
          'Build the plugin on',
      ),
      err.message,
    );
    accepts(t, bin.cArm64, linuxArm64);
  });

  t.test('a 32-bit x86 shared object', { skip: needs(bin.cIa32 ? false : `not built: ${bin.skipped.cIa32}`) }, async (t) => {
    const file = bin.cIa32 ?? '';
    const info = inspectBinary(file);
    t.match(info.slices, [{ arch: 'ia32', cpu: 'i386', bits: 32, endian: 'little', kind: 'shared' }]);
    t.same([...info.symbols], [...inspectBinary(bin.cX64).symbols], 'Elf32_Sym entries are read too');
    t.equal(describe(info), 'ELF 32-bit LSB shared object, i386 (linux/ia32)');
    t.equal(
      refusal(file, linuxX64).message,
      Errors.PLUGIN_ARCH(file, 'linux/ia32 (i386, ELF 32-bit)', 'linux/x64 (x86-64)').message,
    );
  });

  t.test('a copy with e_machine patched to RISC-V', async (t) => {
    t.match(inspectBinary(bin.machinePatched).slices, [{ arch: 'riscv64', cpu: 'riscv64', bits: 64 }]);
    t.equal(refusal(bin.machinePatched, linuxX64).code, Errors.PLUGIN_ARCH.code);
    accepts(t, bin.machinePatched, { platform: 'linux', arch: 'riscv64' });
  });

  t.test('a copy branded for FreeBSD (EI_OSABI) is the wrong format on Linux', async (t) => {
    const info = inspectBinary(bin.osabiPatched);
    t.equal(info.platform, 'freebsd');
    t.equal(
      refusal(bin.osabiPatched, linuxX64).message,
      needsElf(bin.osabiPatched, 'an ELF 64-bit LSB shared object, x86-64 (freebsd/x64)'),
    );
  });

  t.test('big-endian ELF files', async (t) => {
    const s390x = inspectBinary(bin.elfS390x);
    t.match(s390x.slices, [{ arch: 's390x', cpu: 's390x', bits: 64, endian: 'big', kind: 'shared' }]);
    t.same([...s390x.symbols], ['GetName', 'heimdall_plugin_abi_version'], 'not the imported, local or hidden ones');
    t.equal(describe(s390x), 'ELF 64-bit MSB shared object, s390x (linux/s390x)');
    accepts(t, bin.elfS390x, { platform: 'linux', arch: 's390x' });

    const ppc32 = inspectBinary(bin.elfPpc32);
    t.match(ppc32.slices, [{ arch: 'ppc', bits: 32, endian: 'big' }]);
    t.same([...ppc32.symbols], ['GetName', 'heimdall_plugin_abi_version']);

    // Node calls little-endian POWER (ppc64le, the only 64-bit POWER Linux it runs on) 'ppc64' too.
    t.equal(
      refusal(bin.elfPpc64Be, { platform: 'linux', arch: 'ppc64' }).message,
      Errors.PLUGIN_ARCH(bin.elfPpc64Be, 'linux/ppc64 (ppc64, ELF 64-bit big-endian)', 'linux/ppc64 (ppc64le)').message,
    );
  });

  t.test('ELF files that are not shared libraries', async (t) => {
    const cases: [string, string][] = [
      [bin.executable, 'an ELF 64-bit LSB executable, x86-64 (linux/x64)'],
      [bin.pie, 'an ELF 64-bit LSB pie executable, x86-64 (linux/x64)'], // ET_DYN, told apart by DF_1_PIE
      [bin.object, 'an ELF 64-bit LSB relocatable, x86-64 (linux/x64)'],
    ];
    for (const [file, found] of cases) {
      const err = refusal(file, linuxX64);
      t.equal(err.code, Errors.PLUGIN_FORMAT.code);
      t.equal(err.message, needsElf(file, found));
    }
    t.equal(inspectBinary(bin.pie).slices[0]?.kind, 'executable');
  });

  t.test('files that are not ELF or Mach-O at all', async (t) => {
    const cases: [string, string][] = [
      [bin.text, 'a text file'],
      [bin.linkerScript, 'a linker script (text)'],
      [bin.archive, 'a static library (ar archive)'],
      [bin.empty, 'an empty file'],
      [bin.truncatedHeader, 'a truncated ELF file (40 bytes; an ELF 64-bit header alone is 64)'],
    ];
    for (const [file, found] of cases) {
      const info = inspectBinary(file);
      t.match(info, { format: 'unknown', slices: [], language: 'unknown', hasSymbolTable: false });
      t.equal(info.symbols.size, 0);
      t.equal(describe(info), found);
      t.equal(refusal(file, linuxX64).message, needsElf(file, found));
    }
    const truncated = describe(inspectBinary(bin.truncatedBody));
    t.match(truncated, /^a truncated ELF file \(\d+ bytes; its section table ends at byte \d+\)$/);
  });

  t.test('bytes in memory: other formats are named', async (t) => {
    const what = (bytes: number[] | string) => describe(parseBinary('x', Buffer.from(bytes as string)));
    t.equal(what('MZ\x90\x00'), 'a Windows PE file (DLL or EXE)');
    t.equal(what('#!/bin/sh\necho hi\n'), 'a script');
    t.equal(what([0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 52]), 'a Java class file'); // not a fat Mach-O with 52 slices
    t.equal(
      what([0x7f, 0x45, 0x4c, 0x46, 9, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
      'an ELF file with an invalid header (EI_CLASS 9, EI_DATA 9)',
    );
    t.equal(what([0, 1, 2, 3, 4, 5]), 'a file of unknown format (starts with 00 01 02 03)');
    t.equal(what([0xcf, 0xfa, 0xed, 0xfe, 7, 0]), 'a truncated Mach-O file (6 bytes)');
  });

  t.test('a file that cannot be read', async (t) => {
    const missing = path.join(bin.dir, 'no-such-plugin.so');
    t.throws(() => inspectBinary(missing), {
      code: Errors.PLUGIN_NOT_FOUND.code,
      message: Errors.PLUGIN_NOT_FOUND(missing, 'ENOENT: no such file or directory').message,
    });
    t.throws(() => inspectBinary(bin.dir), { code: Errors.PLUGIN_NOT_FOUND.code, message: /EISDIR/ });
  });

  t.test('hosts other than Linux and macOS are refused first', async (t) => {
    const err = refusal(bin.cX64, { platform: 'win32', arch: 'x64' });
    t.equal(err.message, Errors.PLUGIN_PLATFORM(bin.cX64, 'win32').message);
  });

  t.test('Mach-O on a macOS arm64 host', async (t) => {
    const thin = inspectBinary(bin.machoArm64, macArm64);
    t.match(thin, { format: 'macho', platform: 'darwin', language: 'c', hasSymbolTable: true });
    t.match(thin.slices, [
      { arch: 'arm64', cpu: 'arm64', bits: 64, endian: 'little', kind: 'shared', kindName: 'dynamic library' },
    ]);
    // External defined symbols, underscore stripped; not the undefined, local, private-extern or stab entries.
    t.same([...thin.symbols], [...ABI, 'only_on_arm64']);
    t.equal(describe(thin), 'Mach-O 64-bit dynamic library, arm64 (darwin/arm64)');
    accepts(t, bin.machoArm64, macArm64);

    t.equal(
      refusal(bin.machoX64, macArm64).message,
      Errors.PLUGIN_ARCH(bin.machoX64, 'darwin/x64 (x86_64, Mach-O 64-bit)', 'darwin/arm64 (arm64)').message,
    );
    accepts(t, bin.machoX64, macX64);
  });

  t.test('fat Mach-O: loads when one slice matches, symbols come from that slice', async (t) => {
    const info = inspectBinary(bin.fat, macArm64);
    t.equal(info.format, 'macho-fat');
    t.same(info.slices.map((s) => s.arch), ['x64', 'arm64']);
    t.equal(
      describe(info),
      'Mach-O universal binary with 2 architectures: Mach-O 64-bit dynamic library, x86_64 (darwin/x64); ' +
        'Mach-O 64-bit dynamic library, arm64 (darwin/arm64)',
    );
    t.ok(info.symbols.has('only_on_arm64'));
    t.ok(inspectBinary(bin.fat, macX64).symbols.has('only_on_x86_64'));
    accepts(t, bin.fat, macArm64);
    accepts(t, bin.fat, macX64);

    // FAT_MAGIC_64, and no arm64 slice: the error lists every slice.
    t.same(inspectBinary(bin.fat64).slices.map((s) => [s.arch, s.bits]), [['x64', 64], ['ia32', 32]]);
    t.equal(
      refusal(bin.fat64, macArm64).message,
      Errors.PLUGIN_ARCH(
        bin.fat64,
        'darwin/x64 (x86_64, Mach-O 64-bit) and darwin/ia32 (i386, Mach-O 32-bit)',
        'darwin/arm64 (arm64)',
      ).message,
    );
  });

  t.test('a big-endian 32-bit Mach-O bundle', async (t) => {
    const info = inspectBinary(bin.machoPpcBundle);
    t.match(info.slices, [{ arch: 'ppc', cpu: 'ppc', bits: 32, endian: 'big', kind: 'shared', kindName: 'bundle' }]);
    t.ok(info.symbols.has('GetName'));
    t.equal(refusal(bin.machoPpcBundle, macArm64).code, Errors.PLUGIN_ARCH.code);
  });

  t.test('ELF on macOS and Mach-O on Linux are the wrong format', async (t) => {
    t.equal(
      refusal(bin.armPatched, macArm64).message,
      Errors.PLUGIN_FORMAT(
        bin.armPatched,
        'an ELF 64-bit LSB shared object, aarch64 (linux/arm64)',
        'a Mach-O dynamic library (.dylib) for darwin/arm64',
      ).message,
    );
    t.equal(
      refusal(bin.machoX64, linuxX64).message,
      needsElf(bin.machoX64, 'a Mach-O 64-bit dynamic library, x86_64 (darwin/x64)'),
    );
  });

  t.test('Go c-shared library', { skip: needs(bin.go ? false : `not built: ${bin.skipped.go}`) }, async (t) => {
    const info = inspectBinary(bin.go ?? '');
    t.equal(info.language, 'go');
    // Even stripped (-ldflags=-s -w), the cgo runtime's entry points are dynamic exports.
    for (const name of [...ABI, 'crosscall2', '_cgo_topofstack']) t.ok(info.symbols.has(name), name);
    accepts(t, bin.go ?? '', currentHost());
  });

  t.test('Rust cdylib', { skip: needs(bin.rust ? false : `not built: ${bin.skipped.rust}`) }, async (t) => {
    const info = inspectBinary(bin.rust ?? '');
    t.equal(info.language, 'rust');
    // A cdylib's dynamic symbol table holds only the #[no_mangle] functions: nothing there says "Rust".
    t.same([...info.symbols], ABI);
    accepts(t, bin.rust ?? '', currentHost());
  });

  t.test(
    'Rust cdylib without symbols or .comment',
    { skip: needs(bin.rustStripped ? false : `not built: ${bin.skipped.rustStripped}`) },
    async (t) => {
      const file = bin.rustStripped ?? '';
      t.notOk(readFileSync(file).includes('rustc version'), 'the .comment section is gone');
      t.equal(inspectBinary(file).language, 'rust', "found from the standard library's /rustc/<hash>/ paths");
    },
  );
}
