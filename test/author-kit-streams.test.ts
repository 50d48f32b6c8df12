/**
 * Changing a streamed answer, in C, Go and Rust, with each SDK's append helper: a real gateway on loopback streams
 * the mock provider's answer through the plugin, and the client reads the note exactly once at the end, streamed
 * or not (the last-chunk pattern; PostHook leaves a streamed answer alone).
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { BUILD, REPO } from './helpers/fixtures.js';
import { chat, postJson, sseData, startGateway } from './helpers/gateway.js';
import { hasCommand, needs, rustMissing } from './helpers/toolchains.js';

const exec = promisify(execFile);
t.setTimeout(600_000);
const FIXTURES = path.join(REPO, 'test', 'fixtures', 'author-kit');
const DIR = path.join(BUILD, 'test-fixtures', 'author-kit-streams');
mkdirSync(DIR, { recursive: true });

const noGo = needs((await hasCommand('go', ['version'])) ? false : 'Go is not installed (apt-get install golang-go)');
const noCargo = needs(await rustMissing());

const builders: Record<string, () => Promise<string>> = {
  async c() {
    const file = path.join(DIR, 'append-note-c.so');
    await exec('cc', ['-shared', '-fPIC', '-O2', '-Wall', '-Wextra', '-Werror', '-I', path.join(REPO, 'native', 'include'), '-o', file, path.join(FIXTURES, 'append_note.c')]);
    return file;
  },
  async go() {
    const file = path.join(DIR, 'append-note-go.so');
    await exec('go', ['build', '-buildmode=c-shared', '-trimpath', '-o', file, '.'], {
      cwd: path.join(FIXTURES, 'append-note-go'),
      env: { ...process.env, GOFLAGS: '', GOPROXY: 'off', GOTOOLCHAIN: 'local', CGO_ENABLED: '1' },
      timeout: 300_000,
    });
    return file;
  },
  async rust() {
    const target = path.join(BUILD, 'cargo-target-author-kit');
    await exec('cargo', ['build', '--release', '--lib', '--offline', '--config', path.join(REPO, 'sdk', 'rust', 'cargo-debian.toml')], {
      cwd: path.join(FIXTURES, 'append-note-rust'),
      env: { ...process.env, CARGO_TARGET_DIR: target },
      timeout: 400_000,
    });
    return path.join(target, 'release', 'libappend_note_rust.so');
  },
};
const skip: Record<string, string | false> = { c: false, go: noGo, rust: noCargo };

for (const lang of ['c', 'go', 'rust']) {
  t.test(`${lang}: the note is appended once, to a whole answer and to a streamed one`, { skip: skip[lang] }, async (t) => {
    const file = await builders[lang]!();
    const gw = await startGateway(t, { providers: { mock: {} }, plugins: [{ path: file }] });

    const whole = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'hello'));
    t.equal(whole.status, 200);
    t.equal(whole.json.choices[0].message.content, 'Mock reply from echo. You said: hello (checked)');

    const streamed = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'hello', { stream: true }));
    t.equal(streamed.status, 200);
    const events = sseData(streamed.text);
    t.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    const text = chunks.map((c) => c.choices?.[0]?.delta?.content ?? '').join('');
    t.equal(text, 'Mock reply from echo. You said: hello (checked)', 'the client reads the note once, at the end');
    const last = chunks.at(-1);
    t.equal(last.choices[0].finish_reason, 'stop');
    t.equal(last.choices[0].delta.content, ' (checked)', 'carried by the chunk with the finish_reason');
  });
}
