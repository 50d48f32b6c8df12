//! A `ConcurrentPlugin` exported with `concurrency = N` (ABI 1.1): heimdall_plugin_concurrency returns N, and hooks
//! called from several threads at once do run at the same time. One plugin per test binary (the symbol names are
//! fixed), hence this file beside tests/abi.rs.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use heimdall_plugin::__rt::Buf;
use heimdall_plugin::{ChatRequest, ConcurrentPlugin, Ctx, Json, PreAction, Result, Value};

const THREADS: u32 = 8;

/// A GATHER PreHook waits, up to a deadline, until THREADS calls are in it at once, and reports the most it saw: calls
/// made one at a time would each wait out the deadline, and see 1.
struct Gather {
    in_flight: AtomicU32,
    peak: AtomicU32,
    calls: Mutex<u32>,
}

heimdall_plugin::export_plugin! {
    "gather", concurrency = 64,
    impl ConcurrentPlugin for Gather {
        fn init(_config: Value) -> Result<Self> {
            Ok(Gather { in_flight: AtomicU32::new(0), peak: AtomicU32::new(0), calls: Mutex::new(0) })
        }

        fn pre_hook(&self, ctx: &Ctx, request: Json<ChatRequest>) -> Result<PreAction> {
            let raw = request.as_str()?;
            if raw.contains("PANIC") {
                panic!("told to panic");
            }
            if !raw.contains("GATHER") {
                return Ok(PreAction::Continue);
            }
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.in_flight.load(Ordering::SeqCst) < THREADS && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            let nth = {
                let mut calls = self.calls.lock().unwrap();
                *calls += 1;
                *calls
            };
            ctx.set_value("nth", nth);
            ctx.set_value("peak", self.peak.load(Ordering::SeqCst));
            // Stay until every call has seen the peak, so none leaves before the others arrived.
            std::thread::sleep(Duration::from_millis(20));
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(PreAction::Continue)
        }
    }
}


unsafe extern "C" {
    fn heimdall_plugin_abi_version() -> u32;
    fn heimdall_plugin_concurrency() -> u32;
    fn heimdall_plugin_free(data: *mut u8, len: usize);
    fn Init(config: *const u8, config_len: usize, out: *mut Buf) -> i32;
    fn Cleanup();
    fn PreHook(ctx: *const u8, ctx_len: usize, request: *const u8, request_len: usize, out: *mut Buf) -> i32;
}

fn pre(request: &str) -> (i32, Option<String>) {
    let ctx = r#"{"request_id":"r1"}"#;
    let mut out = Buf { data: std::ptr::null_mut(), len: 0 };
    let status = unsafe { PreHook(ctx.as_ptr(), ctx.len(), request.as_ptr(), request.len(), &mut out) };
    if out.data.is_null() {
        return (status, None);
    }
    let text = String::from_utf8(unsafe { std::slice::from_raw_parts(out.data, out.len) }.to_vec()).unwrap();
    unsafe { heimdall_plugin_free(out.data, out.len) };
    (status, Some(text))
}

#[test]
fn concurrent_plugin() {
    assert_eq!(unsafe { heimdall_plugin_abi_version() }, 0x0001_0002);
    assert_eq!(unsafe { heimdall_plugin_concurrency() }, 64, "the number given to export_plugin!");

    let mut out = Buf { data: std::ptr::null_mut(), len: 0 };
    assert_eq!(unsafe { Init(b"{}".as_ptr(), 2, &mut out) }, 0);

    // THREADS calls at once, each on its own thread, as the host's worker threads make them.
    let outputs: Vec<(i32, Option<String>)> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..THREADS).map(|_| s.spawn(|| pre(r#"{"model":"GATHER","messages":[]}"#))).collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let contexts: Vec<Value> = outputs
        .iter()
        .map(|(status, out)| {
            assert_eq!(*status, 0, "{out:?}");
            let v: Value = heimdall_plugin::serde_json::from_str(out.as_deref().unwrap()).unwrap();
            v["context"].clone()
        })
        .collect();
    let peak = contexts.iter().map(|c| c["peak"].as_u64().unwrap()).max().unwrap();
    assert_eq!(peak, THREADS as u64, "the calls ran at the same time");
    let mut nths: Vec<u64> = contexts.iter().map(|c| c["nth"].as_u64().unwrap()).collect();
    nths.sort();
    assert_eq!(nths, (1..=THREADS as u64).collect::<Vec<_>>(), "each call got its own context");

    // A panic in one call is that call's failure; the shared value stays usable (a read lock is not poisoned).
    let (status, msg) = pre(r#"{"messages":[{"role":"user","content":"PANIC"}]}"#);
    assert_eq!(status, 1);
    assert!(msg.unwrap().starts_with("PreHook panicked at "));
    assert_eq!(pre(r#"{"model":"m","messages":[]}"#).0, 0);

    unsafe { Cleanup() };
    let (status, msg) = pre(r#"{"model":"m","messages":[]}"#);
    assert_eq!(status, 1);
    assert!(msg.unwrap().contains("not initialised"));
}
