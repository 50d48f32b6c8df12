//! The runtime behind `export_plugin!`: buffers, the plugin slot, panic containment, and the glue from the C ABI to
//! the typed hooks. Not a public API (the macro calls it); it may change in any release.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard, Once, PoisonError, RwLock};

use serde::Serialize;
use serde_json::Value;

use crate::hook::{ChunkAction, Ctx, Json, PostAction, PostInput, PreAction, Result, TransportAction};
use crate::types::{ApiError, ChatRequest, ChatResponse, HttpRequest, HttpResponse, Map, StreamChunk};
use crate::{ConcurrentPlugin, Plugin, HEIMDALL_ERROR, HEIMDALL_OK};

/// heimdall_buf_t.
#[repr(C)]
#[derive(Debug)]
pub struct Buf {
    pub data: *mut u8,
    pub len: usize,
}

/// Where a [`Plugin`] value lives between calls: created by Init, dropped by Cleanup.
///
/// The host calls one function at a time, but maybe from different OS threads, so a mutex (never contended). A hook
/// that panicked poisons it; the next call takes the value anyway: the plugin chose to keep its state usable or not,
/// the gateway must not lose the plugin for it.
pub struct Slot<P: Plugin>(Mutex<Option<P>>);

impl<P: Plugin> Slot<P> {
    pub const fn new() -> Self {
        Slot(Mutex::new(None))
    }

    fn lock(&self) -> MutexGuard<'_, Option<P>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a hook on the plugin, or fails when there is none.
    fn with<T>(&self, f: impl FnOnce(&mut P) -> Result<T>) -> Result<T> {
        f(self.lock().as_mut().ok_or(NOT_INITIALISED)?)
    }
}

impl<P: Plugin> Default for Slot<P> {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a [`ConcurrentPlugin`] value lives (`export_plugin!` with `concurrency = N`): hooks share it through the read
/// side of a lock, so they run at the same time; Init and Cleanup, never concurrent with a hook, take the write side.
/// A panicking hook does not poison a read lock.
pub struct SharedSlot<P: ConcurrentPlugin>(RwLock<Option<P>>);

impl<P: ConcurrentPlugin> SharedSlot<P> {
    pub const fn new() -> Self {
        SharedSlot(RwLock::new(None))
    }

    /// Runs a hook on the plugin, or fails when there is none.
    fn with<T>(&self, f: impl FnOnce(&P) -> Result<T>) -> Result<T> {
        f(self.0.read().unwrap_or_else(PoisonError::into_inner).as_ref().ok_or(NOT_INITIALISED)?)
    }

    fn replace(&self, plugin: Option<P>) -> Option<P> {
        std::mem::replace(&mut *self.0.write().unwrap_or_else(PoisonError::into_inner), plugin)
    }
}

impl<P: ConcurrentPlugin> Default for SharedSlot<P> {
    fn default() -> Self {
        Self::new()
    }
}

/// What the glue below needs of a slot: create and drop the plugin, and run its hooks. One implementation per way of
/// holding the plugin, so the exports are the same code for both.
pub trait Store: Sync {
    fn init(&self, config: Value) -> Result<()>;
    fn cleanup(&self);
    fn transport_interceptor(
        &self,
        ctx: &Ctx<'_>,
        http: Json<'_, HttpRequest>,
        body: Json<'_, Value>,
    ) -> Result<TransportAction>;
    fn pre_hook(&self, ctx: &Ctx<'_>, request: Json<'_, ChatRequest>) -> Result<PreAction>;
    fn post_hook(&self, ctx: &Ctx<'_>, result: PostInput<'_>) -> Result<PostAction>;
    fn stream_chunk_hook(&self, ctx: &Ctx<'_>, chunk: Json<'_, StreamChunk>) -> Result<ChunkAction>;
}

impl<P: Plugin> Store for Slot<P> {
    fn init(&self, config: Value) -> Result<()> {
        let plugin = P::init(config)?;
        let previous = self.lock().replace(plugin);
        if let Some(mut previous) = previous {
            previous.cleanup();
        }
        Ok(())
    }

    fn cleanup(&self) {
        let plugin = self.lock().take();
        if let Some(mut plugin) = plugin {
            plugin.cleanup();
        }
    }

    fn transport_interceptor(
        &self,
        ctx: &Ctx<'_>,
        http: Json<'_, HttpRequest>,
        body: Json<'_, Value>,
    ) -> Result<TransportAction> {
        self.with(|p| p.transport_interceptor(ctx, http, body))
    }

    fn pre_hook(&self, ctx: &Ctx<'_>, request: Json<'_, ChatRequest>) -> Result<PreAction> {
        self.with(|p| p.pre_hook(ctx, request))
    }

