/**
 * Test-only native plugins, compiled from the sources beside the tests into build/ (once; later runs reuse them).
 */
import path from 'node:path';
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
