//! The exported C ABI, called the way the host calls it: raw pointers in, a zeroed heimdall_buf_t out, then
//! heimdall_plugin_free. One plugin per test binary (the symbol names are fixed), so everything is in this file.

use std::ffi::CStr;
use std::sync::Mutex;

use heimdall_plugin::__rt::Buf;
use heimdall_plugin::{
    json, ApiError, ChatRequest, ChatResponse, ChunkAction, Content, Ctx, HttpRequest, HttpResponse, Json,
    Plugin, PostAction, PostInput, PreAction, Result, StreamChunk, TransportAction, Value,
};

/// The tests share one plugin slot: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Counts how many times each hook parsed its input, to check the lazy path.
static PARSES: Mutex<u32> = Mutex::new(0);

struct Probe {
    prefix: String,
}

heimdall_plugin::export_plugin! {
    "probe",
    impl Plugin for Probe {
        fn init(config: Value) -> Result<Self> {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Config {
                #[serde(default)]
                prefix: String,
                #[serde(default)]
                refuse: bool,
            }
            let cfg: Config = heimdall_plugin::config(config)?;
            if cfg.refuse {
                return Err("refusing to start, as configured".into());
            }
            Ok(Probe { prefix: cfg.prefix })
        }

        fn transport_interceptor(
            &mut self,
            ctx: &Ctx,
            http: Json<HttpRequest>,
            body: Json<Value>,
        ) -> Result<TransportAction> {
            let http = http.get()?;
            if http.header("x-block").is_some() {
                return Ok(TransportAction::Respond(
                    HttpResponse::new(403, json!({"blocked": true})).with_header("x-reason", "test"),
                ));
            }
            ctx.set_value("body_len", body.raw().len());
            Ok(TransportAction::Continue.set_header("x-seen", "1").remove_header("x-drop"))
        }

        fn pre_hook(&mut self, ctx: &Ctx, request: Json<ChatRequest>) -> Result<PreAction> {
            let raw = request.as_str()?;
            if raw.contains("PANIC") {
                panic!("pre_hook was told to panic");
            }
            if raw.contains("FAIL") {
                return Err("told to fail".into());
            }
            if raw.contains("CACHED") {
                return Ok(PreAction::Response(ChatResponse::assistant("m", "from cache")));
            }
            if raw.contains("LIMIT") {
                return Ok(PreAction::Error(
                    ApiError::new(429, "slow down").with_code("rate_limited").allow_fallbacks(false),
                ));
            }
            if raw.contains("REWRITE") {
                *PARSES.lock().unwrap() += 1;
                let mut req = request.into_inner()?;
                for m in &mut req.messages {
                    if let Some(c) = m.content.as_mut() {
                        c.for_each_text_mut(|t| *t = format!("{}{}", self.prefix, t));
                    }
                }
                ctx.set_value("rewritten", true);
                return Ok(PreAction::Request(req));
            }
            if raw.contains("CTX") {
                let id = ctx.get()?.request_id.clone();
                ctx.set_value("seen_id", id);
                ctx.remove_value("old");
            }
            Ok(PreAction::Continue)
        }

        fn post_hook(&mut self, _ctx: &Ctx, result: PostInput) -> Result<PostAction> {
            match result {
                PostInput::Error(e) => {
                    let e = e.get()?;
                    if e.status_code == 502 {
                        return Ok(PostAction::Response(ChatResponse::assistant("m", "recovered")));
                    }
                    Ok(PostAction::Continue)
                }
                PostInput::Response(r) => {
                    if r.get()?.choices.is_empty() {
                        return Ok(PostAction::Error(ApiError::new(502, "empty response")));
                    }
                    Ok(PostAction::Continue)
                }
            }
        }

        fn stream_chunk_hook(&mut self, _ctx: &Ctx, chunk: Json<StreamChunk>) -> Result<ChunkAction> {
            let raw = chunk.as_str()?;
            if raw.contains("DROP") {
                return Ok(ChunkAction::Drop);
            }
            if raw.contains("ABORT") {
                return Ok(ChunkAction::Error(ApiError::new(400, "aborted")));
            }
            if raw.contains("UPPER") {
                let mut c = chunk.into_inner()?;
                for ch in &mut c.choices {
                    ch.delta.content = ch.delta.content.take().map(|s| s.to_uppercase());
                }
                return Ok(ChunkAction::Replace(c));
            }
            Ok(ChunkAction::Continue)
        }
    }
}