    fn post_hook(&self, ctx: &Ctx<'_>, result: PostInput<'_>) -> Result<PostAction> {
        self.with(|p| p.post_hook(ctx, result))
    }

    fn stream_chunk_hook(&self, ctx: &Ctx<'_>, chunk: Json<'_, StreamChunk>) -> Result<ChunkAction> {
        self.with(|p| p.stream_chunk_hook(ctx, chunk))
    }
}

impl<P: ConcurrentPlugin> Store for SharedSlot<P> {
    fn init(&self, config: Value) -> Result<()> {
        let plugin = P::init(config)?;
        if let Some(mut previous) = self.replace(Some(plugin)) {
            previous.cleanup();
        }
        Ok(())
    }

    fn cleanup(&self) {
        if let Some(mut plugin) = self.replace(None) {
            plugin.cleanup();
        }
    }

    fn transport_interceptor(
        &self,
        ctx: &Ctx<'_>,
        http: Json<'_, HttpRequest>,
        body: Json<'_, Value>,
    ) -> Result<TransportAction> {
        self.with(|p| p.transport_interceptor(ctx, http, body))
    }

    fn pre_hook(&self, ctx: &Ctx<'_>, request: Json<'_, ChatRequest>) -> Result<PreAction> {
        self.with(|p| p.pre_hook(ctx, request))
    }

    fn post_hook(&self, ctx: &Ctx<'_>, result: PostInput<'_>) -> Result<PostAction> {
        self.with(|p| p.post_hook(ctx, result))
    }

    fn stream_chunk_hook(&self, ctx: &Ctx<'_>, chunk: Json<'_, StreamChunk>) -> Result<ChunkAction> {
        self.with(|p| p.stream_chunk_hook(ctx, chunk))
    }
}

/// A plugin name: 1 to 64 ASCII letters, digits, '-', '_' or '.' (checked at compile time by the macro).
pub const fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 64 {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.') {
            return false;
        }
        i += 1;
    }
    true
}

/// An input buffer as a slice, valid for the call. NULL or len 0 is the empty slice.
///
/// # Safety
/// `ptr` must point to `len` readable bytes for the duration of the call, or be NULL.
unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// Hands bytes to the host: a leaked `Box<[u8]>`, released by `free` with the same length. Nothing is written for
/// empty bytes (an empty output means "continue unchanged").
///
/// # Safety
/// `out` must be NULL or point to a writable heimdall_buf_t.
unsafe fn write_out(out: *mut Buf, bytes: Vec<u8>) {
    if out.is_null() || bytes.is_empty() {
        return;
    }
    let boxed: Box<[u8]> = bytes.into_boxed_slice();
    let len = boxed.len();
    let data = Box::into_raw(boxed) as *mut u8;
    unsafe {
        (*out).data = data;
        (*out).len = len;
    }
}

/// heimdall_plugin_free: rebuilds the `Box<[u8]>` that `write_out` leaked and drops it.
///
/// # Safety
/// `data`/`len` must come from `write_out`, and be freed once.
pub unsafe fn free(data: *mut u8, len: usize) {
    if data.is_null() {
        return;
    }
    // Dropping a Box<[u8]> cannot panic; nothing to catch.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, len)) });
}

// ---------------------------------------------------------------------------------------------------------------
// Panics
// ---------------------------------------------------------------------------------------------------------------
//
// Every export runs the plugin's code inside `catch_unwind`: a panic must never unwind into the host (since Rust 1.81
// that aborts the process, the whole gateway). The panic becomes HEIMDALL_ERROR with "panicked at FILE:LINE:COL: MSG"
// as the output, which the host logs under the plugin's name.
//
// The SDK installs a panic hook (once, process-wide; a cdylib has its own copy of std, so this touches neither the
// host nor other Rust plugins) that, for a panic inside a hook call, records the location (and a backtrace when
// RUST_BACKTRACE is set) instead of printing to stderr: the message reaches the gateway's log through the ABI, so the
// default hook's stderr line would only be a second, unstructured copy. Panics elsewhere (threads the plugin spawned,
// code outside a hook) still go to the previous hook, the default one unless the plugin set its own.

thread_local! {
    static GUARD_DEPTH: Cell<u32> = const { Cell::new(0) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static PANIC_HOOK: Once = Once::new();

fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let guarded = GUARD_DEPTH.try_with(|d| d.get() > 0).unwrap_or(false);
            if !guarded {
                return previous(info);
            }
            let mut msg = String::from("panicked");
            if let Some(loc) = info.location() {
                msg.push_str(&format!(" at {}:{}:{}", loc.file(), loc.line(), loc.column()));
            }
            msg.push_str(": ");
            msg.push_str(payload_str(info.payload()).unwrap_or("Box<dyn Any>"));
            let backtrace = Backtrace::capture();
            if backtrace.status() == BacktraceStatus::Captured {
                msg.push_str(&format!("\nstack backtrace:\n{backtrace}"));
            }
            let _ = LAST_PANIC.try_with(|last| *last.borrow_mut() = Some(msg));
        }));
    });
}

