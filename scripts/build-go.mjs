#!/usr/bin/env node
// Builds the Go plugins (every module in plugins-go/, and the SDK's go-testplugin test plugin) into shared objects:
// <outDir>/<name>.so (.dylib on macOS).
//
//   node scripts/build-go.mjs [outDir]      build; outDir defaults to <repo>/build/plugins
//   node scripts/build-go.mjs --test        run `go test ./...` for the SDK and every plugin
//
//   import { buildGo } from './scripts/build-go.mjs';
//   const result = await buildGo(outDir);   // { skipped: true, reason } or { skipped: false, plugins: [{ name, path, built }] }
//
// An output newer than every source it depends on (the plugin's and the SDK's) is left alone (built: false).
// Without a Go toolchain nothing is built and the reason is printed: the gateway itself does not need Go.
//
// The build is offline: each plugin's go.mod points at sdk/go with a replace directive, the SDK uses the standard
// library only, and GOPROXY=off makes any attempt to download a module fail at once instead of hanging.
// No dependencies: plain Node.
import { constants as fsConstants, existsSync } from 'node:fs';
import { access, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exec, failure, libExtension, runMain, runSuites } from './toolchain.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sdkDir = path.join(repo, 'sdk', 'go');
const pluginsDir = path.join(repo, 'plugins-go');

export const SKIP_MESSAGE = 'Go toolchain not found; skipping Go plugins (apt-get install golang-go, or brew install go on macOS)';

/** The environment for go: offline, cgo on (c-shared needs it), and caches somewhere writable. */
async function goEnv() {
  const env = { ...process.env, GOFLAGS: '', GOPROXY: 'off', GOTOOLCHAIN: 'local', CGO_ENABLED: '1' };
  // Go keeps its caches under $HOME by default; a CI user or a container may not have a writable one.
  if (!(await writable(process.env.HOME))) {
    const cache = path.join(os.tmpdir(), 'heimdall-go');
    env.GOCACHE ||= path.join(cache, 'build');
    env.GOPATH ||= path.join(cache, 'path');
    env.GOMODCACHE ||= path.join(cache, 'path', 'pkg', 'mod');
  }
  return env;
}

async function writable(dir) {
  if (!dir) return false;
  try {
    await access(dir, fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** `go version`, or null when there is no go on PATH. */
async function goVersion(env) {
  try {
    return (await exec('go', ['version'], { env })).stdout.trim();
  } catch (err) {
    if (err.code === 'ENOENT') return null;
    throw err;
  }
}

/** The plugins to build: each plugins-go/<dir> with a go.mod (output <dir>), and the SDK's test plugin. */
async function plugins() {
  const list = [];
  const entries = existsSync(pluginsDir) ? await readdir(pluginsDir, { withFileTypes: true }) : [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.isDirectory() && existsSync(path.join(pluginsDir, e.name, 'go.mod'))) {
      list.push({ name: e.name, module: path.join(pluginsDir, e.name), pkg: '.' });
    }
  }
  list.push({ name: 'go-testplugin', module: sdkDir, pkg: './internal/testplugin' });
  return list;
}

async function mtime(file) {
  try {
    return (await stat(file)).mtimeMs;
  } catch {
    return null;
  }
}

/** The newest modification time of the build inputs (.go but tests, go.mod, go.sum, C files) under dir. */
async function newestInput(dir) {
  let newest = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'testdata' && !e.name.startsWith('.')) newest = Math.max(newest, await newestInput(p));
    } else if (/\.(go|mod|sum|c|h)$/.test(e.name) && !e.name.endsWith('_test.go')) {
      newest = Math.max(newest, (await stat(p)).mtimeMs);
    }
  }
  return newest;
}

/**
 * Builds the Go plugins into outDir, skipping those that are up to date.
 * @param {string} [outDir] where <name>.so / <name>.dylib go; default <repo>/build/plugins
 * @returns {Promise<{ skipped: true, reason: string } | { skipped: false, plugins: { name: string, path: string, built: boolean }[] }>}
 */
export async function buildGo(outDir = path.join(repo, 'build', 'plugins')) {
  const ext = libExtension();
  if (!ext) {
    const reason = `native plugins are built on Linux and macOS only (this is ${process.platform}); skipping Go plugins`;
    console.warn(reason);
    return { skipped: true, reason };
  }
  const env = await goEnv();
  if (!(await goVersion(env))) {
    console.warn(SKIP_MESSAGE);
    return { skipped: true, reason: SKIP_MESSAGE };
  }
  outDir = path.resolve(outDir);
  await mkdir(outDir, { recursive: true });
  const sdkNewest = await newestInput(sdkDir);
  const results = [];
  for (const plugin of await plugins()) {
    const dest = path.join(outDir, plugin.name + ext);
    const newest = plugin.module === sdkDir ? sdkNewest : Math.max(sdkNewest, await newestInput(plugin.module));
    const existing = await mtime(dest);
    if (existing !== null && existing >= newest) {
      results.push({ name: plugin.name, path: dest, built: false });
      continue;
    }
    // Build beside, then rename: a gateway that has the old file mapped keeps its copy intact. -trimpath keeps
    // this machine's paths out of the binary (and out of panic messages).
    const tmpBase = path.join(outDir, `${plugin.name}.tmp-${process.pid}`);
    const args = ['build', '-buildmode=c-shared', '-trimpath', '-o', tmpBase + ext, plugin.pkg];
    try {
      await exec('go', args, { cwd: plugin.module, env });
      await rename(tmpBase + ext, dest);
    } catch (err) {
      await rm(tmpBase + ext, { force: true });
      throw failure(`go ${args.join(' ')} (in ${path.relative(repo, plugin.module)})`, err);
    } finally {
      // c-shared also writes a C header of the exports; the ABI's header is native/include/heimdall_plugin.h.
      await rm(tmpBase + '.h', { force: true });
    }
    results.push({ name: plugin.name, path: dest, built: true });
  }
  return { skipped: false, plugins: results };
}

/**
 * Runs `go test ./...` for the SDK and every plugin, with go's output on this process's stdout/stderr.
 * @returns {Promise<{ skipped: boolean, reason?: string }>}
 */
export async function testGo() {
  const env = await goEnv();
  if (!(await goVersion(env))) {
    console.warn(SKIP_MESSAGE);
    return { skipped: true, reason: SKIP_MESSAGE };
  }
  const modules = [sdkDir, ...(await plugins()).filter((p) => p.module !== sdkDir).map((p) => p.module)];
  await runSuites('go test', modules, 'go', ['test', './...'], { env, relativeTo: repo });
  return { skipped: false };
}

await runMain(import.meta.url, { build: buildGo, test: testGo });
