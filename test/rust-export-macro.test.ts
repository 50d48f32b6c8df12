/**
 * The Rust SDK's export_plugin! exports exactly the hooks its impl block defines: no hook can be implemented and
 * left unexported. The older list form, which allowed that, no longer compiles; a misspelt hook does not compile;
 * without init the plugin is its type's Default. Real crates, built with cargo offline.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { inspectBinary } from '../src/plugins/inspect.js';
import { loadPlugin } from '../src/plugins/loader.js';
import { BUILD, REPO } from './helpers/fixtures.js';
import { needs, rustMissing } from './helpers/toolchains.js';

const exec = promisify(execFile);
t.setTimeout(600_000);
const SDK = path.join(REPO, 'sdk', 'rust');
const DIR = path.join(BUILD, 'test-fixtures', 'rust-export-macro');
const TARGET = path.join(BUILD, 'cargo-target-author-kit');
const DEBIAN = '/usr/share/cargo/registry';
const offline = existsSync(DEBIAN) ? ['--offline', '--config', path.join(SDK, 'cargo-debian.toml')] : [];

const noCargo = needs(await rustMissing());

/** Writes a cdylib crate with this lib.rs and builds it: the library's path, or the compiler's error output. */
async function build(name: string, lib: string): Promise<{ ok: true; file: string } | { ok: false; stderr: string }> {
  const dir = path.join(DIR, name);
  mkdirSync(path.join(dir, 'src'), { recursive: true });
  writeFileSync(path.join(dir, 'Cargo.toml'), `[package]\nname = "${name}"\nversion = "0.1.0"\nedition = "2021"\npublish = false\n\n` +
    `[lib]\ncrate-type = ["cdylib"]\n\n[dependencies]\nheimdall-plugin = { path = ${JSON.stringify(SDK)} }\n`);
  writeFileSync(path.join(dir, 'src', 'lib.rs'), lib);
  try {
    await exec('cargo', ['build', '--release', '--lib', ...offline], { cwd: dir, env: { ...process.env, CARGO_TARGET_DIR: TARGET }, timeout: 400_000 });
    return { ok: true, file: path.join(TARGET, 'release', `lib${name.replace(/-/g, '_')}.so`) };
  } catch (err) {
    return { ok: false, stderr: String((err as { stderr?: string }).stderr) };
  }
}

const USE = 'use heimdall_plugin::{ChatRequest, ChunkAction, Ctx, Json, Plugin, PreAction, Result, StreamChunk};\n';

t.test('every hook the impl defines is exported, and only those; no init: the Default', { skip: noCargo }, async (t) => {
  const built = await build('macro-exports', `${USE}
#[derive(Default)]
pub struct Two { seen: u64 }

heimdall_plugin::export_plugin! {
    "macro-exports",
    impl Plugin for Two {
        fn pre_hook(&mut self, ctx: &Ctx, _request: Json<ChatRequest>) -> Result<PreAction> {
            self.seen += 1;
            ctx.set_value("seen", self.seen);
            Ok(PreAction::Continue)
        }

        fn stream_chunk_hook(&mut self, _ctx: &Ctx, chunk: Json<StreamChunk>) -> Result<ChunkAction> {
            let mut chunk = chunk.into_inner()?;
            Ok(if chunk.append_text_if_last("!") { ChunkAction::Replace(chunk) } else { ChunkAction::Continue })
        }
    }
}
`);
  if (!built.ok) return t.fail(built.stderr);
  const exported = inspectBinary(built.file).symbols;
  t.same(['TransportInterceptor', 'PreHook', 'PostHook', 'StreamChunkHook'].filter((s) => exported.has(s)), ['PreHook', 'StreamChunkHook']);
  const plugin = await loadPlugin(built.file, { config: {} });
  t.same(plugin.info.hooks, { transport: false, pre: true, post: false, chunk: true });
  const ctx = Buffer.from('{"request_id":"r","values":{}}');
  t.same(plugin.preHook(ctx, Buffer.from('{"model":"m","messages":[]}')), { kind: 'continue', context: { seen: 1 } }, 'made by Default, state kept');
  const last = plugin.streamChunk(ctx, Buffer.from('{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'));
  t.match(last, { kind: 'chunk', chunk: { choices: [{ delta: { content: '!' } }] } }, 'append_text_if_last on the last chunk');
});

t.test('a hook cannot be implemented and left out: the list form does not compile', { skip: noCargo }, async (t) => {
  const built = await build('macro-list-form', `${USE}
pub struct Listed;

impl Plugin for Listed {
    fn init(_config: heimdall_plugin::Value) -> Result<Self> { Ok(Listed) }
    fn pre_hook(&mut self, _ctx: &Ctx, _request: Json<ChatRequest>) -> Result<PreAction> { Ok(PreAction::Continue) }
    fn stream_chunk_hook(&mut self, _ctx: &Ctx, _chunk: Json<StreamChunk>) -> Result<ChunkAction> { Ok(ChunkAction::Continue) }
}

// stream_chunk_hook is implemented but not listed: it would never be called.
heimdall_plugin::export_plugin!(Listed, "macro-list-form", [pre_hook]);
`);
  t.equal(built.ok, false, 'refused at compile time');
  if (!built.ok) t.match(built.stderr, /export_plugin! now takes the impl block itself, so that every hook it implements is exported.*export_plugin! \{ "macro-list-form", impl Plugin for Listed/s);
});

t.test('a misspelt hook does not compile; neither does a type without init or Default', { skip: noCargo }, async (t) => {
  const typo = await build('macro-typo', `${USE}
#[derive(Default)]
pub struct Typo;

heimdall_plugin::export_plugin! {
    "macro-typo",
    impl Plugin for Typo {
        fn pre_hok(&mut self, _ctx: &Ctx, _request: Json<ChatRequest>) -> Result<PreAction> { Ok(PreAction::Continue) }
    }
}
`);
  t.equal(typo.ok, false);
  if (!typo.ok) t.match(typo.stderr, /method `pre_hok` is not a member of trait `Plugin`/);

  const noInit = await build('macro-no-init', `${USE}
pub struct NoDefault { _n: u8 }

heimdall_plugin::export_plugin! {
    "macro-no-init",
    impl Plugin for NoDefault {
        fn pre_hook(&mut self, _ctx: &Ctx, _request: Json<ChatRequest>) -> Result<PreAction> { Ok(PreAction::Continue) }
    }
}
`);
  t.equal(noInit.ok, false);
  if (!noInit.ok) t.match(noInit.stderr, /NoDefault: Default` is not satisfied|the trait `Default` is not implemented for `NoDefault`/);
});
