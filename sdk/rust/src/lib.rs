//! Write Heimdall gateway plugins in Rust.
//!
//! A plugin is a `cdylib` that exports the C ABI of `native/include/heimdall_plugin.h`. This crate gives you typed
//! hooks instead: implement [`Plugin`] inside [`export_plugin!`], which exports every hook the implementation
//! defines.
//!
//! ```
//! use heimdall_plugin::{ApiError, ChatRequest, Ctx, Json, Plugin, PreAction, Result, Value};
//!
//! struct MaxTokens { limit: u64 }
//!
//! heimdall_plugin::export_plugin! {
//!     "max-tokens",
//!     impl Plugin for MaxTokens {
//!         fn init(config: Value) -> Result<Self> {
//!             Ok(MaxTokens { limit: config["limit"].as_u64().unwrap_or(4096) })
//!         }
//!
//!         fn pre_hook(&mut self, ctx: &Ctx, request: Json<ChatRequest>) -> Result<PreAction> {
//!             let requested = request.get()?.max_tokens().unwrap_or(0);
//!             if requested > self.limit {
//!                 return Ok(PreAction::Error(ApiError::new(400, "max_tokens is too large").allow_fallbacks(false)));
//!             }
//!             ctx.set_value("max_tokens_checked", true);
//!             Ok(PreAction::Continue)
//!         }
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! What the SDK guarantees:
//! - Every export catches panics: a panicking hook returns `HEIMDALL_ERROR` with the panic message (and location) as
//!   its output, and the gateway carries on. The plugin must be built with `panic = "unwind"` (the default; the macro
//!   refuses `panic = "abort"` at compile time).
//! - Inputs are parsed lazily ([`Json`]): a hook that returns `Continue` without calling `get()` parses nothing, and
//!   `Continue` with no context values set returns an empty output (the host's fast path). Hooks the implementation
//!   does not define are not exported at all, so the host does not even call them.
//! - The plugin value lives in a static behind a mutex; hooks may come from different OS threads, one at a time.
//!   A [`ConcurrentPlugin`] (hooks take `&self`, the type is `Sync`) exported with `concurrency = N` lets the gateway
//!   make up to N calls at once instead (ABI 1.1).

mod hook;
mod types;

#[doc(hidden)]
pub mod __rt;
/// Host services (ABI 1.2): log, metrics, per-request state and the shared key-value store.
pub mod host;

pub use hook::{ChunkAction, Ctx, Error, Json, PostAction, PostInput, PreAction, Result, TransportAction};
/// serde, for your own config and input types without a serde dependency of your own. Derive with
/// `#[derive(heimdall_plugin::Deserialize)]` and `#[serde(crate = "heimdall_plugin::serde")]`, which points the
/// generated code at this copy (see [`config`]).
pub use serde::{self, Deserialize, Serialize};
pub use serde_json::{self, json, Value};
pub use host::kv;
pub use types::{
    ApiError, ChatRequest, ChatResponse, Choice, ChunkChoice, Content, ContentPart, Context, Delta, HttpRequest,
    HttpResponse, Map, Message, StreamChunk, Usage,
};

/// `HEIMDALL_ABI_VERSION` of the header this SDK implements: (major << 16) | minor.
pub const ABI_VERSION: u32 = (ABI_VERSION_MAJOR << 16) | ABI_VERSION_MINOR;
pub const ABI_VERSION_MAJOR: u32 = 1;
pub const ABI_VERSION_MINOR: u32 = 2;

/// Status codes.
pub const HEIMDALL_OK: i32 = 0;
pub const HEIMDALL_ERROR: i32 = 1;

