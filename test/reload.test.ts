/**
 * Reloading plugin code without a restart: under continuous traffic no request fails or sees two versions, a
 * failed reload leaves the old code serving, load/unload cycles leave nothing behind, and a watched file reloads
 * itself when it changes.
 */
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { pluginSchema } from '../src/config/schema.js';
import { probePlugins, versionedBuilds } from './helpers/fixtures.js';
import { waitFor } from './helpers/cli.js';
import { chat, postJson, startGateway } from './helpers/gateway.js';

const builds = await versionedBuilds();
const probes = await probePlugins();

/** A plugin file that a test "rebuilds" by renaming another build over it, as a build tool would. */
function workspace() {
  const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-reload-'));
  const file = path.join(dir, 'versioned.so');
  copyFileSync(builds.A, file);
  const install = (v: 'A' | 'B') => {
    const tmp = `${file}.tmp`;
    copyFileSync(builds[v], tmp);
    renameSync(tmp, file);
  };
  return { dir, file, install };
}

const versionOf = (content: string) => /^pre=(\w) post=(\w)$/.exec(content)?.slice(1) ?? [];

t.test('20+ reloads alternating two builds during 5,000+ requests: none fails, each sees one version', async (t) => {
  const ws = workspace();
  // The provider takes 2 ms, so reloads land while requests sit between their PreHook and their PostHook: the lease
  // is what keeps the old instance alive for them (without it, PostHook would call code already unloaded).
  const gw = await startGateway(t, { log: { level: 'warn' }, providers: { mock: { latency_ms: 2 } }, plugins: [{ path: ws.file }] });
  const url = `${gw.url}/v1/chat/completions`;
  const seen = { A: 0, B: 0 };
  let failed = 0;
  let mixed = 0;
  let sent = 0;
  let stop = false;
  let reloads = 0;
  let straddled = 0;
  const TARGET = 5000;
  const clients = Array.from({ length: 8 }, async () => {
    while (!stop || sent < TARGET) {
      sent++;
      const before = reloads;
      const res = await postJson(url, chat('mock/echo', 'which version?'));
      if (reloads !== before) straddled++;
      if (res.status !== 200) {
        failed++;
        continue;
      }
      const [pre, post] = versionOf(res.json.choices[0].message.content);
      if (pre !== post || (pre !== 'A' && pre !== 'B')) mixed++;
      else seen[pre as 'A' | 'B']++;
    }
  });
  // Spread the reloads over the traffic: one every 200 requests.
  let version: 'A' | 'B' = 'A';
  while (reloads < 24) {
    await waitFor(() => sent >= (reloads + 1) * 200, 'traffic', 30_000);
    version = version === 'A' ? 'B' : 'A';
    ws.install(version);
    await gw.gateway.plugins.reload('versioned');
    reloads++;
  }
  stop = true;
  await Promise.all(clients);
  t.ok(sent >= TARGET, `${sent} requests`);
  t.equal(reloads, 24);
  t.ok(straddled >= 24, `${straddled} requests were in flight across a reload`);
  t.equal(failed, 0, 'no request failed');
  t.equal(mixed, 0, 'no request saw two versions (or none)');
  t.ok(seen.A > 0 && seen.B > 0, `both versions served (A: ${seen.A}, B: ${seen.B})`);
  t.same(gw.logs.filter((l) => l.level >= 40), [], 'no plugin failure: no instance was called after its Cleanup');
  const status = gw.gateway.plugins.status()[0];
  t.equal(status?.language, 'c');
  t.equal(status?.instances_kept, 0, 'C instances are really unloaded');
});