// --- a tiny host ---------------------------------------------------------------------------------------------

// The macro's exports are not nameable from Rust (they live in an anonymous const block, so they can't clash with
// the plugin's own items): link to them by symbol, as the host does.
#[allow(non_snake_case)]
unsafe extern "C" {
    fn heimdall_plugin_abi_version() -> u32;
    fn heimdall_plugin_free(data: *mut u8, len: usize);
    fn GetName() -> *const std::ffi::c_char;
    fn Cleanup();
    fn Init(config: *const u8, config_len: usize, out: *mut Buf) -> i32;
    fn TransportInterceptor(
        ctx: *const u8,
        ctx_len: usize,
        http: *const u8,
        http_len: usize,
        body: *const u8,
        body_len: usize,
        out: *mut Buf,
    ) -> i32;
    fn PreHook(ctx: *const u8, ctx_len: usize, request: *const u8, request_len: usize, out: *mut Buf) -> i32;
    fn PostHook(
        ctx: *const u8,
        ctx_len: usize,
        response: *const u8,
        response_len: usize,
        error: *const u8,
        error_len: usize,
        out: *mut Buf,
    ) -> i32;
    fn StreamChunkHook(ctx: *const u8, ctx_len: usize, chunk: *const u8, chunk_len: usize, out: *mut Buf) -> i32;
}

/// Copies the output and frees it, as the host does. Returns (status, output or None when empty).
fn take(status: i32, out: Buf) -> (i32, Option<String>) {
    if out.data.is_null() {
        assert_eq!(out.len, 0);
        return (status, None);
    }
    let bytes = unsafe { std::slice::from_raw_parts(out.data, out.len) }.to_vec();
    unsafe { heimdall_plugin_free(out.data, out.len) };
    (status, Some(String::from_utf8(bytes).unwrap()))
}

fn zero() -> Buf {
    Buf { data: std::ptr::null_mut(), len: 0 }
}

fn init(config: &str) -> (i32, Option<String>) {
    let mut out = zero();
    let status = unsafe { Init(config.as_ptr(), config.len(), &mut out) };
    take(status, out)
}

const CTX: &str = r#"{"request_id":"r1","route":"/v1/chat/completions","provider":"openai","model":"gpt-4o-mini","stream":false,"headers":{"user-agent":"t"},"values":{"old":1}}"#;

fn pre(request: &str) -> (i32, Option<String>) {
    let mut out = zero();
    let status = unsafe { PreHook(CTX.as_ptr(), CTX.len(), request.as_ptr(), request.len(), &mut out) };
    take(status, out)
}

fn post(response: &str, error: &str) -> (i32, Option<String>) {
    let mut out = zero();
    let status = unsafe {
        PostHook(CTX.as_ptr(), CTX.len(), response.as_ptr(), response.len(), error.as_ptr(), error.len(), &mut out)
    };
    take(status, out)
}

fn chunk(chunk: &str) -> (i32, Option<String>) {
    let mut out = zero();
    let status = unsafe { StreamChunkHook(CTX.as_ptr(), CTX.len(), chunk.as_ptr(), chunk.len(), &mut out) };
    take(status, out)
}

fn transport(http: &str, body: &str) -> (i32, Option<String>) {
    let mut out = zero();
    let status = unsafe {
        TransportInterceptor(CTX.as_ptr(), CTX.len(), http.as_ptr(), http.len(), body.as_ptr(), body.len(), &mut out)
    };
    take(status, out)
}