fn payload_str(payload: &(dyn Any + Send)) -> Option<&str> {
    payload.downcast_ref::<&str>().copied().or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Runs `f`, catching panics. The message is what the panic hook recorded (with the location), or the payload.
fn catch<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    install_panic_hook();
    LAST_PANIC.with(|last| last.borrow_mut().take());
    GUARD_DEPTH.with(|d| d.set(d.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    GUARD_DEPTH.with(|d| d.set(d.get() - 1));
    match result {
        Ok(v) => Ok(v),
        Err(payload) => {
            let recorded = LAST_PANIC.with(|last| last.borrow_mut().take());
            let msg =
                recorded.unwrap_or_else(|| format!("panicked: {}", payload_str(&*payload).unwrap_or("Box<dyn Any>")));
            // A payload whose Drop panics would unwind from here: drop it under catch_unwind too, and leak the
            // (pathological) second payload rather than risk anything.
            if let Err(second) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                std::mem::forget(second);
            }
            Err(msg)
        }
    }
}

/// Runs a hook body: `Ok(None)` is OK with no output, `Ok(Some(bytes))` is OK with an action, `Err` and panics are
/// HEIMDALL_ERROR with the message as output. Everything the plugin's code does, formatting its error included, runs
/// inside the catch.
///
/// # Safety
/// `out` must be NULL or point to a writable heimdall_buf_t.
unsafe fn run(export: &str, out: *mut Buf, f: impl FnOnce() -> Result<Option<Vec<u8>>>) -> i32 {
    let outcome = catch(|| match f() {
        Ok(bytes) => (HEIMDALL_OK, bytes),
        Err(e) => {
            let mut msg = e.to_string();
            if msg.is_empty() {
                msg = format!("{export} failed");
            }
            (HEIMDALL_ERROR, Some(msg.into_bytes()))
        }
    });
    let (status, bytes) = outcome.unwrap_or_else(|msg| (HEIMDALL_ERROR, Some(format!("{export} {msg}").into_bytes())));
    if let Some(bytes) = bytes {
        unsafe { write_out(out, bytes) };
    }
    status
}

const NOT_INITIALISED: &str = "the plugin is not initialised (Init failed or was not called, or Cleanup ran)";

// ---------------------------------------------------------------------------------------------------------------
// Actions as JSON
// ---------------------------------------------------------------------------------------------------------------

/// The action object a hook hands back. Absent fields are not written.
#[derive(Serialize)]
struct Envelope<'x, R: Serialize = ChatResponse> {
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<&'x ChatRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<&'x R>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'x ApiError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chunk: Option<&'x StreamChunk>,
    #[serde(skip_serializing_if = "Option::is_none")]
    drop: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<&'x Map>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'x Value>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    context: Map,
}

impl<R: Serialize> Default for Envelope<'_, R> {
    fn default() -> Self {
        Envelope {
            request: None,
            response: None,
            error: None,
            chunk: None,
            drop: None,
            headers: None,
            body: None,
            context: Map::new(),
        }
    }
}

