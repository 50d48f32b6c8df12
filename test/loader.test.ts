/**
 * Loading plugins: every refusal is a catalogued error that names the file, the cause and the fix, and no plugin
 * code runs before the file is known to fit this host.
 */
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { parseConfig } from '../src/config/load.js';
import { HeimdallError } from '../src/errors.js';
import { createLogger } from '../src/logger.js';
import { loadPlugin, resolvePluginPath } from '../src/plugins/loader.js';
import { createGateway } from '../src/server/app.js';
import { binaryFixtures, probePlugins } from './helpers/fixtures.js';
import { chat, postJson, startGateway } from './helpers/gateway.js';

const probes = await probePlugins();
const bins = await binaryFixtures();

async function refusal(file: string, config: Record<string, unknown> = {}): Promise<HeimdallError> {
  try {
    await (await loadPlugin(file, { config })).close();
  } catch (err) {
    if (err instanceof HeimdallError) return err;
    throw err;
  }
  throw new Error(`expected ${file} to be refused`);
}

t.test('a plugin built for another architecture is refused before dlopen, naming both sides', async (t) => {
  const arm = await refusal(bins.armPatched);
  t.equal(arm.code, 'HEIMDALL_ERR_PLUGIN_ARCH');
  t.match(arm.message, `plugin ${bins.armPatched} is built for linux/arm64 (aarch64`);
  t.match(arm.message, /this gateway runs on linux\/x64/);
  t.match(arm.message, /Build the plugin on/);

  const patched = await refusal(bins.machinePatched);
  t.equal(patched.code, 'HEIMDALL_ERR_PLUGIN_ARCH');
  t.match(patched.message, /riscv64/);
});

t.test('files that are not shared objects for this platform are refused with what they are', async (t) => {
  const macho = await refusal(bins.machoX64);
  t.equal(macho.code, 'HEIMDALL_ERR_PLUGIN_FORMAT');
  t.match(macho.message, /Mach-O/);
  t.match(macho.message, /ELF/, 'names what is needed');

  const fat = await refusal(bins.fat);
  t.equal(fat.code, 'HEIMDALL_ERR_PLUGIN_FORMAT');

  const text = await refusal(bins.text);
  t.equal(text.code, 'HEIMDALL_ERR_PLUGIN_FORMAT');
  t.match(text.message, /text/);

  const exe = await refusal(bins.executable);
  t.equal(exe.code, 'HEIMDALL_ERR_PLUGIN_FORMAT');
  t.match(exe.message, /executable/);

  const empty = await refusal(bins.empty);
  t.equal(empty.code, 'HEIMDALL_ERR_PLUGIN_FORMAT');

  const missing = await refusal(path.join(bins.dir, 'no-such-plugin.so'));
  t.equal(missing.code, 'HEIMDALL_ERR_PLUGIN_NOT_FOUND');
  t.match(missing.message, /ENOENT/);
});

t.test('missing required symbols are all named', async (t) => {
  const e = await refusal(probes.nocleanup);
  t.equal(e.code, 'HEIMDALL_ERR_PLUGIN_SYMBOL');
  t.match(e.message, /does not export the required symbols GetName, Cleanup/);
});