/// A Heimdall plugin. Implement it inside [`export_plugin!`], with the hooks you need (only those are exported) and
/// `init` when the plugin takes config (without it, the type's `Default` is used).
///
/// One value of the type exists per loaded plugin, created by `init` from the plugin's `"config"` object in
/// config.json, and dropped after `cleanup` at shutdown. Hooks get `&mut self`: the host calls one function at a time.
/// For hooks that may run at the same time (I/O-bound ones, in the gateway's threaded mode), see [`ConcurrentPlugin`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a heimdall_plugin::Plugin",
    note = "a `ConcurrentPlugin` is exported with `concurrency = N` in export_plugin!"
)]
pub trait Plugin: Send + Sized + 'static {
    /// Creates the plugin from its config (`{}` when config.json gives none). An error refuses to start the gateway
    /// (or leaves the plugin out, if it is marked optional), with the error's message shown to the operator.
    /// [`config`] turns the JSON into your own `Deserialize` type with a readable error.
    fn init(config: Value) -> Result<Self>;

    /// Sees and may rewrite the raw HTTP request before the gateway parses its body (HTTP callers only).
    /// `body` is the request body exactly as received.
    fn transport_interceptor(
        &mut self,
        _ctx: &Ctx<'_>,
        _http: Json<'_, HttpRequest>,
        _body: Json<'_, Value>,
    ) -> Result<TransportAction> {
        Ok(TransportAction::Continue)
    }

    /// Sees the request before the provider call: modify it, or short-circuit with a response or an error.
    fn pre_hook(&mut self, _ctx: &Ctx<'_>, _request: Json<'_, ChatRequest>) -> Result<PreAction> {
        Ok(PreAction::Continue)
    }

    /// Sees the result (for a streamed request: the assembled response, after the stream has ended).
    fn post_hook(&mut self, _ctx: &Ctx<'_>, _result: PostInput<'_>) -> Result<PostAction> {
        Ok(PostAction::Continue)
    }

    /// Sees each streamed chunk before the client does. `ctx` is the request's context, as in the other hooks; values
    /// set on it here are not kept (the ABI's chunk answer has no context). See [`StreamChunk::append_text_if_last`].
    fn stream_chunk_hook(&mut self, _ctx: &Ctx<'_>, _chunk: Json<'_, StreamChunk>) -> Result<ChunkAction> {
        Ok(ChunkAction::Continue)
    }

    /// Releases what the plugin holds, at shutdown. The value is dropped right after.
    fn cleanup(&mut self) {}
}

/// A plugin whose hooks may run at the same time, on different threads (ABI 1.1): export it with
/// `export_plugin! { "my-plugin", concurrency = 64, impl ConcurrentPlugin for MyPlugin { ... } }`, and the gateway may
/// make up to 64 hook calls at once.
///
/// The same as [`Plugin`], except that hooks get `&self` (the SDK shares one value between threads, so the type must be
/// `Sync`): state that hooks change lives behind a `Mutex`, an `RwLock` or atomics. Only the gateway's `"threaded"`
/// execution mode makes concurrent calls, up to the smaller of N and the entry's `"concurrency"` setting; it pays off
/// when hooks wait on I/O (an HTTP or Redis call). `init` and `cleanup` never run at the same time as a hook.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use heimdall_plugin::{ChatRequest, ConcurrentPlugin, Ctx, Json, PreAction, Result};
///
/// #[derive(Default)]
/// struct Counter { seen: AtomicU64 }
///
/// heimdall_plugin::export_plugin! {
///     "counter", concurrency = 64,
///     impl ConcurrentPlugin for Counter {
///         fn pre_hook(&self, ctx: &Ctx, _request: Json<ChatRequest>) -> Result<PreAction> {
///             ctx.set_value("nth", self.seen.fetch_add(1, Ordering::Relaxed) + 1);
///             Ok(PreAction::Continue)
///         }
///     }
/// }
/// # fn main() {}
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a heimdall_plugin::ConcurrentPlugin",
    note = "`concurrency = N` in export_plugin! needs `impl ConcurrentPlugin` (hooks take &self); \
            a `Plugin` (hooks take &mut self) is called one call at a time: leave `concurrency` out"
)]
pub trait ConcurrentPlugin: Send + Sync + Sized + 'static {
    /// Creates the plugin from its config, as [`Plugin::init`].
    fn init(config: Value) -> Result<Self>;

    /// As [`Plugin::transport_interceptor`], maybe at the same time as other hooks.
    fn transport_interceptor(
        &self,
        _ctx: &Ctx<'_>,
        _http: Json<'_, HttpRequest>,
        _body: Json<'_, Value>,
    ) -> Result<TransportAction> {
        Ok(TransportAction::Continue)
    }

    /// As [`Plugin::pre_hook`], maybe at the same time as other hooks.
    fn pre_hook(&self, _ctx: &Ctx<'_>, _request: Json<'_, ChatRequest>) -> Result<PreAction> {
        Ok(PreAction::Continue)
    }

    /// As [`Plugin::post_hook`], maybe at the same time as other hooks.
    fn post_hook(&self, _ctx: &Ctx<'_>, _result: PostInput<'_>) -> Result<PostAction> {
        Ok(PostAction::Continue)
    }

    /// As [`Plugin::stream_chunk_hook`], maybe at the same time as other hooks.
    fn stream_chunk_hook(&self, _ctx: &Ctx<'_>, _chunk: Json<'_, StreamChunk>) -> Result<ChunkAction> {
        Ok(ChunkAction::Continue)
    }

    /// Releases what the plugin holds, at shutdown, when no hook is running. The value is dropped right after.
    fn cleanup(&mut self) {}
}

