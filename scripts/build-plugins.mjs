#!/usr/bin/env node
// Builds the Go and Rust example plugins into build/plugins (the C examples are built by node-gyp through
// binding.gyp). A missing toolchain is reported and skipped, never fatal: the gateway itself needs neither.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildGo } from './build-go.mjs';
import { buildRust } from './build-rust.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = process.argv[2] ? path.resolve(process.argv[2]) : path.join(repo, 'build', 'plugins');

for (const result of [await buildGo(outDir), await buildRust(outDir)]) {
  for (const p of result.skipped ? [] : result.plugins) {
    console.log(`${p.built ? 'built' : 'up to date'} ${p.name}: ${path.relative(process.cwd(), p.path) || p.path}`);
  }
}
