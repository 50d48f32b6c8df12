/**
 * No load or inspection hangs: a Go plugin built the Bifrost way (-buildmode=plugin) is recognised from the file
 * itself and refused before dlopen, by `heimdall start` and by `heimdall plugin inspect`; inspect's own dlopen runs in
 * a child process with a deadline; a missing-symbol error names the fix for the language the file was written in.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { inspectPlugin } from '../src/commands/inspect.js';
import { Errors, type HeimdallError } from '../src/errors.js';
import { inspectBinary, isGoPluginBuild } from '../src/plugins/inspect.js';
import { checkFile, loadPlugin } from '../src/plugins/loader.js';
import { runCli } from './helpers/cli.js';
import { startGateway } from './helpers/gateway.js';
import { BUILD, REPO } from './helpers/fixtures.js';
import { hasCommand, needs } from './helpers/toolchains.js';

const cli = runCli;

const exec = promisify(execFile);
// Go builds and command-line runs (Node with the TypeScript loader) are slow on a busy machine.
t.setTimeout(600_000);
const DIR = path.join(BUILD, 'test-fixtures', 'go-plugin-format');
mkdirSync(DIR, { recursive: true });
const GO_ENV = { ...process.env, GOFLAGS: '', GOPROXY: 'off', GOTOOLCHAIN: 'local', CGO_ENABLED: '1' };

const noGo = needs((await hasCommand('go', ['version'])) ? false : 'Go is not installed (apt-get install golang-go)');
const noRustc = needs((await hasCommand('rustc', ['--version'])) ? false : 'rustc is not installed (apt-get install cargo)');

/** go build in `cwd` with the given mode, into DIR/out (written beside, then renamed, so a reader never sees half). */
async function goBuild(cwd: string, mode: string, out: string, pkg = '.'): Promise<string> {
  const file = path.join(DIR, out);
  const tmp = `${file}.${process.pid}.tmp`;
  await exec('go', ['build', `-buildmode=${mode}`, '-trimpath', '-o', tmp, pkg], { cwd, env: GO_ENV, timeout: 300_000 });
  renameSync(tmp, file);
  return file;
}

/** A module of its own holding one main package (what a Bifrost plugin author has). */
function goModule(name: string, source: string): string {
  const dir = path.join(DIR, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'go.mod'), `module example.com/${name}\n\ngo 1.19\n`);
  writeFileSync(path.join(dir, 'main.go'), source);
  return dir;
}

const BIFROST_STYLE = `package main

// A plugin the way Bifrost loads them: Go's plugin package looks up exported Go names; no C symbols at all.
type plugin struct{}

func (plugin) GetName() string { return "bifrost-style" }

func Init(config any) (any, error) { return plugin{}, nil }

func main() {}
`;