/// Reads a plugin config into your own type: `let cfg: MyConfig = heimdall_plugin::config(config)?;`.
/// The error names the field that is wrong ("invalid config: unknown field `colour`, expected ...").
///
/// The type derives `Deserialize`, which this crate re-exports with serde: no serde dependency of your own is needed
/// when `#[serde(crate = "heimdall_plugin::serde")]` points the derive at it.
///
/// ```
/// use heimdall_plugin::{json, Deserialize};
///
/// #[derive(Deserialize)]
/// #[serde(crate = "heimdall_plugin::serde", deny_unknown_fields)]
/// struct MyConfig {
///     #[serde(default)]
///     colour: String,
/// }
///
/// let cfg: MyConfig = heimdall_plugin::config(json!({"colour": "red"})).unwrap();
/// assert_eq!(cfg.colour, "red");
/// let err = heimdall_plugin::config::<MyConfig>(json!({"color": "red"})).err().unwrap();
/// assert!(err.to_string().starts_with("invalid config: unknown field `color`"));
/// ```
pub fn config<T: serde::de::DeserializeOwned>(config: Value) -> Result<T> {
    serde_json::from_value(config).map_err(|e| format!("invalid config: {e}").into())
}

/// Exports a [`Plugin`] as a Heimdall plugin: every symbol of the C ABI, with `#[no_mangle] extern "C"`. The macro
/// takes the `impl` block itself, so **every hook the block defines is exported, and only those**: a hook cannot be
/// implemented and forgotten, and the host skips the hooks a plugin does not define (it does not even build their
/// inputs).
///
/// ```ignore
/// heimdall_plugin::export_plugin! {
///     "my-plugin",
///     impl Plugin for MyPlugin {
///         fn init(config: Value) -> Result<Self> { ... }          // optional when MyPlugin is Default
///         fn pre_hook(&mut self, ctx: &Ctx, request: Json<ChatRequest>) -> Result<PreAction> { ... }
///     }
/// }
///
/// heimdall_plugin::export_plugin! {                                 // a ConcurrentPlugin: up to 64 calls at once
///     "my-plugin", concurrency = 64,
///     impl ConcurrentPlugin for MyShared { ... }
/// }
/// ```
///
/// The name is the plugin's identifier in logs, metrics and status (ASCII letters, digits, `-`, `_`, `.`), checked
/// at compile time. Without `fn init`, the plugin is made with `Default::default()` and takes no config. Use the
/// macro once per crate. The older form, `export_plugin!(MyPlugin, "my-plugin", [pre_hook])`, is refused at compile
/// time: a hook left out of its list was silently never called.
#[macro_export]
macro_rules! export_plugin {
    ($name:literal, impl Plugin for $plugin:ty { $($body:tt)* } $(,)?) => {
        $crate::__export_scan!({Slot, $plugin, $name, Plugin, {$($body)*}, {}} [] no_init $($body)*);
    };
    ($name:literal, concurrency = $n:expr, impl ConcurrentPlugin for $plugin:ty { $($body:tt)* } $(,)?) => {
        $crate::__export_scan!({SharedSlot, $plugin, $name, ConcurrentPlugin, {$($body)*}, {
            const CONCURRENCY: u32 = $n;

            #[unsafe(no_mangle)]
            pub extern "C" fn heimdall_plugin_concurrency() -> u32 {
                CONCURRENCY
            }
        }} [] no_init $($body)*);
    };
    ($plugin:ty, $name:literal $($rest:tt)*) => {
        compile_error!(concat!(
            "export_plugin! now takes the impl block itself, so that every hook it implements is exported (with a list, ",
            "a hook left out was never called): write heimdall_plugin::export_plugin! { ",
            stringify!($name), ", impl Plugin for ", stringify!($plugin), " { ...the hooks... } }"
        ));
    };
}

