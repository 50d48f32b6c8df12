/**
 * heimdall plugin test: a real plugin's hooks run offline on built-in samples and fixture files; expectations that
 * hold exit 0, any that fails (or a hook that fails unexpectedly) exits 1 and says which and why.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { newPlugin } from '../src/commands/new.js';
import { parseExpectation, readFixture, sampleCase } from '../src/commands/plugin-test-cases.js';
import { runPluginTest } from '../src/commands/plugin-test.js';
import { runCli } from './helpers/cli.js';
import { BUILD, REPO } from './helpers/fixtures.js';
import { needs } from './helpers/toolchains.js';

const cli = runCli;

const exec = promisify(execFile);
// Each command-line run starts Node with the TypeScript loader: slow on a busy machine.
t.setTimeout(600_000);
const DIR = path.join(BUILD, 'test-fixtures', 'plugin-test');
mkdirSync(DIR, { recursive: true });
const FIXTURES = path.join(REPO, 'test', 'fixtures', 'author-kit');

// The C template as scaffolded (PreHook refuses "forbidden" with a 403, PostHook tags), and a streaming plugin.
const parent = mkdtempSync(path.join(tmpdir(), 'heimdall-ptest-'));
const guard = newPlugin({ name: 'guard', lang: 'c', parent });
await exec('make', ['-s'], { cwd: guard.dir, env: { ...process.env, MAKEFLAGS: '' } });
const GUARD = path.join(guard.dir, 'guard.so');
const NOTE = path.join(DIR, 'append-note.so');
await exec('cc', ['-shared', '-fPIC', '-O2', '-Wall', '-Wextra', '-Werror', '-I', path.join(REPO, 'native', 'include'), '-o', NOTE, path.join(FIXTURES, 'append_note.c')]);

const expect = (...list: string[]) => list.map((e) => parseExpectation(e, '--expect'));

t.test('the built-in sample: each hook with its input, output, decision and time; expectations checked', async (t) => {
  const pass = await runPluginTest(GUARD, { cases: [sampleCase({ expect: expect('prehook=continue', 'posthook=modify', 'posthook~"guard":{"checked":true}', 'init=ok') })] });
  t.equal(pass.ok, true);
  t.same(pass.plugin?.hooks, ['PreHook', 'PostHook']);
  const [pre, post] = pass.cases[0]!.runs;
  t.same([pre?.hook, pre?.decision, pre?.output], ['prehook', 'continue', null]);
  t.match(pre?.input, { messages: [{ role: 'user', content: 'Hello from heimdall plugin test' }] });
  t.equal(post?.decision, 'modify');
  t.match(post?.output, { response: { guard: { checked: true } } });
  t.ok(typeof pre?.ms === 'number' && pre.ms >= 0, 'timed');

  const blocked = await runPluginTest(GUARD, {
    cases: [sampleCase({ message: 'a forbidden thing', expect: expect('prehook=short-circuit:403', 'prehook=short-circuit', 'posthook=continue') })],
  });
  t.equal(blocked.ok, true, 'a short-circuit with its status');
  t.match(blocked.cases[0]!.runs[1]?.input, { error: { status_code: 403 } }, 'PostHook sees the short-circuit, as in the gateway');

  const fail = await runPluginTest(GUARD, {
    cases: [sampleCase({ message: 'a forbidden thing', expect: expect('prehook=short-circuit:429', 'posthook~nothing-like-this', 'chunk=continue') })],
  });
  t.equal(fail.ok, false);
  t.same(fail.cases[0]!.expectations.map((e) => [e.ok, e.why]), [
    [false, 'PreHook was short-circuit:403'],
    [false, 'PostHook its output was (nothing: continue)'],
    [false, 'no such chunk hook call (is the case streamed, and StreamChunkHook exported?)'],
  ]);
});

t.test('a fixture file: streamed and whole answers, the last-chunk pattern, a provider error', async (t) => {
  const fixture = readFixture(path.join(FIXTURES, 'append-note.cases.json'));
  const report = await runPluginTest(NOTE, { config: fixture.config, cases: fixture.cases });
  for (const c of report.cases) {
    for (const e of c.expectations) t.ok(e.ok, `${c.name}: ${e.text}${e.ok ? '' : `: ${e.why}`}`);
  }
  t.equal(report.ok, true);
  const streamed = report.cases[1]!;
  const chunks = streamed.runs.filter((r) => r.hook === 'chunk');
  t.same(chunks.map((r) => r.decision), ['continue', 'continue', 'continue', 'continue', 'continue', 'continue', 'continue', 'modify']);
  t.match(streamed.runs.at(-1)?.input, { response: { choices: [{ message: { content: 'Mock reply. You said: hi there (checked)' } }] } },
    'PostHook sees the assembled answer, the note once');
});

t.test('heimdall plugin test from the command line: exit 0 when every expectation holds, 1 when one fails', async (t) => {
  const ok = cli(['plugin', 'test', GUARD, '--message', 'a forbidden plan', '--expect', 'prehook=short-circuit:403']);
  t.equal(await ok.closed, 0);
  t.match(ok.out(), /PreHook +short-circuit:403 +[\d.]+ ms\n {4}in {3}\{"model":"mock\/echo","messages":\[\{"role":"user","content":"a forbidden plan"\}\]\}\n {4}out {2}\{"error":\{"status_code":403,"message":"request blocked by guard"/);
  t.match(ok.out(), /expect prehook=short-circuit:403: ok\n\nok: 1 expectation met/);

  const failing = cli(['plugin', 'test', GUARD, '--message', 'a forbidden plan', '--expect', 'prehook=short-circuit:429']);
  t.equal(await failing.closed, 1);
  t.match(failing.out(), /expect prehook=short-circuit:429: FAILED: PreHook was short-circuit:403/);

  const fixture = cli(['plugin', 'test', NOTE, '--fixture', path.join(FIXTURES, 'append-note.cases.json'), '--json']);
  t.equal(await fixture.closed, 0);
  t.equal(JSON.parse(fixture.out()).cases.length, 4);

  const initRefused = cli(['plugin', 'test', GUARD, '--plugin-config', '{"block_wrd": "x"}', '--expect', 'init=fail']);
  t.equal(await initRefused.closed, 0, 'an Init refusal that is expected');
  t.match(initRefused.out(), /Init +fail .*\n.*unknown key \\?"block_wrd\\?"/);

  const badExpectation = cli(['plugin', 'test', GUARD, '--expect', 'prehook=explode']);
  t.equal(await badExpectation.closed, 1);
  t.match(badExpectation.err(), /HEIMDALL_ERR_PLUGIN_TEST_INPUT: heimdall plugin test: --expect: expectation "prehook=explode": prehook decisions are continue, modify, short-circuit, fail, skipped\. Write it as HOOK=DECISION/);
});

t.test('a hook that fails is a failure unless expected; a broken fixture is named', async (t) => {
  // append-note's chunk hook refuses a document that is neither a chat.completion nor a chunk.
  const file = path.join(DIR, 'odd.cases.json');
  writeFileSync(file, JSON.stringify({ cases: [{ name: 'odd chunk', stream: true, chunks: [{ nothing: true }] }] }));
  const report = await runPluginTest(NOTE, { cases: readFixture(file).cases });
  t.equal(report.ok, false);
  t.match(report.cases[0]!.unexpectedFailures, [/StreamChunkHook\[0\]: .*not a chat\.completion or a chunk/]);
  const expected = readFixture(file).cases;
  expected[0]!.expect.push(...expect('chunk=fail'));
  t.equal((await runPluginTest(NOTE, { cases: expected })).ok, true, 'chunk=fail expected');

  writeFileSync(file, '{"cases": [{"chunks": 3}]}');
  t.throws(() => readFixture(file), { code: 'HEIMDALL_ERR_PLUGIN_TEST_INPUT', message: /odd\.cases\.json: cases\[0\]\.chunks is not an array of objects/ });
});

const RATE_LIMITER = path.join(BUILD, 'plugins', 'rate-limiter.so');
t.test('cases share the plugin, as requests do: the Go rate limiter lets one request through, then answers 429', {
  skip: needs(existsSync(RATE_LIMITER) ? false : 'the Go plugins are not built (apt-get install golang-go, then npm run build:plugins)'),
}, async (t) => {
  const fixture = readFixture(path.join(FIXTURES, 'rate-limiter.cases.json'));
  const report = await runPluginTest(RATE_LIMITER, { config: fixture.config, cases: fixture.cases });
  t.same(report.cases.map((c) => c.runs.find((r) => r.hook === 'prehook')?.decision), ['continue', 'short-circuit:429', 'continue']);
  t.equal(report.ok, true, report.cases.flatMap((c) => c.expectations.filter((e) => !e.ok).map((e) => `${c.name}: ${e.text}: ${e.why}`)).join('; '));
});

t.test('a hook that never returns: in the isolated mode plugin test ends it at its deadline and reports it', async (t) => {
  const source = path.join(DIR, 'hang_pre.c');
  writeFileSync(source, `#include <unistd.h>
#include "heimdall_plugin.h"
HEIMDALL_PLUGIN_DEFINE_ABI()
HEIMDALL_EXPORT const char *GetName(void) { return "hang-pre"; }
HEIMDALL_EXPORT void Cleanup(void) {}
HEIMDALL_EXPORT int32_t PreHook(const uint8_t *c, size_t cl, const uint8_t *r, size_t rl, heimdall_buf_t *out) {
  (void)c, (void)cl, (void)r, (void)rl, (void)out;
  for (;;) pause();
}
`);
  const file = path.join(DIR, 'hang-pre.so');
  await exec('cc', ['-shared', '-fPIC', '-I', path.join(REPO, 'native', 'include'), '-o', file, source]);
  const started = Date.now();
  const report = await runPluginTest(file, { mode: 'isolated', timeoutMs: 500, cases: [sampleCase({ expect: expect('prehook=fail') })] });
  const pre = report.cases[0]!.runs[0]!;
  t.equal(pre.decision, 'fail');
  t.match(pre.failure, /ran past its deadline of 500 ms/);
  t.equal(report.ok, true, 'prehook=fail was expected');
  t.ok(Date.now() - started < 15_000, `ended in ${Date.now() - started} ms`);
});
