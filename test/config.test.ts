/**
 * config.json: zod validation with errors that name the JSON path, defaults, and env references.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { loadConfigFile, parseConfig, resolveEnvRefs } from '../src/config/load.js';
import { HeimdallError } from '../src/errors.js';
import { ProviderRegistry } from '../src/providers/registry.js';

function configError(raw: unknown): HeimdallError {
  try {
    parseConfig(raw, 'config.json');
  } catch (err) {
    if (err instanceof HeimdallError) return err;
    throw err;
  }
  throw new Error('expected the config to be refused');
}

t.test('the shipped config.json is valid and works offline', async (t) => {
  const loaded = loadConfigFile(path.join(import.meta.dirname, '..', 'config.json'));
  t.ok(loaded.config.providers.mock, 'it has the mock provider');
  t.equal(loaded.config.providers.mock?.type, 'mock');
  t.equal(loaded.config.server.host, '127.0.0.1', 'it listens on loopback by default');
});

t.test('defaults are filled in', async (t) => {
  const config = parseConfig({ providers: { openai: {}, mock: {} } });
  t.same(config.server, {
    host: '127.0.0.1', port: 8080, body_limit: 4 * 1024 * 1024, plugin_threads: 16, headers_timeout_ms: 10_000,
    request_timeout_ms: 30_000, keep_alive_timeout_ms: 5_000, max_connections: 4096, shutdown_timeout_ms: 10_000,
  });
  t.equal(config.log.level, 'info');
  t.same(config.plugins, []);
  t.equal(config.providers.openai?.type, 'openai', 'a provider named after a built-in type gets that type');
  t.match(config.providers.openai, { base_url: 'https://api.openai.com/v1', timeout_ms: 60000 });
});

t.test('every error names the JSON path and what was expected', async (t) => {
  const e1 = configError({ providers: { groq: { type: 'openai', base_url: 'not a url' } } });
  t.equal(e1.code, 'HEIMDALL_ERR_CONFIG');
  t.match(e1.message, /providers\.groq\.base_url/);

  const e2 = configError({ providers: { mock: { type: 'mock' } }, plugins: [{ path: 'x.so', optional: 'yes' }] });
  t.match(e2.message, /plugins\[0\]\.optional: .*boolean/i);

  const e3 = configError({ providers: { mock: { type: 'mock' } }, server: { port: 70000 } });
  t.match(e3.message, /server\.port/);

  const e4 = configError({ providers: { x: { type: 'nope' } } });
  t.match(e4.message, /providers\.x\.type/);

  const e5 = configError({ providers: { mock: { type: 'mock' } }, unknown_key: 1 });
  t.match(e5.message, /unknown_key/);

  const e6 = configError({});
  t.match(e6.message, /providers/);
});

t.test('secrets must be env references', async (t) => {
  const e = configError({ providers: { openai: { api_key: 'sk-live-abcdef' } } });
  t.match(e.message, /providers\.openai\.api_key: must be an environment reference/);
  t.notMatch(e.message, /sk-live-abcdef/, 'the refused secret is not echoed back');
});

t.test('env references resolve at load, and a missing variable is named', async (t) => {
  t.same(resolveEnvRefs({ a: 'env.X', b: ['env.Y', 'plain'], c: { d: 'env.X' } }, 'cfg', { X: '1', Y: '2' }), {
    a: '1', b: ['2', 'plain'], c: { d: '1' },
  });
  t.throws(() => resolveEnvRefs({ key: 'env.NOT_SET' }, 'providers.openai', {}), {
    code: 'HEIMDALL_ERR_CONFIG_ENV',
    message: /providers\.openai\.key refers to environment variable NOT_SET/,
  });
});

t.test('a provider whose env reference is unset is unavailable, and says why; the others work', async (t) => {
  const config = parseConfig({ providers: { openai: { api_key: 'env.HEIMDALL_MISSING_KEY', models: ['gpt-4o'] }, mock: {} } });
  const warnings: string[] = [];
  const registry = new ProviderRegistry(config.providers, {}, (m) => warnings.push(m));
  t.match(warnings, [/provider openai is unavailable: .*HEIMDALL_MISSING_KEY, which is not set/]);
  const { provider } = registry.resolve('openai/gpt-4o');
  await t.rejects(provider.chat({} as never), { code: 'HEIMDALL_ERR_PROVIDER_UNAVAILABLE', statusCode: 503 });
  t.equal(registry.resolve('mock/anything').provider.name, 'mock');
});

t.test('a config file that cannot be read or parsed says so', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-config-'));
  t.throws(() => loadConfigFile(path.join(dir, 'missing.json')), { code: 'HEIMDALL_ERR_CONFIG_READ', message: /ENOENT/ });
  const bad = path.join(dir, 'bad.json');
  writeFileSync(bad, '{ "providers": ');
  t.throws(() => loadConfigFile(bad), { code: 'HEIMDALL_ERR_CONFIG_READ', message: /not valid JSON/ });
});

t.test('docs/errors.md lists every code in the catalogue, and no other', async (t) => {
  const { Errors } = await import('../src/errors.js');
  const doc = (await import('node:fs')).readFileSync(path.join(import.meta.dirname, '..', 'docs', 'errors.md'), 'utf8');
  const documented = new Set(doc.match(/HEIMDALL_ERR_[A-Z_]+/g));
  const codes = new Set(Object.values(Errors).map((e) => e.code));
  t.same([...codes].filter((c) => !documented.has(c)), [], 'every code is documented');
  t.same([...documented].filter((c) => !codes.has(c)), [], 'no stale code is documented');
});