t.test('the ABI version is checked first, naming both versions', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-abi-'));
  const trace = path.join(dir, 'trace.jsonl');
  const e = await refusal(probes.abi2, { trace });
  t.equal(e.code, 'HEIMDALL_ERR_PLUGIN_ABI');
  t.match(e.message, /gateway speaks ABI 1\.2, plugin was built for ABI 2\.0/);
  t.throws(() => readFileSync(trace), 'Init never ran');

  const warnings: string[] = [];
  const newer = await loadPlugin(probes.abi_minor, { config: {}, warn: (m) => warnings.push(m) });
  t.equal(newer.info.abiVersion, '1.99', 'a newer minor version loads');
  t.match(warnings, [/built for ABI 1\.99, newer than this gateway's 1\.2/]);
  newer.close();
});

t.test('Init receives the config as JSON; a failing Init fails the load with the plugin\'s own message', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-init-'));
  const trace = path.join(dir, 'trace.jsonl');
  const plugin = await loadPlugin(probes.p1, { config: { trace, extra: 'value' } });
  t.same(plugin.info, {
    name: 'p1', file: probes.p1, abiVersion: '1.2', language: 'c',
    hooks: { transport: true, pre: true, post: true, chunk: true }, mode: 'inline', concurrency: 1,
  });
  plugin.close();
  const lines = readFileSync(trace, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.same(lines[0], { plugin: 'p1', hook: 'init', config: { trace, extra: 'value' } });

  const e = await refusal(probes.p1, { init_status: '2', init_output: 'missing "api_url"' });
  t.equal(e.code, 'HEIMDALL_ERR_PLUGIN_INIT');
  t.match(e.message, /plugin p1 \(.*\) refused to start: Init failed: missing "api_url"/);
});

t.test('a plugin without optional hooks loads, and requests skip it', async (t) => {
  const gw = await startGateway(t, { providers: { mock: {} }, plugins: [{ path: probes.bare }] });
  t.same(gw.gateway.plugins.active[0]?.info.hooks, { transport: false, pre: false, post: false, chunk: false });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat());
  t.equal(res.status, 200);
});