t.test('a Go -buildmode=plugin file is refused before dlopen, by the loader, start and inspect', { skip: noGo }, async (t) => {
  // The SDK's own test plugin exports all four required C symbols: only the build mode is wrong.
  const withExports = await goBuild(path.join(REPO, 'sdk', 'go'), 'plugin', 'sdk-testplugin-goplugin.so', './internal/testplugin');
  const pure = await goBuild(goModule('bifrost-style', BIFROST_STYLE), 'plugin', 'bifrost-style.so');
  const cshared = await goBuild(path.join(REPO, 'sdk', 'go'), 'c-shared', 'sdk-testplugin-cshared.so', './internal/testplugin');

  t.ok(isGoPluginBuild(inspectBinary(withExports)), 'recognised from its symbols');
  t.ok(isGoPluginBuild(inspectBinary(pure)), 'recognised with no C exports');
  t.notOk(isGoPluginBuild(inspectBinary(cshared)), 'a c-shared build of the same code is not');
  // A c-shared library that can itself load Go plugins exports package hashes too, but it has a main package.
  const loader = await goBuild(goModule('loads-plugins', 'package main\n\nimport "C"\nimport "plugin"\n\n' +
    '//export Probe\nfunc Probe() C.int { _, err := plugin.Open("/nonexistent"); if err != nil { return 1 }; return 0 }\n\nfunc main() {}\n'),
  'c-shared', 'loads-plugins.so');
  t.ok([...inspectBinary(loader).symbols].some((s) => s.includes('link.pkghash')), 'it exports package hashes');
  t.notOk(isGoPluginBuild(inspectBinary(loader)), 'a c-shared library that loads Go plugins is not taken for one');
  const stripped = path.join(DIR, 'bifrost-style-stripped.so');
  await exec('strip', ['-o', stripped, pure]);
  t.ok(isGoPluginBuild(inspectBinary(stripped)), 'still recognised once stripped');

  for (const file of [withExports, pure, stripped]) {
    const started = Date.now();
    const err = await loadPlugin(file, { config: {} }).then(() => undefined, (e: HeimdallError) => e);
    const ms = Date.now() - started;
    t.equal(err?.code, 'HEIMDALL_ERR_PLUGIN_FORMAT', `${path.basename(file)}: refused`);
    t.equal(err?.message, Errors.PLUGIN_GO_BUILDMODE(file).message, 'the message names the build mode and its fix');
    t.match(err?.message, /-buildmode=plugin.*go build -buildmode=c-shared and the Go SDK/);
    t.ok(ms < 1000, `refused by the loader in ${ms} ms (< 1000)`);
  }

  // A gateway's start (the same path as heimdall start's, in this process): refused within a second.
  const gwStarted = Date.now();
  await t.rejects(startGateway(t, { providers: { mock: {} }, plugins: [{ path: withExports }] }), { code: 'HEIMDALL_ERR_PLUGIN_FORMAT' });
  const gwMs = Date.now() - gwStarted;
  t.ok(gwMs < 1000, `a gateway's start refused it in ${gwMs} ms (< 1000)`);

  // heimdall start: exits with the error, leaves no staging copy behind.
  const tmp = mkdtempSync(path.join(tmpdir(), 'heimdall-goplugin-'));
  const config = path.join(tmp, 'config.json');
  writeFileSync(config, JSON.stringify({ providers: { mock: {} }, plugins: [{ path: withExports }] }));
  const started = Date.now();
  const run = cli(['start', '--config', config, '--port', '0'], { ...process.env, TMPDIR: tmp });
  const timer = setTimeout(() => run.child.kill('SIGKILL'), 90_000);
  const code = await run.closed;
  clearTimeout(timer);
  const ms = Date.now() - started;
  t.equal(code, 1, 'heimdall start exits 1');
  t.match(run.err(), /HEIMDALL_ERR_PLUGIN_FORMAT: plugin .*sdk-testplugin-goplugin\.so is a Go plugin built with -buildmode=plugin/);
  t.comment(`heimdall start refused it in ${ms} ms, process start-up included`);
  t.same(readdirSync(tmp).filter((n) => n.startsWith('heimdall-plugins-')), [], 'no staging directory left behind');

  // heimdall plugin inspect: the report says why, and the refusal needs no child process at all.
  const inspectStarted = Date.now();
  const report = inspectPlugin(pure);
  const inspectMs = Date.now() - inspectStarted;
  t.equal(report.loadable, false);
  t.equal(report.language, 'go');
  t.same(report.problems.map((p) => p.code), ['HEIMDALL_ERR_PLUGIN_FORMAT']);
  t.ok(inspectMs < 1000, `inspect refused it in ${inspectMs} ms (< 1000)`);
  const inspected = cli(['plugin', 'inspect', withExports]);
  const cliTimer = setTimeout(() => inspected.child.kill('SIGKILL'), 90_000);
  t.equal(await inspected.closed, 1, 'heimdall plugin inspect exits 1');
  clearTimeout(cliTimer);
  t.match(inspected.out(), /HEIMDALL_ERR_PLUGIN_FORMAT:\n {2}plugin .* is a Go plugin built with -buildmode=plugin/);

  // The c-shared build of the same code still loads.
  t.equal(inspectPlugin(cshared).loadable, true, 'the c-shared build is loadable');
});