fn parse(s: &Option<String>) -> Value {
    serde_json::from_str(s.as_deref().expect("an output")).expect("JSON output")
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// --- tests ------------------------------------------------------------------------------------------------------

#[test]
fn version_and_name() {
    assert_eq!(unsafe { heimdall_plugin_abi_version() }, 0x0001_0002, "ABI 1.2");
    assert_eq!(heimdall_plugin::ABI_VERSION, 0x0001_0002);
    assert_eq!(unsafe { CStr::from_ptr(GetName()) }.to_str().unwrap(), "probe");
}

/// The SDK implements the ABI of the repository's header (outside the repository there is nothing to compare with).
#[test]
fn abi_version_matches_the_header() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../native/include/heimdall_plugin.h");
    let Ok(header) = std::fs::read_to_string(&path) else {
        eprintln!("skipped: {} is not beside the SDK", path.display());
        return;
    };
    let define = |name: &str| -> u32 {
        let prefix = format!("#define {name} ");
        let line = header.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {name}"));
        line.trim().parse().unwrap_or_else(|_| panic!("{name} is {line:?}"))
    };
    let header_version = (define("HEIMDALL_ABI_VERSION_MAJOR") << 16) | define("HEIMDALL_ABI_VERSION_MINOR");
    assert_eq!(heimdall_plugin::ABI_VERSION, header_version, "the SDK's ABI_VERSION and the header's");
    assert_eq!(unsafe { heimdall_plugin_abi_version() }, header_version);
}

/// A plugin exported without `concurrency = N` does not export heimdall_plugin_concurrency, which the host reads as one
/// call at a time. Checked on a real shared library the way the host loads it: the panicky example, which `cargo test`
/// builds beside the tests.
#[test]
fn without_opt_in_the_host_sees_one_call_at_a_time() {
    use std::ffi::{c_char, c_int, c_void, CString};
    unsafe extern "C" {
        fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
        fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
        fn dlerror() -> *const c_char;
    }
    const RTLD_NOW: c_int = 2; // Linux and macOS alike

    let ext = if cfg!(target_os = "macos") { "dylib" } else { "so" };
    let exe = std::env::current_exe().unwrap(); // <target>/<profile>/deps/abi-<hash>
    let lib = exe.parent().unwrap().parent().unwrap().join("examples").join(format!("libpanicky.{ext}"));
    if !lib.exists() {
        // `cargo test` builds the examples; `cargo test --test abi` does not.
        eprintln!("skipped: {} is not built (run all of cargo test)", lib.display());
        return;
    }
    let path = CString::new(lib.to_str().unwrap()).unwrap();
    let handle = unsafe { dlopen(path.as_ptr(), RTLD_NOW) };
    assert!(!handle.is_null(), "dlopen {}: {:?}", lib.display(), unsafe { CStr::from_ptr(dlerror()) });
    let sym = |name: &CStr| unsafe { dlsym(handle, name.as_ptr()) };
    let version = sym(c"heimdall_plugin_abi_version");
    assert!(!version.is_null());
    let version: extern "C" fn() -> u32 = unsafe { std::mem::transmute(version) };
    assert_eq!(version(), 0x0001_0002);
    assert!(sym(c"heimdall_plugin_concurrency").is_null(), "heimdall_plugin_concurrency is exported without opt-in");
    // The library stays loaded: the test process is about to end anyway.
}