t.test('a reload that fails any check leaves the old version serving and reports the error', async (t) => {
  const ws = workspace();
  const gw = await startGateway(t, { providers: { mock: {} }, plugins: [{ path: ws.file }] });
  const url = `${gw.url}/v1/chat/completions`;
  const before = gw.gateway.plugins.status()[0]?.sha256;

  writeFileSync(ws.file, 'not a shared object');
  await t.rejects(gw.gateway.plugins.reload('versioned'), { code: 'HEIMDALL_ERR_PLUGIN_FORMAT' });
  copyFileSync(probes.nocleanup, ws.file);
  await t.rejects(gw.gateway.plugins.reload('versioned'), { code: 'HEIMDALL_ERR_PLUGIN_SYMBOL' });
  copyFileSync(probes.p1, ws.file);
  await t.rejects(gw.gateway.plugins.reload('versioned'), { code: 'HEIMDALL_ERR_PLUGIN_NAME', message: /named "p1", not "versioned"/ });
  ws.install('B');
  await t.rejects(gw.gateway.plugins.configure('versioned', { fail: true }), { code: 'HEIMDALL_ERR_PLUGIN_INIT' });

  const res = await postJson(url, chat());
  t.equal(res.json.choices[0].message.content, 'pre=A post=A', 'version A still serves');
  const status = gw.gateway.plugins.status()[0];
  t.equal(status?.status, 'active');
  t.equal(status?.sha256, before);
  t.same(status?.last_errors.map((e) => e.code), [
    'HEIMDALL_ERR_PLUGIN_FORMAT', 'HEIMDALL_ERR_PLUGIN_SYMBOL', 'HEIMDALL_ERR_PLUGIN_NAME', 'HEIMDALL_ERR_PLUGIN_INIT',
  ]);
  await gw.gateway.plugins.reload('versioned');
  t.equal((await postJson(url, chat())).json.choices[0].message.content, 'pre=B post=B', 'a good reload then succeeds');
  t.not(gw.gateway.plugins.status()[0]?.sha256, before);
});

t.test('200 load/unload cycles of a C plugin leave no file descriptors, mappings or memory behind', { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
  const ws = workspace();
  const gw = await startGateway(t, { log: { level: 'warn' }, providers: { mock: {} } });
  const registry = gw.gateway.plugins;
  const fds = () => readdirSync('/proc/self/fd').length;
  const mapped = () => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => /heimdall-(reload|plugins)-/.test(l)).length;
  const rss = () => {
    (globalThis as { gc?: () => void }).gc?.();
    return process.memoryUsage().rss;
  };
  const cycle = async () => {
    await registry.add(pluginSchema.parse({ path: ws.file }), ws.dir);
    await registry.reload('versioned'); // a staged copy too
    await registry.remove('versioned');
  };
  for (let i = 0; i < 10; i++) await cycle(); // warm-up
  const base = { fds: fds(), mapped: mapped(), rss: rss() };
  for (let i = 0; i < 200; i++) await cycle();
  t.equal(fds(), base.fds, 'open file descriptors back to baseline');
  t.equal(mapped(), 0, 'no plugin library or staged copy is still mapped');
  const grown = rss() - base.rss;
  t.ok(grown < 16 * 1024 * 1024, `RSS grew ${(grown / 1024 / 1024).toFixed(1)} MiB over 200 cycles (bound: 16 MiB)`);
  t.equal(registry.status().length, 0);
});

t.test('watch: true reloads the plugin when its file changes', async (t) => {
  const ws = workspace();
  const gw = await startGateway(t, { providers: { mock: {} }, plugins: [{ path: ws.file, watch: true }] });
  const url = `${gw.url}/v1/chat/completions`;
  t.equal((await postJson(url, chat())).json.choices[0].message.content, 'pre=A post=A');
  ws.install('B');
  await waitFor(() => gw.logs.some((l) => l.msg === 'plugin reloaded'), 'the watched reload', 10_000);
  t.equal((await postJson(url, chat())).json.choices[0].message.content, 'pre=B post=B');
  t.equal(gw.logs.filter((l) => l.msg === 'plugin reloaded').length, 1, 'one reload for one build (debounced)');
});

t.test('closeAll lets a run that still holds a plugin finish with it before cleaning it up', async (t) => {
  const { PluginRegistry } = await import('../src/plugins/registry.js');
  const { createLogger } = await import('../src/logger.js');
  const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-closeall-'));
  const trace = path.join(dir, 'trace.jsonl');
  const registry = new PluginRegistry(createLogger('silent'));
  await registry.loadAll([pluginSchema.parse({ path: probes.p1, config: { trace } })], dir);
  const cleanups = () => readFileSync(trace, 'utf8').split('\n').filter((l) => l.includes('"cleanup"')).length;

  const lease = registry.acquire();
  const closing = registry.closeAll();
  await new Promise((r) => setTimeout(r, 100));
  t.equal(cleanups(), 0, 'not cleaned up while a run holds it');
  await lease.plugins[0]?.preHook(Buffer.from('{}'), Buffer.from('{"messages":[]}'));
  t.ok(readFileSync(trace, 'utf8').includes('"hook":"pre"'), 'the run can still call it');
  const started = Date.now();
  lease.release();
  await closing;
  t.equal(cleanups(), 1, 'cleaned up once the run let go');
  t.ok(Date.now() - started < 1000, 'at once, not at the bound');
});
