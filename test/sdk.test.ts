/**
 * The Go and Rust SDKs' own test suites (go test, cargo test), run as part of the project's tests so CI runs every
 * language. A missing toolchain (or Rust's crates) skips with the build script's own reason, which names the fix.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { REPO } from './helpers/fixtures.js';
import { needs } from './helpers/toolchains.js';

const exec = promisify(execFile);

/** The script's skip line ("... skipping Go plugins (apt-get install ...)"), if it skipped. */
const skipLine = (output: string): string | false => output.match(/^.*skipping (Go|Rust) plugins.*$/m)?.[0] ?? false;

async function suite(script: string): Promise<{ ok: boolean; skipped: string | false; output: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [path.join(REPO, 'scripts', script), '--test'], {
      cwd: REPO,
      maxBuffer: 64 * 1024 * 1024,
    });
    const output = stdout + stderr;
    return { ok: true, skipped: skipLine(output), output };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, skipped: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

const go = await suite('build-go.mjs');
const rust = await suite('build-rust.mjs');

t.test('Go SDK and Go plugins: go test ./...', { skip: needs(go.skipped) }, async (t) => {
  const r = go;
  t.ok(r.ok, 'go test passes', { output: r.output.slice(-4000) });
  t.match(r.output, /^ok\s+\S+\/sdk\/go\s/m, 'the SDK package was tested');
  t.notMatch(r.output, /^(FAIL|--- FAIL)/m);
});

t.test('Rust SDK and Rust plugins: cargo test', { skip: needs(rust.skipped) }, async (t) => {
  const r = rust;
  t.ok(r.ok, 'cargo test passes', { output: r.output.slice(-4000) });
  const results = [...r.output.matchAll(/test result: (\w+)\. (\d+) passed; (\d+) failed/g)];
  t.ok(results.length >= 2, 'both crates ran tests');
  t.ok(results.every((m) => m[1] === 'ok' && m[3] === '0'), 'no Rust test failed');
  t.ok(results.reduce((n, m) => n + Number(m[2]), 0) >= 20, 'and they are not empty');
});