#[test]
fn init_config_errors_are_messages() {
    let _g = lock();
    let (s, m) = init(r#"{"refuse": true}"#);
    assert_eq!((s, m.as_deref()), (1, Some("refusing to start, as configured")));
    let (s, m) = init(r#"{"colour": 1}"#);
    assert_eq!(s, 1);
    assert!(m.unwrap().starts_with("invalid config: unknown field `colour`"));
    let (s, m) = init("{not json");
    assert_eq!(s, 1);
    assert!(m.unwrap().starts_with("config is not valid JSON"));
    // Empty config is {}.
    assert_eq!(init(""), (0, None));
}

#[test]
fn hooks_before_init_fail_cleanly() {
    let _g = lock();
    unsafe { Cleanup() };
    let (s, m) = pre(r#"{"model":"m","messages":[]}"#);
    assert_eq!(s, 1);
    assert!(m.unwrap().contains("not initialised"));
    unsafe { Cleanup() }; // twice is harmless
}

#[test]
fn pre_hook_actions() {
    let _g = lock();
    assert_eq!(init(r#"{"prefix": ">> "}"#), (0, None));

    // Continue, no context: empty output, nothing parsed.
    let before = *PARSES.lock().unwrap();
    assert_eq!(pre(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#), (0, None));
    assert_eq!(*PARSES.lock().unwrap(), before);

    // Context only.
    let (s, m) = pre(r#"{"model":"m","messages":[{"role":"user","content":"CTX"}]}"#);
    assert_eq!(s, 0);
    assert_eq!(parse(&m), json!({"context": {"seen_id": "r1", "old": null}}));

    // Rewrite keeps unknown fields, key order, content parts and null content.
    let req = r#"{"model":"m","temperature":0.7,"messages":[{"role":"system","content":"REWRITE"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}}],"name":"bob"},{"role":"assistant","content":null,"tool_calls":[{"id":"t"}]}],"response_format":{"type":"json_schema","json_schema":{"schema":{"properties":{"zeta":{},"alpha":{}}}}},"stream":true}"#;
    let (s, m) = pre(req);
    assert_eq!(s, 0);
    let out = m.unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["context"], json!({"rewritten": true}));
    let r = &v["request"];
    assert_eq!(r["temperature"], json!(0.7));
    assert_eq!(r["stream"], json!(true));
    assert_eq!(r["messages"][0]["content"], json!(">> REWRITE"));
    assert_eq!(r["messages"][1]["content"][0], json!({"type": "text", "text": ">> a"}));
    assert_eq!(r["messages"][1]["content"][1], json!({"type": "image_url", "image_url": {"url": "x"}}));
    assert_eq!(r["messages"][1]["name"], json!("bob"));
    assert_eq!(r["messages"][2], json!({"role": "assistant", "content": null, "tool_calls": [{"id": "t"}]}));
    // "zeta" still comes before "alpha" (preserve_order).
    assert!(out.find("\"zeta\"").unwrap() < out.find("\"alpha\"").unwrap());

    // Short-circuits.
    let (s, m) = pre(r#"{"messages":[{"role":"user","content":"CACHED"}]}"#);
    assert_eq!(s, 0);
    let v = parse(&m);
    assert_eq!(v["response"]["choices"][0]["message"]["content"], json!("from cache"));
    assert_eq!(v["response"]["object"], json!("chat.completion"));
    let (s, m) = pre(r#"{"messages":[{"role":"user","content":"LIMIT"}]}"#);
    assert_eq!(s, 0);
    assert_eq!(
        parse(&m),
        json!({"error": {"status_code": 429, "message": "slow down", "type": "rate_limit_error", "code": "rate_limited", "allow_fallbacks": false}})
    );

    // Failures.
    assert_eq!(pre(r#"{"messages":[{"role":"user","content":"FAIL"}]}"#), (1, Some("told to fail".into())));
    let (s, m) = pre(r#"{"messages":"REWRITE"}"#);
    assert_eq!(s, 1);
    assert!(m.unwrap().starts_with("invalid JSON input"));
}

#[test]
fn panics_become_error_status() {
    let _g = lock();
    assert_eq!(init("{}"), (0, None));
    for _ in 0..3 {
        let (s, m) = pre(r#"{"messages":[{"role":"user","content":"PANIC"}]}"#);
        assert_eq!(s, 1);
        let m = m.unwrap();
        // The first line is the message; a backtrace follows when RUST_BACKTRACE is set.
        let m = m.lines().next().unwrap();
        assert!(m.starts_with("PreHook panicked at "), "{m}");
        assert!(m.contains("tests/abi.rs:"), "{m}");
        assert!(m.ends_with(": pre_hook was told to panic"), "{m}");
    }
    // The plugin is still there afterwards (the mutex was poisoned by the panic).
    assert_eq!(pre(r#"{"messages":[{"role":"user","content":"hi"}]}"#), (0, None));
}

#[test]
fn post_hook_actions() {
    let _g = lock();
    assert_eq!(init("{}"), (0, None));
    let resp = r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#;
    assert_eq!(post(resp, ""), (0, None));
    let (s, m) = post(r#"{"choices":[]}"#, "");
    assert_eq!(s, 0);
    assert_eq!(parse(&m)["error"]["type"], json!("server_error"));
    let err = r#"{"status_code":502,"message":"upstream","type":"upstream_error","code":"HEIMDALL_ERR_UPSTREAM","allow_fallbacks":true}"#;
    let (s, m) = post("", err);
    assert_eq!(s, 0);
    assert_eq!(parse(&m)["response"]["choices"][0]["message"]["content"], json!("recovered"));
    assert_eq!(post("", r#"{"status_code":400,"message":"bad"}"#), (0, None));
}

#[test]
fn chunk_actions() {
    let _g = lock();
    assert_eq!(init("{}"), (0, None));
    let c = r#"{"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"UPPER me"},"finish_reason":null}]}"#;
    let (s, m) = chunk(c);
    assert_eq!(s, 0);
    let v = parse(&m);
    assert_eq!(v["chunk"]["choices"][0]["delta"], json!({"content": "UPPER ME"}));
    assert_eq!(v["chunk"]["choices"][0]["finish_reason"], Value::Null);
    assert_eq!(chunk(r#"{"choices":[{"delta":{"content":"DROP"}}]}"#), (0, Some(r#"{"drop":true}"#.into())));
    let (s, m) = chunk(r#"{"choices":[{"delta":{"content":"ABORT"}}]}"#);
    assert_eq!(s, 0);
    assert_eq!(parse(&m)["error"]["message"], json!("aborted"));
    assert_eq!(chunk(r#"{"choices":[{"delta":{"content":"x"}}]}"#), (0, None));
}

#[test]
fn transport_actions() {
    let _g = lock();
    assert_eq!(init("{}"), (0, None));
    let (s, m) = transport(r#"{"method":"POST","path":"/v1/chat/completions","headers":{"x-block":"1"}}"#, "{}");
    assert_eq!(s, 0);
    assert_eq!(
        parse(&m),
        json!({"response": {"status_code": 403, "headers": {"x-reason": "test"}, "body": {"blocked": true}}})
    );
    let (s, m) = transport(r#"{"method":"POST","path":"/v1/chat/completions","headers":{}}"#, r#"{"a":1}"#);
    assert_eq!(s, 0);
    assert_eq!(parse(&m), json!({"headers": {"x-seen": "1", "x-drop": null}, "context": {"body_len": 7}}));
}

#[test]
fn null_pointers_are_empty_inputs() {
    let _g = lock();
    assert_eq!(init("{}"), (0, None));
    let mut out = zero();
    let status = unsafe { PostHook(std::ptr::null(), 0, std::ptr::null(), 0, std::ptr::null(), 0, &mut out) };
    let (s, m) = take(status, out);
    assert_eq!(s, 1, "an empty error input is not JSON");
    assert!(m.unwrap().starts_with("invalid JSON input"));
    let status = unsafe { Init(std::ptr::null(), 0, std::ptr::null_mut()) };
    assert_eq!(status, 0, "a NULL out is tolerated");
}

#[test]
fn content_helpers() {
    let mut c = Content::Parts(vec![
        serde_json::from_value(json!({"type": "text", "text": "a"})).unwrap(),
        serde_json::from_value(json!({"type": "image_url", "image_url": {"url": "x"}})).unwrap(),
        serde_json::from_value(json!({"type": "text", "text": "b"})).unwrap(),
    ]);
    assert_eq!(c.text(), "a\nb");
    c.for_each_text_mut(|t| t.push('!'));
    assert_eq!(c.text(), "a!\nb!");
    assert_eq!(Content::from("x").text(), "x");
}
