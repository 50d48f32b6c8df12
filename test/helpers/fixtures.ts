/**
 * Test-only native plugins, compiled from the sources beside the tests into build/ (once; later runs reuse them).
 */
import { execFile } from 'node:child_process';
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { buildBinaries, type Binaries } from '../fixtures/binaries/build.mjs';
import { buildProbes, type ProbeName } from '../fixtures/plugins/build.mjs';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BUILD = path.join(REPO, 'build');

let probes: Promise<Record<ProbeName, string>> | undefined;

export function probePlugins(): Promise<Record<ProbeName, string>> {
  return (probes ??= buildProbes(path.join(BUILD, 'test-fixtures', 'probes')));
}

let binaries: Promise<Binaries> | undefined;

/** Real and crafted binaries of every kind a plugin path might point at (foreign arch, Mach-O, text, ...). */
export function binaryFixtures(): Promise<Binaries> {
  return (binaries ??= buildBinaries(path.join(BUILD, 'test-fixtures', 'binaries')));
}

const exec = promisify(execFile);

/**
 * The "versioned" test plugin, built as version A and B (same name), for reload tests. Returns the two builds;
 * callers copy one of them to the path they load, then copy the other over it to "rebuild".
 */
export async function versionedBuilds(): Promise<{ A: string; B: string }> {
  const dir = path.join(BUILD, 'test-fixtures', 'versioned');
  await mkdir(dir, { recursive: true });
  const source = path.join(REPO, 'test', 'fixtures', 'plugins', 'versioned.c');
  const out: Record<string, string> = {};
  for (const v of ['A', 'B']) {
    const file = path.join(dir, `versioned-${v}${process.platform === 'darwin' ? '.dylib' : '.so'}`);
    const tmp = `${file}.${process.pid}.tmp`;
    await exec('cc', ['-shared', '-fPIC', '-O1', '-D_GNU_SOURCE', `-DVERSION="${v}"`, '-I', path.join(REPO, 'native', 'include'), '-o', tmp, source]);
    await rename(tmp, file);
    out[v] = file;
  }
  return out as { A: string; B: string };
}

/** The netcall test plugin (a blocking loopback call in PreHook; declares 64 concurrent calls), built once. */
let netcall: Promise<string> | undefined;
export function netcallPlugin(): Promise<string> {
  return (netcall ??= (async () => {
    const dir = path.join(BUILD, 'test-fixtures', 'netcall');
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, `netcall${process.platform === 'darwin' ? '.dylib' : '.so'}`);
    const tmp = `${file}.${process.pid}.tmp`;
    const source = path.join(REPO, 'test', 'fixtures', 'plugins', 'netcall.c');
    await exec('cc', ['-shared', '-fPIC', '-O1', '-Wall', '-Wextra', '-I', path.join(REPO, 'native', 'include'), '-o', tmp, source]);
    await rename(tmp, file);
    return file;
  })());
}