t.test('config rules at start-up: optional, disabled, unique names, env references, paths', async (t) => {
  await t.test('a failing plugin stops the start unless it is optional', async (t) => {
    await t.rejects(
      startGateway(t, { providers: { mock: {} }, plugins: [{ path: probes.p1 }, { path: bins.armPatched }] }),
      { code: 'HEIMDALL_ERR_PLUGIN_ARCH' },
    );
    const gw = await startGateway(t, {
      providers: { mock: {} },
      plugins: [{ path: probes.p1 }, { path: bins.armPatched, optional: true }, { path: probes.p2, enabled: false }],
    });
    t.same(gw.gateway.plugins.active.map((p) => p.info.name), ['p1']);
    const health = await (await fetch(`${gw.url}/health`)).json();
    t.same(health.plugins, [
      { name: 'p1', status: 'active', language: 'c', abi_version: '1.2', hooks: ['transport', 'pre', 'post', 'chunk'], mode: 'inline' },
      { name: 'plugin-x64-patched-to-arm64', status: 'error' },
      { name: 'p2', status: 'disabled' },
    ], 'the public health check shows names and states only');
    t.match(gw.gateway.plugins.status(), [
      { name: 'p1', status: 'active', sha256: /^[0-9a-f]{64}$/ },
      { name: 'plugin-x64-patched-to-arm64', status: 'error', last_errors: [{ code: 'HEIMDALL_ERR_PLUGIN_ARCH' }] },
      { name: 'p2', status: 'disabled', file: probes.p2 },
    ]);
    t.ok(gw.logs.some((l) => l.level === 50 && /optional plugin left out/.test(l.msg)));
    t.equal((await postJson(`${gw.url}/v1/chat/completions`, chat())).status, 200);
  });

  await t.test('a configured file that does not exist stops the start with PLUGIN_NOT_FOUND', async (t) => {
    await t.rejects(startGateway(t, { providers: { mock: {} }, plugins: [{ path: '/nonexistent/dir/plugin.so' }] }), {
      code: 'HEIMDALL_ERR_PLUGIN_NOT_FOUND',
      message: /\/nonexistent\/dir\/plugin\.so: cannot read the file \(ENOENT\)/,
    });
  });

  await t.test('two plugins with one name are refused, before the second one\'s Init', async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-dup-'));
    const copy = path.join(dir, 'p1-copy.so');
    const trace = path.join(dir, 'trace.jsonl');
    copyFileSync(probes.p1, copy);
    await t.rejects(startGateway(t, { providers: { mock: {} }, plugins: [{ path: probes.p1 }, { path: copy }] }), {
      code: 'HEIMDALL_ERR_PLUGIN_NAME',
      message: /already registered as "p1"/,
    });
    const gw = await startGateway(t, {
      providers: { mock: {} },
      plugins: [{ path: probes.p1, config: { trace } }, { path: copy, optional: true, config: { trace } }],
    });
    t.same(gw.gateway.plugins.active.map((p) => p.info.file), [probes.p1]);
    t.equal(readFileSync(trace, 'utf8').trim().split('\n').length, 1, 'only the first Init ran');
  });

  await t.test('the same file listed twice is refused, and the first instance keeps its state', async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-twice-'));
    const trace = path.join(dir, 'trace.jsonl');
    const gw = await startGateway(t, {
      providers: { mock: {} },
      plugins: [{ path: probes.p1, config: { trace } }, { path: probes.p1, optional: true, config: {} }],
    });
    t.match(gw.gateway.plugins.status()[1], { status: 'error', last_errors: [{ code: 'HEIMDALL_ERR_PLUGIN_NAME', message: /already loaded as plugin "p1"/ }] });
    await postJson(`${gw.url}/v1/chat/completions`, chat());
    t.ok(readFileSync(trace, 'utf8').includes('"hook":"pre"'), 'the first instance still traces: its config was not replaced');
  });

  await t.test('env references in plugin config are resolved for Init, and never shown', async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-env-'));
    const trace = path.join(dir, 'trace.jsonl');
    process.env.HEIMDALL_TEST_PLUGIN_SECRET = 's3cr3t-value';
    t.teardown(() => delete process.env.HEIMDALL_TEST_PLUGIN_SECRET);
    const gw = await startGateway(t, {
      providers: { mock: {} },
      plugins: [{ path: probes.p1, config: { trace, token: 'env.HEIMDALL_TEST_PLUGIN_SECRET' } }],
    });
    const init = JSON.parse(readFileSync(trace, 'utf8').split('\n')[0] ?? '{}');
    t.equal(init.config.token, 's3cr3t-value');
    const health = await (await fetch(`${gw.url}/health`)).text();
    t.notMatch(health, /s3cr3t-value/);
    t.notMatch(JSON.stringify(gw.logs), /s3cr3t-value/);
    await t.rejects(
      startGateway(t, { providers: { mock: {} }, plugins: [{ path: probes.p2, config: { token: 'env.HEIMDALL_UNSET_VAR' } }] }),
      { code: 'HEIMDALL_ERR_CONFIG_ENV', message: /plugins\[0\]\.config\.token refers to environment variable HEIMDALL_UNSET_VAR/ },
    );
  });

  await t.test('relative paths resolve against the config directory; the extension may be left out', async (t) => {
    const dir = path.dirname(probes.p1);
    t.equal(resolvePluginPath('p1', dir), probes.p1);
    t.equal(resolvePluginPath('./p1.so', dir), probes.p1);
    const gw = await startGateway(t, { providers: { mock: {} }, plugins: [{ path: 'p1' }] }, dir);
    t.same(gw.gateway.plugins.active.map((p) => p.info.file), [probes.p1]);
  });
});

t.test('a gateway that cannot listen (port taken) cleans up its plugins instead of leaving them running', async (t) => {
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => busy.close());
  const port = (busy.address() as { port: number }).port;
  const config = parseConfig({ log: { level: 'silent' }, providers: { mock: {} }, plugins: [{ path: probes.p1 }] }, 'test config');
  const gateway = await createGateway({ config, file: '', baseDir: process.cwd() }, { logger: createLogger('silent') });
  t.equal(gateway.plugins.active.length, 1, 'the plugin is loaded before listening');
  await t.rejects(gateway.listen('127.0.0.1', port), { code: 'EADDRINUSE' });
  t.equal(gateway.plugins.active.length, 0, 'and cleaned up when listening failed');
});
