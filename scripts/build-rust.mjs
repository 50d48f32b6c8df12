#!/usr/bin/env node
// Builds the Rust plugins (every crate in plugins-rust/, and the SDK's rust-panicky test plugin) and copies each
// shared library to <outDir>/<name>.so (.dylib on macOS).
//
//   node scripts/build-rust.mjs [outDir]      build; outDir defaults to <repo>/build/plugins
//   node scripts/build-rust.mjs --test        run `cargo test` for the SDK and every plugin crate
//
//   import { buildRust } from './scripts/build-rust.mjs';
//   const result = await buildRust(outDir);   // { skipped: true, reason } or { skipped: false, plugins: [{ name, path, built }] }
//
// cargo rebuilds only what changed; `built` says whether the library was recompiled or copied anew (false: the output
// was already up to date).
// Crates come from Debian's packaged Rust crates when they are installed (apt-get install librust-serde-dev
// librust-serde-derive-dev librust-serde-json-dev): cargo then runs --offline with sdk/rust/cargo-debian.toml.
// Otherwise from crates.io, as cargo is set up. Without cargo, or when neither source has the crates (crates.io
// unreachable and Debian's crates not installed), nothing is built and one warning line names the fix: the gateway
// itself needs no Rust. A real compile error is still an error.
// Cargo's target dir is <repo>/build/cargo-target. No dependencies: plain Node.
import { existsSync, readdirSync } from 'node:fs';
import { copyFile, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exec, failure, libExtension, runMain, runSuites } from './toolchain.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sdkDir = path.join(repo, 'sdk', 'rust');
const pluginsDir = path.join(repo, 'plugins-rust');
const targetDir = path.join(repo, 'build', 'cargo-target');
const debianRegistry = '/usr/share/cargo/registry';
const debianConfig = path.join(sdkDir, 'cargo-debian.toml');
const debianPackages = 'librust-serde-dev librust-serde-derive-dev librust-serde-json-dev';

export const SKIP_MESSAGE =
  'Rust toolchain not found; skipping Rust plugins (install Rust: apt-get install cargo, or rustup on macOS)';
export const CRATES_MESSAGE =
  `Rust crates unavailable (crates.io unreachable and Debian's packaged crates not installed); skipping Rust plugins ` +
  `(apt-get install ${debianPackages}, or allow network access to crates.io)`;

// What cargo says when it cannot reach or find a registry, as opposed to a manifest or compile error.
const UNREACHABLE =
  /Could not resolve host|failed to (download|get|query replaced source|load source|update)|unable to update registry|spurious network error|no matching package named|Couldn't connect|timed out/i;

/** The cargo to use: $CARGO, `cargo` on PATH, or rustup's default place (a PATH without ~/.cargo/bin is common in CI). */
async function findCargo() {
  const candidates = [process.env.CARGO, 'cargo', path.join(process.env.CARGO_HOME || path.join(os.homedir(), '.cargo'), 'bin', 'cargo')];
  for (const candidate of candidates.filter(Boolean)) {
    try {
      const { stdout } = await exec(candidate, ['--version']);
      return { cargo: candidate, version: stdout.trim() };
    } catch {
      // try the next one
    }
  }
  return null;
}

/** Debian's registry directory is usable when it holds the crates the SDK needs. */
function useDebianRegistry() {
  if (!existsSync(debianRegistry)) return false;
  const names = readdirSync(debianRegistry);
  return ['serde-1', 'serde_derive-1', 'serde_json-1'].every((prefix) => names.some((n) => n.startsWith(prefix)));
}

function registryArgs() {
  return useDebianRegistry() ? ['--offline', '--config', debianConfig] : [];
}

/** The crates to build: each plugins-rust/<dir> with a Cargo.toml (output <dir>), and the SDK's test plugin. */
async function crates() {
  const list = [];
  const entries = existsSync(pluginsDir) ? await readdir(pluginsDir, { withFileTypes: true }) : [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.isDirectory() && existsSync(path.join(pluginsDir, e.name, 'Cargo.toml'))) {
      list.push({ name: e.name, dir: path.join(pluginsDir, e.name), args: ['--lib'], kind: 'cdylib' });
    }
  }
  list.push({ name: 'rust-panicky', dir: sdkDir, args: ['--example', 'panicky'], kind: 'example' });
  return list;
}

/** The shared library among cargo's JSON messages (--message-format=json): { file, fresh } or null. */
function artifactOf(stdout, kind, ext) {
  let found = null;
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      continue;
    }
    if (msg.reason !== 'compiler-artifact' || !msg.target?.kind?.includes(kind)) continue;
    const file = msg.filenames?.find((f) => f.endsWith(ext));
    if (file) found = { file, fresh: msg.fresh === true };
  }
  return found;
}

