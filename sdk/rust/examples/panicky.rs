//! A test plugin that panics, for the gateway's tests: a panic in a plugin must become an error status (with the panic
//! message) and the gateway must stay up.
//!
//! Config: `{"panic_in": ["pre_hook"]}` (the default) lists the functions that panic, among "init",
//! "transport_interceptor", "pre_hook", "post_hook", "stream_chunk_hook". The others continue unchanged, and PreHook,
//! when it does not panic, sets the context value "panicky": "survived".
//!
//! Build: `cargo build --release --example panicky` -> <target>/release/examples/libpanicky.so (.dylib on macOS);
//! scripts/build-rust.mjs copies it to build/plugins/rust-panicky.so. Its name (GetName) is "rust-panicky".

use heimdall_plugin::{
    ChatRequest, ChunkAction, Ctx, HttpRequest, Json, Plugin, PostAction, PostInput, PreAction, Result,
    StreamChunk, TransportAction, Value,
};

struct Panicky {
    panic_in: Vec<String>,
}

impl Panicky {
    fn maybe_panic(&self, hook: &str) {
        if self.panic_in.iter().any(|h| h == hook) {
            panic!("panicky: deliberate panic in {hook}");
        }
    }
}

heimdall_plugin::export_plugin! {
    "rust-panicky",
    impl Plugin for Panicky {
        fn init(config: Value) -> Result<Self> {
            let panic_in: Vec<String> = match config.get("panic_in") {
                None => vec!["pre_hook".into()],
                Some(v) => heimdall_plugin::config(v.clone())?,
            };
            let plugin = Panicky { panic_in };
            plugin.maybe_panic("init");
            Ok(plugin)
        }

        fn transport_interceptor(&mut self, _: &Ctx, _: Json<HttpRequest>, _: Json<Value>) -> Result<TransportAction> {
            self.maybe_panic("transport_interceptor");
            Ok(TransportAction::Continue)
        }

        fn pre_hook(&mut self, ctx: &Ctx, _: Json<ChatRequest>) -> Result<PreAction> {
            self.maybe_panic("pre_hook");
            ctx.set_value("panicky", "survived");
            Ok(PreAction::Continue)
        }

        fn post_hook(&mut self, _: &Ctx, _: PostInput) -> Result<PostAction> {
            self.maybe_panic("post_hook");
            Ok(PostAction::Continue)
        }

        fn stream_chunk_hook(&mut self, _: &Ctx, _: Json<StreamChunk>) -> Result<ChunkAction> {
            self.maybe_panic("stream_chunk_hook");
            Ok(ChunkAction::Continue)
        }
    }
}