impl<R: Serialize> Envelope<'_, R> {
    fn is_empty(&self) -> bool {
        self.request.is_none()
            && self.response.is_none()
            && self.error.is_none()
            && self.chunk.is_none()
            && self.drop.is_none()
            && self.headers.is_none()
            && self.body.is_none()
            && self.context.is_empty()
    }

    /// None for "continue unchanged" (empty output), else the JSON bytes.
    fn encode(&self) -> Result<Option<Vec<u8>>> {
        if self.is_empty() {
            return Ok(None);
        }
        Ok(Some(serde_json::to_vec(self)?))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The exports
// ---------------------------------------------------------------------------------------------------------------

/// Init: parses the config ({} when empty) and creates the plugin. A second Init replaces (and cleans up) the first.
///
/// # Safety
/// As heimdall_plugin.h says for Init.
pub unsafe fn init<S: Store>(slot: &S, config: *const u8, config_len: usize, out: *mut Buf) -> i32 {
    let config = unsafe { input(config, config_len) };
    unsafe {
        run("Init", out, || {
            let value = if config.iter().all(u8::is_ascii_whitespace) {
                Value::Object(Map::new())
            } else {
                serde_json::from_slice(config).map_err(|e| format!("config is not valid JSON: {e}"))?
            };
            slot.init(value)?;
            Ok(None)
        })
    }
}

/// Cleanup: calls the plugin's `cleanup` and drops it. A panic there has nowhere to go but stderr.
pub fn cleanup<S: Store>(slot: &S, name: &str) {
    let result = catch(|| slot.cleanup());
    if let Err(msg) = result {
        eprintln!("heimdall plugin {name}: Cleanup {msg}");
    }
}

/// # Safety
/// As heimdall_plugin.h says for TransportInterceptor.
#[allow(clippy::too_many_arguments)]
pub unsafe fn transport_interceptor<S: Store>(
    slot: &S,
    ctx: *const u8,
    ctx_len: usize,
    http: *const u8,
    http_len: usize,
    body: *const u8,
    body_len: usize,
    out: *mut Buf,
) -> i32 {
    let (ctx, http, body) = unsafe { (input(ctx, ctx_len), input(http, http_len), input(body, body_len)) };
    unsafe {
        run("TransportInterceptor", out, || {
            let ctx = Ctx::new(ctx);
            let action = slot.transport_interceptor(&ctx, Json::new(http), Json::new(body))?;
            let mut env: Envelope<'_, HttpResponse> = Envelope::default();
            match &action {
                TransportAction::Continue => {}
                TransportAction::Rewrite { headers, body } => {
                    env.headers = (!headers.is_empty()).then_some(headers);
                    env.body = body.as_ref();
                }
                TransportAction::Respond(response) => env.response = Some(response),
            }
            if !matches!(action, TransportAction::Respond(_)) {
                env.context = ctx.take_values();
            }
            env.encode()
        })
    }
}

/// # Safety
/// As heimdall_plugin.h says for PreHook.
pub unsafe fn pre_hook<S: Store>(
    slot: &S,
    ctx: *const u8,
    ctx_len: usize,
    request: *const u8,
    request_len: usize,
    out: *mut Buf,
) -> i32 {
    let (ctx, request) = unsafe { (input(ctx, ctx_len), input(request, request_len)) };
    unsafe {
        run("PreHook", out, || {
            let ctx = Ctx::new(ctx);
            let action = slot.pre_hook(&ctx, Json::new(request))?;
            let mut env: Envelope<'_> = Envelope { context: ctx.take_values(), ..Envelope::default() };
            match &action {
                PreAction::Continue => {}
                PreAction::Request(r) => env.request = Some(r),
                PreAction::Response(r) => env.response = Some(r),
                PreAction::Error(e) => env.error = Some(e),
            }
            env.encode()
        })
    }
}

/// # Safety
/// As heimdall_plugin.h says for PostHook.
#[allow(clippy::too_many_arguments)]
pub unsafe fn post_hook<S: Store>(
    slot: &S,
    ctx: *const u8,
    ctx_len: usize,
    response: *const u8,
    response_len: usize,
    error: *const u8,
    error_len: usize,
    out: *mut Buf,
) -> i32 {
    let (ctx, response, error) =
        unsafe { (input(ctx, ctx_len), input(response, response_len), input(error, error_len)) };
    unsafe {
        run("PostHook", out, || {
            let ctx = Ctx::new(ctx);
            let result = if response.is_empty() {
                PostInput::Error(Json::new(error))
            } else {
                PostInput::Response(Json::new(response))
            };
            let action = slot.post_hook(&ctx, result)?;
            let mut env: Envelope<'_> = Envelope { context: ctx.take_values(), ..Envelope::default() };
            match &action {
                PostAction::Continue => {}
                PostAction::Response(r) => env.response = Some(r),
                PostAction::Error(e) => env.error = Some(e),
            }
            env.encode()
        })
    }
}

/// # Safety
/// As heimdall_plugin.h says for StreamChunkHook.
pub unsafe fn stream_chunk_hook<S: Store>(
    slot: &S,
    ctx: *const u8,
    ctx_len: usize,
    chunk: *const u8,
    chunk_len: usize,
    out: *mut Buf,
) -> i32 {
    let (ctx, chunk) = unsafe { (input(ctx, ctx_len), input(chunk, chunk_len)) };
    unsafe {
        run("StreamChunkHook", out, || {
            let action = slot.stream_chunk_hook(&Ctx::new(ctx), Json::new(chunk))?;
            let mut env: Envelope<'_> = Envelope::default();
            match &action {
                ChunkAction::Continue => {}
                ChunkAction::Replace(c) => env.chunk = Some(c),
                ChunkAction::Drop => env.drop = Some(true),
                ChunkAction::Error(e) => env.error = Some(e),
            }
            env.encode()
        })
    }
}