/// Walks the impl block's tokens and collects the hooks it defines (`fn pre_hook`, ...) and whether it defines
/// `fn init`; method bodies are single token trees, so nothing inside them is mistaken for a method.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_scan {
    ({$($head:tt)*} [$($hook:ident)*] $init:ident) => {
        $crate::__export_impl!({$($head)*} [$($hook)*] $init);
    };
    ({$($head:tt)*} [$($hook:ident)*] $init:ident fn init $($rest:tt)*) => {
        $crate::__export_scan!({$($head)*} [$($hook)*] has_init $($rest)*);
    };
    ({$($head:tt)*} [$($hook:ident)*] $init:ident fn transport_interceptor $($rest:tt)*) => {
        $crate::__export_scan!({$($head)*} [$($hook)* transport_interceptor] $init $($rest)*);
    };
    ({$($head:tt)*} [$($hook:ident)*] $init:ident fn pre_hook $($rest:tt)*) => {
        $crate::__export_scan!({$($head)*} [$($hook)* pre_hook] $init $($rest)*);
    };
    ({$($head:tt)*} [$($hook:ident)*] $init:ident fn post_hook $($rest:tt)*) => {
        $crate::__export_scan!({$($head)*} [$($hook)* post_hook] $init $($rest)*);
    };
    ({$($head:tt)*} [$($hook:ident)*] $init:ident fn stream_chunk_hook $($rest:tt)*) => {
        $crate::__export_scan!({$($head)*} [$($hook)* stream_chunk_hook] $init $($rest)*);
    };
    ({$($head:tt)*} [$($hook:ident)*] $init:ident $skip:tt $($rest:tt)*) => {
        $crate::__export_scan!({$($head)*} [$($hook)*] $init $($rest)*);
    };
}

