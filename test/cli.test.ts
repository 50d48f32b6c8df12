/**
 * The heimdall command as a user runs it: start on a config, serve, and on SIGTERM clean up every plugin in
 * reverse load order before exiting. Also: a plugin that can't load stops the start with a clear message.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { runCli } from './helpers/cli.js';
import { probePlugins } from './helpers/fixtures.js';
import { chat, postJson } from './helpers/gateway.js';

const probes = await probePlugins();
t.test('start, serve, and clean up plugins in reverse order on SIGTERM', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-cli-'));
  const trace = path.join(dir, 'trace.jsonl');
  const config = {
    server: { host: '127.0.0.1', port: 0 },
    providers: { mock: { type: 'mock' } },
    plugins: ['p1', 'p2', 'p3'].map((p) => ({ path: probes[p as 'p1'], config: { trace } })),
  };
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  const cli = runCli(['start', '--config', path.join(dir, 'config.json')]);
  t.teardown(() => cli.child.kill('SIGKILL'));
  const url = await cli.listening();

  const res = await postJson(`${url}/v1/chat/completions`, chat('mock/echo', 'via the cli'));
  t.equal(res.status, 200);
  t.match(res.json.choices[0].message.content, /via the cli/);

  cli.child.kill('SIGTERM');
  t.equal(await cli.exited, 0, 'exits cleanly');
  const hooks = readFileSync(trace, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.same(hooks.filter((l) => l.hook === 'init').map((l) => l.plugin), ['p1', 'p2', 'p3']);
  t.same(hooks.filter((l) => l.hook === 'cleanup').map((l) => l.plugin), ['p3', 'p2', 'p1'], 'Cleanup in reverse load order');
  t.equal(hooks.at(-1).hook, 'cleanup', 'nothing is called after Cleanup');
});

t.test('a plugin that cannot load stops the start, naming the file, the cause and the fix', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-cli-'));
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
    providers: { mock: { type: 'mock' } },
    plugins: [{ path: probes.p1, config: { init_status: '1', init_output: 'api_url is required' } }],
  }));
  const cli = runCli(['start', '--config', path.join(dir, 'config.json')]);
  t.teardown(() => cli.child.kill('SIGKILL'));
  t.equal(await cli.exited, 1);
  t.match(cli.err(), /HEIMDALL_ERR_PLUGIN_INIT: plugin p1 \(.*p1\.so\) refused to start: Init failed: api_url is required/);
  t.match(cli.err(), /"optional": true/);
});

t.test('usage errors', async (t) => {
  const none = runCli([]);
  t.equal(await none.exited, 2);
  t.match(none.out(), /usage: heimdall start/);
  const bad = runCli(['launch']);
  t.equal(await bad.exited, 2);
  t.match(bad.err(), /unknown command "launch"/);
});