/** Whether dest exists, is as large as src and not older. */
async function upToDate(dest, src) {
  try {
    const [d, s] = await Promise.all([stat(dest), stat(src)]);
    return d.size === s.size && d.mtimeMs >= s.mtimeMs;
  } catch {
    return false;
  }
}

/**
 * Null when cargo can get every crate the builds need, else CRATES_MESSAGE. `cargo fetch` resolves without compiling;
 * a fetch that fails for another reason (a broken Cargo.toml) is thrown: that is a real error in an example.
 */
async function unavailableCrates(cargo) {
  // One quick try: a machine without network answers at once instead of after cargo's back-off.
  const env = { ...process.env, CARGO_NET_RETRY: process.env.CARGO_NET_RETRY ?? '1' };
  for (const crate of await crates()) {
    try {
      await exec(cargo, ['fetch', ...registryArgs()], { cwd: crate.dir, env });
    } catch (err) {
      if (UNREACHABLE.test(String(err.stderr))) return CRATES_MESSAGE;
      throw failure(`cargo fetch for ${crate.name} (in ${path.relative(repo, crate.dir)})`, err);
    }
  }
  return null;
}

/** Where crates.io is unreachable, the fix is Debian's packaged crates. */
function debianHint() {
  return useDebianRegistry() ? '' : `
(If crates.io is unreachable, install Debian's packaged crates: apt-get install -y ${debianPackages})`;
}

/**
 * Builds the Rust plugins in release mode and copies them to outDir.
 * @param {string} [outDir] where <name>.so / <name>.dylib go; default <repo>/build/plugins
 * @param {{ verbose?: boolean }} [options] verbose: echo cargo's progress to stderr
 * @returns {Promise<{ skipped: true, reason: string } | { skipped: false, plugins: { name: string, path: string, built: boolean }[] }>}
 */
export async function buildRust(outDir = path.join(repo, 'build', 'plugins'), { verbose = false } = {}) {
  const ext = libExtension();
  if (!ext) {
    const reason = `native plugins are built on Linux and macOS only (this is ${process.platform}); skipping Rust plugins`;
    console.warn(reason);
    return { skipped: true, reason };
  }
  const found = await findCargo();
  if (!found) {
    console.warn(SKIP_MESSAGE);
    return { skipped: true, reason: SKIP_MESSAGE };
  }
  const noCrates = await unavailableCrates(found.cargo);
  if (noCrates) {
    console.warn(noCrates);
    return { skipped: true, reason: noCrates };
  }
  await mkdir(outDir, { recursive: true });
  const plugins = [];
  for (const crate of await crates()) {
    const args = ['build', '--release', ...registryArgs(), '--target-dir', targetDir, ...crate.args, '--message-format=json-render-diagnostics'];
    let stdout;
    try {
      ({ stdout } = await exec(found.cargo, args, { cwd: crate.dir, echo: verbose }));
    } catch (err) {
      throw failure(`cargo build of ${crate.name} (in ${path.relative(repo, crate.dir)})`, err, debianHint());
    }
    const artifact = artifactOf(stdout, crate.kind, ext);
    if (!artifact) throw new Error(`cargo build of ${crate.name} produced no ${ext} (is crate-type = ["cdylib"] set?)`);
    const dest = path.join(outDir, crate.name + ext);
    const built = !artifact.fresh || !(await upToDate(dest, artifact.file));
    if (built) {
      // Copy beside, then rename: a gateway that has the old file mapped keeps its copy intact.
      const tmp = `${dest}.tmp-${process.pid}`;
      await copyFile(artifact.file, tmp);
      await rename(tmp, dest).catch(async (err) => {
        await rm(tmp, { force: true });
        throw err;
      });
    }
    plugins.push({ name: crate.name, path: dest, built });
  }
  return { skipped: false, plugins };
}

/**
 * Runs `cargo test` for the SDK and every plugin crate, with cargo's output on this process's stdout/stderr.
 * @returns {Promise<{ skipped: boolean, reason?: string }>}
 */
export async function testRust() {
  const found = await findCargo();
  if (!found) {
    console.warn(SKIP_MESSAGE);
    return { skipped: true, reason: SKIP_MESSAGE };
  }
  const noCrates = await unavailableCrates(found.cargo);
  if (noCrates) {
    console.warn(noCrates);
    return { skipped: true, reason: noCrates };
  }
  const dirs = [sdkDir, ...(await crates()).filter((c) => c.kind === 'cdylib').map((c) => c.dir)];
  await runSuites('cargo test', dirs, found.cargo, ['test', ...registryArgs(), '--target-dir', targetDir], {
    relativeTo: repo,
    hint: debianHint,
  });
  return { skipped: false };
}

await runMain(import.meta.url, { build: (outDir) => buildRust(outDir, { verbose: true }), test: testRust });