t.test('inspect opens a library in a child process: one that hangs in its constructor costs the deadline', async (t) => {
  const source = path.join(DIR, 'hangs.c');
  writeFileSync(source, `#include <unistd.h>
#include "heimdall_plugin.h"
HEIMDALL_PLUGIN_DEFINE_ABI()
HEIMDALL_EXPORT const char *GetName(void) { return "hangs"; }
HEIMDALL_EXPORT void Cleanup(void) {}
__attribute__((constructor)) static void never_returns(void) { for (;;) pause(); }
`);
  const file = path.join(DIR, 'hangs.so');
  await exec('cc', ['-shared', '-fPIC', '-I', path.join(REPO, 'native', 'include'), '-o', file, source]);
  const started = Date.now();
  const report = inspectPlugin(file, { openTimeoutMs: 1500 });
  const ms = Date.now() - started;
  t.equal(report.loadable, false);
  t.same(report.problems.map((p) => p.code), ['HEIMDALL_ERR_PLUGIN_OPEN']);
  t.match(report.problems[0]?.message, /opening it did not complete: it was still running after 1500 ms/);
  t.ok(ms < 6000, `the inspection ended in ${ms} ms`);
});

t.test('a missing-symbol error names the fix for the language detected', async (t) => {
  const c = path.join(DIR, 'no-abi.c');
  writeFileSync(c, 'const char *GetName(void) { return "no-abi"; }\nvoid Cleanup(void) {}\n');
  const cFile = path.join(DIR, 'no-abi-c.so');
  await exec('cc', ['-shared', '-fPIC', '-o', cFile, c]);
  t.throws(() => checkFile(cFile), { code: 'HEIMDALL_ERR_PLUGIN_SYMBOL', message: /heimdall_plugin_abi_version, heimdall_plugin_free\. Export them with C linkage: in C, put HEIMDALL_PLUGIN_DEFINE_ABI\(\)/ });

  t.test('Go', { skip: noGo }, async (t) => {
    const dir = goModule('no-sdk', 'package main\n\nimport "C"\n\n//export GetName\nfunc GetName() *C.char { return nil }\n\nfunc main() {}\n');
    const file = await goBuild(dir, 'c-shared', 'no-sdk.so');
    t.throws(() => checkFile(file), { code: 'HEIMDALL_ERR_PLUGIN_SYMBOL', message: /in Go, build with go build -buildmode=c-shared, register the plugin with heimdall\.Register .* go generate/ });
  });

  t.test('Rust', { skip: noRustc }, async (t) => {
    const src = path.join(DIR, 'no_macro.rs');
    writeFileSync(src, '#[no_mangle]\npub extern "C" fn Cleanup() {}\n');
    const file = path.join(DIR, 'no-macro-rust.so');
    await exec('rustc', ['--crate-type', 'cdylib', '-O', '-o', file, src], { timeout: 120_000 });
    t.throws(() => checkFile(file), { code: 'HEIMDALL_ERR_PLUGIN_SYMBOL', message: /in Rust, invoke heimdall_plugin::export_plugin!\(YourPlugin\)/ });
  });
});

t.test('inspect reports a plugin built for a newer minor ABI version, as the loader warns', async (t) => {
  const source = path.join(DIR, 'newer-minor.c');
  writeFileSync(source, `#include <stdlib.h>
#include <stdint.h>
__attribute__((visibility("default"))) uint32_t heimdall_plugin_abi_version(void) { return (1u << 16) | 99u; }
__attribute__((visibility("default"))) void heimdall_plugin_free(void *p, size_t n) { (void)n; free(p); }
__attribute__((visibility("default"))) const char *GetName(void) { return "newer-minor"; }
__attribute__((visibility("default"))) void Cleanup(void) {}
`);
  const file = path.join(DIR, 'newer-minor.so');
  await exec('cc', ['-shared', '-fPIC', '-o', file, source]);
  const report = inspectPlugin(file);
  t.equal(report.loadable, true);
  t.equal(report.abi_version, '1.99');
  t.match(report.warnings, [/built for ABI 1\.99, newer than this gateway's 1\.\d+; exports this gateway does not know are not called/]);
  t.ok(existsSync(file));
});
