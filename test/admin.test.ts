/**
 * The admin API: off by default, token-protected, loopback-bound, confined to the plugin directories, and never
 * showing secrets; and every plugin operation it offers.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { probePlugins, versionedBuilds } from './helpers/fixtures.js';
import { chat, postJson, startGateway } from './helpers/gateway.js';

const probes = await probePlugins();
const builds = await versionedBuilds();
const TOKEN = 'admin-token-for-tests-0123456789abcdef';
process.env.HEIMDALL_TEST_ADMIN_TOKEN = TOKEN;

/** A plugin directory with copies of the test plugins, and a config that enables the admin API on it. */
function setup() {
  const root = mkdtempSync(path.join(tmpdir(), 'heimdall-admin-'));
  const dir = path.join(root, 'plugins');
  mkdirSync(dir);
  for (const name of ['p1', 'p2', 'p3'] as const) copyFileSync(probes[name], path.join(dir, `${name}.so`));
  copyFileSync(builds.A, path.join(dir, 'versioned.so'));
  const admin = { enabled: true, token: 'env.HEIMDALL_TEST_ADMIN_TOKEN', plugin_dirs: [dir] };
  return { root, dir, admin };
}

async function api(base: string | undefined, method: string, url: string, body?: unknown, token: string | null = TOKEN) {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${url}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

t.test('the admin API is off unless configured', async (t) => {
  const gw = await startGateway(t, { providers: { mock: {} } });
  t.equal(gw.adminUrl, undefined);
  t.equal(gw.gateway.admin, undefined);
  const res = await fetch(`${gw.url}/api/plugins`);
  t.equal(res.status, 404, 'and the public port has no admin routes');
  await t.rejects(startGateway(t, { providers: { mock: {} }, admin: { enabled: true } }), {
    code: 'HEIMDALL_ERR_CONFIG',
    message: /admin\.token/,
  });
});

t.test('it binds to loopback and requires the bearer token', async (t) => {
  const { admin } = setup();
  const gw = await startGateway(t, { providers: { mock: {} }, admin });
  t.match(gw.adminUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
  const missing = await api(gw.adminUrl, 'GET', '/api/plugins', undefined, null);
  t.equal(missing.status, 401);
  t.equal(missing.json.error.code, 'HEIMDALL_ERR_ADMIN_AUTH');
  const wrong = await api(gw.adminUrl, 'GET', '/api/plugins', undefined, 'admin-token-for-tests-0123456789abcdeg');
  t.equal(wrong.status, 401);
  const short = await api(gw.adminUrl, 'GET', '/api/plugins', undefined, 'x');
  t.equal(short.status, 401);
  const load = await api(gw.adminUrl, 'POST', '/api/plugins', { path: probes.p1 }, null);
  t.equal(load.status, 401, 'nothing is loaded without the token');
  t.equal(gw.gateway.plugins.active.length, 0);
  t.equal((await api(gw.adminUrl, 'GET', '/api/plugins')).status, 200);
  t.notMatch(JSON.stringify(gw.logs), new RegExp(TOKEN), 'the token is never logged');
});

t.test('plugin paths must resolve inside the plugin directories', async (t) => {
  const { root, dir, admin } = setup();
  const gw = await startGateway(t, { providers: { mock: {} }, admin });
  const outside = path.join(root, 'outside.so');
  copyFileSync(probes.p1, outside);
  const link = path.join(dir, 'sneaky.so');
  symlinkSync(outside, link);
  for (const [what, p] of [
    ['a path outside', outside],
    ['a symlink escaping', link],
    ['path traversal', path.join(dir, '..', 'outside.so')],
    ['a relative traversal', `${path.relative(root, dir)}/../outside.so`],
  ] as const) {
    const res = await api(gw.adminUrl, 'POST', '/api/plugins', { path: p });
    t.equal(res.status, 403, what);
    t.equal(res.json.error.code, 'HEIMDALL_ERR_ADMIN_PATH', what);
  }
  t.equal(gw.gateway.plugins.active.length, 0, 'none of them was loaded');
  const ok = await api(gw.adminUrl, 'POST', '/api/plugins', { path: path.join(dir, 'p1.so') });
  t.equal(ok.status, 201);
  t.equal(ok.json.status, 'active');
});

t.test('list, load, configure, reload, disable, enable, reorder, unload, delete', async (t) => {
  const { dir, admin, root } = setup();
  const trace = path.join(root, 'trace.jsonl');
  process.env.HEIMDALL_TEST_PLUGIN_TOKEN = 'plugin-secret-value';
  const gw = await startGateway(t, {
    providers: { mock: {} },
    admin,
    plugins: [{ path: path.join(dir, 'p1.so'), config: { trace, api_key: 'literal-secret-value', token: 'env.HEIMDALL_TEST_PLUGIN_TOKEN' } }],
  });
  const base = gw.adminUrl;

  const listed = await api(base, 'GET', '/api/plugins');
  t.equal(listed.status, 200);
  const p1 = listed.json.plugins[0];
  t.match(p1, { name: 'p1', status: 'active', language: 'c', abi_version: '1.2', sha256: /^[0-9a-f]{64}$/, instances_kept: 0, last_errors: [] });
  t.ok(Date.parse(p1.loaded_at) > 0, 'load time');
  t.equal(p1.config.api_key, '[redacted]', 'literal secrets are redacted');
  t.equal(p1.config.token, 'env.HEIMDALL_TEST_PLUGIN_TOKEN', 'env references are shown as written');
  t.notMatch(JSON.stringify(listed.json), /literal-secret-value|plugin-secret-value/);

  const added = await api(base, 'POST', '/api/plugins', { path: path.join(dir, 'p2.so'), config: { trace }, position: 0 });
  t.equal(added.status, 201);
  t.same(gw.gateway.plugins.active.map((p) => p.info.name), ['p2', 'p1'], 'inserted at the position asked');
  const dup = await api(base, 'POST', '/api/plugins', { path: path.join(dir, 'p2.so') });
  t.equal(dup.status, 409);
  const bad = await api(base, 'POST', '/api/plugins', { path: path.join(dir, 'p3.so'), bogus: 1 });
  t.equal(bad.status, 400);
  t.equal(bad.json.error.code, 'HEIMDALL_ERR_ADMIN_BAD_REQUEST');

  const configured = await api(base, 'PUT', '/api/plugins/p1/config', { config: { trace, mode: 'two' } });
  t.equal(configured.status, 200);
  const inits = readFileSync(trace, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.plugin === 'p1' && l.hook === 'init');
  t.same(inits.at(-1).config, { trace, mode: 'two' }, 'Init ran again with the new config');

  const failedConfig = await api(base, 'PUT', '/api/plugins/p1/config', { config: { trace, init_status: '1', init_output: 'nope' } });
  t.equal(failedConfig.status, 422);
  t.equal(failedConfig.json.error.code, 'HEIMDALL_ERR_PLUGIN_INIT');
  t.equal((await api(base, 'GET', '/api/plugins/p1')).json.status, 'active', 'the previous instance still serves');
  t.same((await api(base, 'GET', '/api/plugins/p1')).json.config, { trace, mode: 'two' }, 'with the previous config');

  t.equal((await api(base, 'POST', '/api/plugins/p1/reload')).status, 200);
  t.equal((await api(base, 'POST', '/api/plugins/p2/disable')).json.status, 'disabled');
  t.same(gw.gateway.plugins.active.map((p) => p.info.name), ['p1']);
  t.equal((await postJson(`${gw.url}/v1/chat/completions`, chat())).status, 200);
  t.equal((await api(base, 'POST', '/api/plugins/p2/enable')).json.status, 'active');
  const reordered = await api(base, 'PUT', '/api/plugins/order', { order: ['p1', 'p2'] });
  t.same(reordered.json.plugins.map((p: { name: string }) => p.name), ['p1', 'p2']);
  t.same(gw.gateway.plugins.active.map((p) => p.info.name), ['p1', 'p2']);
  t.equal((await api(base, 'PUT', '/api/plugins/order', { order: ['p1'] })).status, 409, 'an order must name every plugin');

  t.equal((await api(base, 'POST', '/api/plugins/p2/unload')).json.status, 'unloaded');
  t.same(gw.gateway.plugins.active.map((p) => p.info.name), ['p1']);
  t.equal((await api(base, 'DELETE', '/api/plugins/p2')).status, 204);
  t.same((await api(base, 'GET', '/api/plugins')).json.plugins.map((p: { name: string }) => p.name), ['p1']);
  const unknown = await api(base, 'POST', '/api/plugins/nope/reload');
  t.equal(unknown.status, 404);
  t.equal(unknown.json.error.code, 'HEIMDALL_ERR_ADMIN_PLUGIN_UNKNOWN');
});

t.test('changes can be saved back to config.json', async (t) => {
  const { root, dir, admin } = setup();
  const file = path.join(root, 'config.json');
  const raw = {
    providers: { mock: {} },
    admin: { ...admin, persist: true, allowed_env: ['HEIMDALL_TEST_SOME_KEY', 'HEIMDALL_TEST_UNSET'] },
    plugins: [{ path: 'plugins/p1.so' }],
  };
  writeFileSync(file, JSON.stringify(raw));
  const gw = await startGateway(t, raw, root, file);
  const unset = await api(gw.adminUrl, 'POST', '/api/plugins', { path: 'plugins/p2.so', config: { key: 'env.HEIMDALL_TEST_UNSET' } });
  t.equal(unset.status, 422, 'a config naming an unset variable is refused');
  t.equal(unset.json.error.code, 'HEIMDALL_ERR_CONFIG_ENV');
  process.env.HEIMDALL_TEST_SOME_KEY = 'k';
  t.equal((await api(gw.adminUrl, 'POST', '/api/plugins', { path: 'plugins/p2.so', config: { key: 'env.HEIMDALL_TEST_SOME_KEY' } })).status, 201);
  await api(gw.adminUrl, 'POST', '/api/plugins/p1/disable');
  const saved = JSON.parse(readFileSync(file, 'utf8'));
  t.match(saved.plugins, [{ path: 'plugins/p1.so', enabled: false }, { path: 'plugins/p2.so', config: { key: 'env.HEIMDALL_TEST_SOME_KEY' } }]);
  t.same(saved.providers, { mock: {} }, 'the rest of the file is kept');
});

t.test('configs sent through the API may name only the allowed environment variables', async (t) => {
  const { dir, admin } = setup();
  process.env.HEIMDALL_TEST_PROVIDER_KEY = 'sk-provider-secret';
  const gw = await startGateway(t, { providers: { mock: {} }, admin: { ...admin, allowed_env: ['HEIMDALL_TEST_OK'] } });
  const refused = await api(gw.adminUrl, 'POST', '/api/plugins', { path: path.join(dir, 'p1.so'), config: { leak: 'env.HEIMDALL_TEST_PROVIDER_KEY' } });
  t.equal(refused.status, 400);
  t.match(refused.json.error.message, /HEIMDALL_TEST_PROVIDER_KEY, which admin.allowed_env does not list/);
  t.equal(gw.gateway.plugins.active.length, 0, 'nothing was loaded');
  process.env.HEIMDALL_TEST_OK = 'fine';
  t.equal((await api(gw.adminUrl, 'POST', '/api/plugins', { path: path.join(dir, 'p1.so'), config: { ok: 'env.HEIMDALL_TEST_OK' } })).status, 201);
  const sneaky = await api(gw.adminUrl, 'PUT', '/api/plugins/p1/config', { config: { nested: ['env.HEIMDALL_TEST_PROVIDER_KEY'] } });
  t.equal(sneaky.status, 400, 'also on config updates, wherever the reference sits');
});

t.test('a disabled plugin stays disabled: reload is refused, and it leaves the watch list', async (t) => {
  const { dir, admin } = setup();
  const gw = await startGateway(t, { providers: { mock: {} }, admin, plugins: [{ path: path.join(dir, 'p1.so'), watch: true }] });
  t.same(gw.gateway.plugins.watched().map((w) => w.name), ['p1']);
  t.equal((await api(gw.adminUrl, 'POST', '/api/plugins/p1/disable')).json.status, 'disabled');
  const reload = await api(gw.adminUrl, 'POST', '/api/plugins/p1/reload');
  t.equal(reload.status, 409);
  t.match(reload.json.error.message, /disabled; enable it instead/);
  t.equal(gw.gateway.plugins.active.length, 0);
  t.same(gw.gateway.plugins.watched(), [], 'a rebuild will not bring it back');
  const configured = await api(gw.adminUrl, 'PUT', '/api/plugins/p1/config', { config: { x: '1' } });
  t.equal(configured.json.status, 'disabled', 'a config change is stored, not loaded');
  t.equal((await api(gw.adminUrl, 'POST', '/api/plugins/p1/enable')).json.status, 'active');
  t.equal(gw.gateway.plugins.active.length, 1);
});
