/** The Rust template: a cdylib crate with its unit tests, against the SDK as a path dependency, and a Makefile. */
import { makeHeader, readmeUsage, snake, type TemplateFiles, type TemplateInput } from './index.js';

export function rustTemplate({ name, heimdall }: TemplateInput): TemplateFiles {
  const lib = snake(name);
  const type = name.split(/[-_.]/).map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('').replace(/^(\d)/, 'P$1');
  return {
    'Cargo.toml': `[package]
name = "${name}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
name = "${lib}"
crate-type = ["cdylib"] # a shared library with C exports: lib${lib}.so / lib${lib}.dylib

[dependencies]
heimdall-plugin = { path = "${heimdall}/sdk/rust" } # not on crates.io: a path dependency on the Heimdall checkout
`,
    'src/lib.rs': `//! ${name}: a Heimdall plugin. PreHook refuses requests that mention the configured word; PostHook tags every answer.

use heimdall_plugin::{json, ApiError, ChatRequest, Ctx, Json, Plugin, PostAction, PostInput, PreAction, Result, Value};

pub struct ${type} {
    block_word: String,
}

// The name GetName returns (checked at compile time), and the impl: every hook it defines is exported.
heimdall_plugin::export_plugin! {
    "${name}",
    impl Plugin for ${type} {
        /// The "config" object from config.json: {"block_word": "forbidden"}.
        fn init(config: Value) -> Result<Self> {
            let block_word = match config.get("block_word") {
                None => "forbidden".to_string(),
                Some(Value::String(word)) if !word.is_empty() => word.clone(),
                Some(_) => return Err(r#"bad config: "block_word" must be a non-empty string"#.into()),
            };
            Ok(${type} { block_word })
        }

        fn pre_hook(&mut self, _ctx: &Ctx, request: Json<ChatRequest>) -> Result<PreAction> {
            let word = self.block_word.as_bytes();
            if !request.raw().windows(word.len()).any(|w| w == word) {
                return Ok(PreAction::Continue); // nothing is handed back: the gateway's fast path
            }
            Ok(PreAction::Error(ApiError::new(403, "request blocked by ${name}")))
        }

        fn post_hook(&mut self, _ctx: &Ctx, result: PostInput) -> Result<PostAction> {
            let PostInput::Response(response) = result else {
                return Ok(PostAction::Continue); // an error: left as it is
            };
            let mut resp = response.into_inner()?;
            resp.extra.insert("${name}".into(), json!({ "checked": true }));
            Ok(PostAction::Response(resp))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_only_requests_with_the_word() {
        let mut plugin = ${type}::init(json!({})).unwrap();
        let ctx = Ctx::new(br#"{"request_id":"r1"}"#);
        let ordinary = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(plugin.pre_hook(&ctx, Json::new(ordinary)).unwrap(), PreAction::Continue);
        let blocked = br#"{"model":"m","messages":[{"role":"user","content":"a forbidden thing"}]}"#;
        match plugin.pre_hook(&ctx, Json::new(blocked)).unwrap() {
            PreAction::Error(e) => assert_eq!(e.status_code, 403),
            other => panic!("expected a 403, got {other:?}"),
        }
    }

    #[test]
    fn tags_answers_only() {
        let mut plugin = ${type}::init(json!({})).unwrap();
        let ctx = Ctx::new(br#"{}"#);
        match plugin.post_hook(&ctx, PostInput::Response(Json::new(br#"{"id":"x","choices":[]}"#))).unwrap() {
            PostAction::Response(r) => assert_eq!(r.extra["${name}"], json!({ "checked": true })),
            other => panic!("expected a tagged response, got {other:?}"),
        }
    }

    #[test]
    fn refuses_a_bad_config() {
        assert!(${type}::init(json!({ "block_word": 7 })).is_err());
    }
}
`,
    Makefile: `${makeHeader(heimdall)}# Offline from Debian's packaged crates when they are installed (apt-get install librust-serde-dev
# librust-serde-derive-dev librust-serde-json-dev); otherwise from crates.io, as cargo is set up.
CARGO_FLAGS ?= $(if $(wildcard /usr/share/cargo/registry/serde_json-1*),--offline --config $(HEIMDALL)/sdk/rust/cargo-debian.toml)
TARGET := $(or $(CARGO_TARGET_DIR),target)

all: ${name}.$(EXT)

${name}.$(EXT): Cargo.toml $(wildcard src/*.rs)
\tcargo build --release --lib $(CARGO_FLAGS)
\tcp $(TARGET)/release/lib${lib}.$(EXT) $@

test:
\tcargo test $(CARGO_FLAGS)

clean:
\trm -f ${name}.so ${name}.dylib
\tcargo clean

.PHONY: all test clean
`,
    'README.md': `# ${name}

A Heimdall plugin in Rust, made by \`heimdall plugin new ${name} --lang rust\`.

- \`src/lib.rs\`: the plugin, with the Rust SDK, and its unit tests;
- \`Cargo.toml\`: a \`cdylib\`, with the SDK as a path dependency on the Heimdall checkout (change the path if the
  checkout moves);
- \`Makefile\`: \`cargo build --release\`, then copies \`target/release/lib${lib}.so\` to \`${name}.so\`. The crates
  come from Debian's packages when they are installed, so the build is offline; otherwise from crates.io.

${readmeUsage(name, 'rust')}`,
    '.gitignore': `/target\n${name}.so\n${name}.dylib\n`,
  };
}
