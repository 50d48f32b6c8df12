/**
 * heimdall plugin new: for each language, a scaffolded plugin builds offline as it is, passes its own unit test,
 * loads into a real gateway on loopback and answers requests through a real loopback upstream (its PostHook tags
 * the answer; its PreHook refuses a request with the configured word before the upstream is called). The time from
 * scaffold to a working plugin is measured for each language.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { newPlugin } from '../src/commands/new.js';
import type { TemplateLanguage } from '../src/commands/templates/index.js';
import { runCli } from './helpers/cli.js';
import { BUILD } from './helpers/fixtures.js';
import { chat, postJson, startGateway } from './helpers/gateway.js';
import { hasCommand, needs, rustMissing } from './helpers/toolchains.js';
import { startUpstream } from './helpers/upstream.js';

const cli = runCli;

const exec = promisify(execFile);
// Building three toolchains' plugins from scratch takes longer than the suite's default 120 s on a busy machine.
t.setTimeout(900_000);

const noMake = needs((await hasCommand('make', ['--version'])) ? false : 'make is not installed (apt-get install make)');
const noGo = needs((await hasCommand('go', ['version'])) ? false : 'Go is not installed (apt-get install golang-go)');
const noCargo = needs(await rustMissing());
const skip: Record<TemplateLanguage, string | false> = { c: noMake, go: noMake || noGo, rust: noMake || noCargo };

// Rust's dependencies (serde, serde_json) are compiled once into a target dir kept between runs; the first run of
// this test compiles them too.
const CARGO_TARGET = path.join(BUILD, 'cargo-target-author-kit');
mkdirSync(CARGO_TARGET, { recursive: true });

async function make(dir: string, args: string[] = []): Promise<string> {
  const { stdout } = await exec('make', ['-s', ...args], {
    cwd: dir,
    env: { ...process.env, CARGO_TARGET_DIR: CARGO_TARGET, MAKEFLAGS: '' },
    timeout: 600_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

for (const lang of ['c', 'go', 'rust'] as const) {
  t.test(`plugin new --lang ${lang}: scaffold, build offline, unit test, load into a gateway, answer through an upstream`, { skip: skip[lang] }, async (t) => {
    const name = `kit-${lang}`;
    const parent = mkdtempSync(path.join(tmpdir(), 'heimdall-kit-'));
    const started = Date.now();
    const created = newPlugin({ name, lang, parent });
    t.equal(created.dir, path.join(parent, name));
    t.ok(created.files.includes('README.md') && created.files.includes('Makefile'), 'a README and a Makefile');
    const exportsBefore = lang === 'go' ? readFileSync(path.join(created.dir, 'heimdall_exports.go'), 'utf8') : '';

    await make(created.dir);
    const built = Date.now();
    if (lang === 'go') {
      t.equal(readFileSync(path.join(created.dir, 'heimdall_exports.go'), 'utf8'), exportsBefore, 'go generate leaves the scaffolded exports as they are');
    }

    const up = await startUpstream(t);
    const gw = await startGateway(t, {
      providers: { openai: { base_url: up.baseUrl } },
      plugins: [{ path: path.join(created.dir, name), config: { block_word: 'forbidden' } }],
    });
    t.same(gw.gateway.plugins.active.map((p) => [p.info.name, p.info.language]), [[name, lang]], 'loaded, its language detected');
    const ok = await postJson(`${gw.url}/v1/chat/completions`, chat('openai/gpt-test', 'hi there'));
    t.equal(ok.status, 200);
    t.equal(ok.json.choices[0].message.content, 'upstream says: hi there', 'the upstream answered');
    t.same(ok.json[name], { checked: true }, 'PostHook tagged the answer');
    const working = Date.now();

    const blocked = await postJson(`${gw.url}/v1/chat/completions`, chat('openai/gpt-test', 'a forbidden plan'));
    t.equal(blocked.status, 403, 'PreHook refused the request');
    t.match(blocked.json.error.message, `request blocked by ${name}`);
    t.equal(up.seen.length, 1, 'the refused request never reached the upstream');

    const testStarted = Date.now();
    const out = await make(created.dir, ['test']);
    t.notMatch(out, /FAIL/, 'its own unit test passes');
    t.comment(`${lang}: scaffold + build ${built - started} ms; scaffold to a working plugin (built, loaded, answering) ` +
      `${working - started} ms; its unit test ${Date.now() - testStarted} ms`);
  });
}

t.test('plugin new refuses what it cannot scaffold, naming the fix', async (t) => {
  const parent = mkdtempSync(path.join(tmpdir(), 'heimdall-kit-'));
  t.throws(() => newPlugin({ name: 'My Plugin', lang: 'c', parent }), { code: 'HEIMDALL_ERR_SCAFFOLD', message: /"My Plugin" is not a usable plugin name\. Use 1-64 lower-case/ });
  t.throws(() => newPlugin({ name: 'ok', lang: 'cobol', parent }), { code: 'HEIMDALL_ERR_SCAFFOLD', message: /unknown language "cobol"\. Choose one with --lang c\|go\|rust/ });
  t.throws(() => newPlugin({ name: 'ok', lang: undefined, parent }), { code: 'HEIMDALL_ERR_SCAFFOLD', message: /no language given/ });
  newPlugin({ name: 'taken', lang: 'c', parent });
  t.throws(() => newPlugin({ name: 'taken', lang: 'go', parent }), { code: 'HEIMDALL_ERR_SCAFFOLD', message: /already exists and is not empty\. Choose another name/ });
});

t.test('heimdall plugin new, from the command line', async (t) => {
  const parent = mkdtempSync(path.join(tmpdir(), 'heimdall-kit-'));
  const good = cli(['plugin', 'new', 'cli-made', '--lang', 'c', '--dir', parent]);
  t.equal(await good.closed, 0);
  t.match(good.out(), /created .*cli-made\/ \(c\): cli_made\.c, test_cli_made\.c, Makefile, README\.md/);
  t.match(readFileSync(path.join(parent, 'cli-made', 'cli_made.c'), 'utf8'), /GetName\(void\) \{ return "cli-made"; \}/);
  const bad = cli(['plugin', 'new', 'cli-made', '--lang', 'c', '--dir', parent]);
  t.equal(await bad.closed, 1);
  t.match(bad.err(), /heimdall: HEIMDALL_ERR_SCAFFOLD: heimdall plugin new: .*cli-made already exists/);
});