/// The impl block as written (with a `Default` init when it has none), and the exports of the hooks it defines.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_impl {
    ({$slot:ident, $plugin:ty, $name:literal, $trait:ident, {$($body:tt)*}, {$($extra:tt)*}} [$($hook:ident)*] has_init) => {
        impl $trait for $plugin {
            $($body)*
        }
        $crate::__export_plugin!($slot, $plugin, $name, [$($hook),*], { $($extra)* });
    };
    ({$slot:ident, $plugin:ty, $name:literal, $trait:ident, {$($body:tt)*}, {$($extra:tt)*}} [$($hook:ident)*] no_init) => {
        impl $trait for $plugin {
            /// No `fn init` in the block: the plugin takes no config and starts as `Default::default()`.
            fn init(_config: $crate::Value) -> $crate::Result<Self> {
                ::core::result::Result::Ok(<Self as ::core::default::Default>::default())
            }
            $($body)*
        }
        $crate::__export_plugin!($slot, $plugin, $name, [$($hook),*], { $($extra)* });
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin {
    ($slot:ident, $plugin:ty, $name:literal, [$($hook:ident),*], { $($extra:tt)* }) => {
        const _: () = {
            #[cfg(panic = "abort")]
            compile_error!(
                "Heimdall plugins must be built with panic = \"unwind\" (the default): the SDK turns panics into \
                 error statuses, which panic = \"abort\" makes impossible. Remove panic = \"abort\" from the profile."
            );

            const _: () = assert!(
                $crate::__rt::valid_name($name),
                "plugin name: 1 to 64 ASCII letters, digits, '-', '_' or '.'"
            );

            static PLUGIN: $crate::__rt::$slot<$plugin> = $crate::__rt::$slot::new();
            const NAME: &str = concat!($name, "\0");

            #[unsafe(no_mangle)]
            pub extern "C" fn heimdall_plugin_abi_version() -> u32 {
                $crate::ABI_VERSION
            }

            /// # Safety
            /// `data`/`len` must be a buffer this plugin handed out, freed once.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn heimdall_plugin_free(data: *mut u8, len: usize) {
                unsafe { $crate::__rt::free(data, len) }
            }

            #[unsafe(no_mangle)]
            #[allow(non_snake_case)]
            pub extern "C" fn GetName() -> *const ::core::ffi::c_char {
                NAME.as_ptr().cast()
            }

            /// # Safety
            /// Called by the host as heimdall_plugin.h says.
            #[unsafe(no_mangle)]
            #[allow(non_snake_case)]
            pub unsafe extern "C" fn Init(config: *const u8, config_len: usize, out: *mut $crate::__rt::Buf) -> i32 {
                unsafe { $crate::__rt::init(&PLUGIN, config, config_len, out) }
            }

            #[unsafe(no_mangle)]
            #[allow(non_snake_case)]
            pub extern "C" fn Cleanup() {
                $crate::__rt::cleanup(&PLUGIN, $name)
            }

            /// # Safety
            /// Called by the host as heimdall_plugin.h says: a table valid until Cleanup returns.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn heimdall_plugin_set_host(host: *const $crate::host::HostTable) {
                unsafe { $crate::host::__set_host(host) }
            }

            $( $crate::__export_hook!($hook, PLUGIN); )*

            $($extra)*
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_hook {
    (transport_interceptor, $slot:ident) => {
        /// # Safety
        /// Called by the host as heimdall_plugin.h says.
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub unsafe extern "C" fn TransportInterceptor(
            ctx: *const u8,
            ctx_len: usize,
            http: *const u8,
            http_len: usize,
            body: *const u8,
            body_len: usize,
            out: *mut $crate::__rt::Buf,
        ) -> i32 {
            unsafe { $crate::__rt::transport_interceptor(&$slot, ctx, ctx_len, http, http_len, body, body_len, out) }
        }
    };
    (pre_hook, $slot:ident) => {
        /// # Safety
        /// Called by the host as heimdall_plugin.h says.
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub unsafe extern "C" fn PreHook(
            ctx: *const u8,
            ctx_len: usize,
            request: *const u8,
            request_len: usize,
            out: *mut $crate::__rt::Buf,
        ) -> i32 {
            unsafe { $crate::__rt::pre_hook(&$slot, ctx, ctx_len, request, request_len, out) }
        }
    };
    (post_hook, $slot:ident) => {
        /// # Safety
        /// Called by the host as heimdall_plugin.h says.
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub unsafe extern "C" fn PostHook(
            ctx: *const u8,
            ctx_len: usize,
            response: *const u8,
            response_len: usize,
            error: *const u8,
            error_len: usize,
            out: *mut $crate::__rt::Buf,
        ) -> i32 {
            unsafe { $crate::__rt::post_hook(&$slot, ctx, ctx_len, response, response_len, error, error_len, out) }
        }
    };
    (stream_chunk_hook, $slot:ident) => {
        /// # Safety
        /// Called by the host as heimdall_plugin.h says.
        #[unsafe(no_mangle)]
        #[allow(non_snake_case)]
        pub unsafe extern "C" fn StreamChunkHook(
            ctx: *const u8,
            ctx_len: usize,
            chunk: *const u8,
            chunk_len: usize,
            out: *mut $crate::__rt::Buf,
        ) -> i32 {
            unsafe { $crate::__rt::stream_chunk_hook(&$slot, ctx, ctx_len, chunk, chunk_len, out) }
        }
    };
    ($other:ident, $slot:ident) => {
        compile_error!(concat!(
            "unknown hook `",
            stringify!($other),
            "`: the hooks are transport_interceptor, pre_hook, post_hook, stream_chunk_hook"
        ));
    };
}
