//! The host services' Rust API on the SDK's in-memory host: each status as an error (or as `None`/`false` where
//! Rust has a better word for it), TTLs, per-request state by the context's handle, metrics and log lines. One test
//! function: the host is a process-wide table, and a test taking it away must not race the others.

use std::time::Duration;

use heimdall_plugin::host::{self, memory, Counter, Histogram, Level, Status};
use heimdall_plugin::{kv, Ctx};

#[test]
fn host_services() {
    // Without a table (a gateway older than 1.2): every call says so.
    memory::uninstall();
    let err = kv().get("k").unwrap_err();
    assert_eq!(err.status, Status::Unavailable);
    assert!(err.to_string().contains("HEIMDALL_E_UNAVAILABLE") && err.to_string().contains("older than 1.2"), "{err}");
    assert!(host::require().unwrap_err().to_string().contains("needs host services (ABI 1.2)"));
    host::log(Level::Info, "dropped, not a crash");

    memory::install();
    host::require().unwrap();

    // The shared store.
    assert_eq!(kv().get("missing").unwrap(), None);
    let big = vec![b'v'; 1000]; // over the first read buffer: read again at its length
    kv().set("k", &big, Duration::from_secs(60)).unwrap();
    assert_eq!(kv().get("k").unwrap(), Some(big));
    kv().set("short", "x", Duration::from_micros(1)).unwrap(); // under a millisecond: one, never "no expiry"
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(kv().get("short").unwrap(), None);
    kv().set("empty", "", Duration::ZERO).unwrap();
    assert_eq!(kv().get("empty").unwrap(), Some(vec![]), "an empty value is a value");
    kv().delete("empty").unwrap();
    assert_eq!(kv().get("empty").unwrap(), None);
    let err = kv().set("k".repeat(513), "x", Duration::ZERO).unwrap_err();
    assert_eq!(err.status, Status::Limit);
    assert!(err.to_string().starts_with("heimdall: kv set \"kkk"), "{err}");
    assert_eq!(kv().set("", "x", Duration::ZERO).unwrap_err().status, Status::Invalid);
    assert_eq!(kv().incr("n", 1, Duration::from_secs(60)).unwrap(), 1);
    assert_eq!(kv().incr("n", 5, Duration::from_secs(60)).unwrap(), 6);
    kv().set("text", "abc", Duration::ZERO).unwrap();
    assert_eq!(kv().incr("text", 1, Duration::ZERO).unwrap_err().status, Status::Invalid);
    kv().set("max", i64::MAX.to_string(), Duration::ZERO).unwrap();
    assert_eq!(kv().incr("max", 1, Duration::ZERO).unwrap_err().status, Status::Limit);
    assert!(kv().cas("lock", None, "a", Duration::ZERO).unwrap(), "absent: written");
    assert!(!kv().cas("lock", None, "b", Duration::ZERO).unwrap(), "present: a conflict");
    assert!(kv().cas("lock", Some(b"a"), "c", Duration::ZERO).unwrap());
    assert!(!kv().cas("lock", Some(b"a"), "d", Duration::ZERO).unwrap());
    assert_eq!(kv().get("lock").unwrap().as_deref(), Some(&b"c"[..]));

    // Per-request state, by the handle the context starts with.
    let ctx = Ctx::new(br#"{"request_handle":7,"request_id":"r"}"#);
    assert_eq!(ctx.request_handle(), 7);
    assert_eq!(Ctx::new(br#"{"request_id":"r","request_handle":8}"#).request_handle(), 8);
    assert_eq!(ctx.state().get("k").unwrap(), None);
    ctx.state().set("k", "v").unwrap();
    assert_eq!(Ctx::new(br#"{"request_handle":7}"#).state().get("k").unwrap(), Some(b"v".to_vec()), "the next hook");
    assert_eq!(Ctx::new(br#"{"request_handle":9}"#).state().get("k").unwrap(), None, "another request");
    assert_eq!(ctx.state().set("big", vec![0u8; 64 << 10]).unwrap_err().status, Status::Limit);
    let err = Ctx::new(b"{}").state().set("k", "v").unwrap_err();
    assert_eq!(err.status, Status::Invalid);
    assert!(err.to_string().contains("no request_handle"), "{err}");
    ctx.state().remove("k").unwrap();
    assert_eq!(memory::state_keys(7), 0);

    // Metrics and the log.
    let hits = Counter::define("hits_total", "Hits.", &["model", "outcome"]).unwrap();
    hits.inc(&["gpt", "hit"]).unwrap();
    hits.add(2.0, &["gpt", "hit"]).unwrap();
    assert_eq!(memory::metric("hits_total", "gpt\nhit"), (3.0, 2));
    assert_eq!(hits.inc(&["gpt"]).unwrap_err().status, Status::Invalid);
    assert_eq!(hits.add(-1.0, &["gpt", "hit"]).unwrap_err().status, Status::Invalid);
    let sizes = Histogram::define("sizes", "Sizes.", &[10.0, 100.0], &[]).unwrap();
    sizes.observe(5.0, &[]).unwrap();
    assert_eq!(memory::metric("sizes", ""), (5.0, 1));
    assert_eq!(Counter::define("bad-name", "", &[]).unwrap_err().status, Status::Invalid);
    assert_eq!(Counter::define("c", "", &["a,b"]).unwrap_err().status, Status::Invalid);
    ctx.log(Level::Warn, "careful");
    host::log(Level::Info, "no request");
    let logs = memory::logs();
    assert_eq!(logs[logs.len() - 2..], [(7, Level::Warn, "careful".to_owned()), (0, Level::Info, "no request".to_owned())]);
}
