//! Host services (ABI 1.2): log through the gateway's logger, define and record metrics in its `/metrics`, keep
//! per-request state across a request's hooks, and use the key-value store shared by every worker and, with Redis,
//! every gateway.
//!
//! The gateway hands its table of services to `heimdall_plugin_set_host` (exported by [`export_plugin!`]) before
//! `init`. Without it (a gateway older than ABI 1.2) every call answers [`Status::Unavailable`], and [`require`]
//! gives the versioned error to refuse `init` with.
//!
//! ```no_run
//! use std::time::Duration;
//! use heimdall_plugin::host::{self, Counter, Level};
//!
//! # fn demo(ctx: &heimdall_plugin::Ctx) -> heimdall_plugin::Result<()> {
//! let hits = Counter::define("hits_total", "Requests seen.", &["model"])?;      // in init
//! hits.inc(&["gpt-4o"])?;                                                        // in a hook
//! ctx.log(Level::Info, "seen");                                                  // with the request id
//! ctx.state().set("buffer", b"4111 11")?;                                       // this request only
//! let n = heimdall_plugin::kv().incr("rl:team-a", 1, Duration::from_secs(60))?;  // shared by every process
//! # Ok(()) }
//! ```
//!
//! Call the services from the hook's own thread while it runs (or from `init`), never from a thread of your own: in
//! the gateway's inline mode a call is served by the event loop, which the hook is holding.

use std::fmt;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::Duration;

use crate::hook::Ctx;

/// `heimdall_host_t` of `native/include/heimdall_plugin.h`, member for member. The table is the host's: the SDK
/// keeps the pointer, never a copy (later minor versions append members).
#[repr(C)]
pub struct HostTable {
    pub size: u32,
    pub abi_version: u32,
    pub log: Option<unsafe extern "C" fn(request: u64, level: i32, msg: *const u8, msg_len: usize)>,
    pub metric_define: Option<
        unsafe extern "C" fn(
            kind: i32,
            name: *const u8,
            name_len: usize,
            help: *const u8,
            help_len: usize,
            labels: *const u8,
            labels_len: usize,
            buckets: *const f64,
            buckets_len: usize,
            id: *mut u32,
        ) -> i32,
    >,
    pub metric_record:
        Option<unsafe extern "C" fn(id: u32, label_values: *const u8, label_values_len: usize, value: f64) -> i32>,
    pub state_get: Option<
        unsafe extern "C" fn(
            request: u64,
            key: *const u8,
            key_len: usize,
            value: *mut u8,
            cap: usize,
            value_len: *mut usize,
        ) -> i32,
    >,
    pub state_set: Option<
        unsafe extern "C" fn(request: u64, key: *const u8, key_len: usize, value: *const u8, value_len: usize) -> i32,
    >,
    pub kv_get: Option<
        unsafe extern "C" fn(key: *const u8, key_len: usize, value: *mut u8, cap: usize, value_len: *mut usize) -> i32,
    >,
    pub kv_set: Option<
        unsafe extern "C" fn(key: *const u8, key_len: usize, value: *const u8, value_len: usize, ttl_ms: u64) -> i32,
    >,
    pub kv_incr:
        Option<unsafe extern "C" fn(key: *const u8, key_len: usize, delta: i64, ttl_ms: u64, value: *mut i64) -> i32>,
    pub kv_cas: Option<
        unsafe extern "C" fn(
            key: *const u8,
            key_len: usize,
            expected: *const u8,
            expected_len: usize,
            value: *const u8,
            value_len: usize,
            ttl_ms: u64,
        ) -> i32,
    >,
}

static HOST: AtomicPtr<HostTable> = AtomicPtr::new(ptr::null_mut());

/// heimdall_plugin_set_host: keeps the host's table (export_plugin! exports it).
///
/// # Safety
/// `table` is NULL or a `heimdall_host_t` valid until Cleanup returns, as heimdall_plugin.h says.
#[doc(hidden)]
pub unsafe fn __set_host(table: *const HostTable) {
    HOST.store(table as *mut HostTable, Ordering::Release);
}

/// The member `$m` of the table, when the host handed one over that is long enough to have it.
macro_rules! member {
    ($m:ident) => {{
        let t = HOST.load(Ordering::Acquire);
        if t.is_null() {
            None
        } else {
            // SAFETY: the table is the host's, valid until Cleanup; a member is read only when `size` covers it.
            let t = unsafe { &*t };
            let end = std::mem::offset_of!(HostTable, $m) + std::mem::size_of_val(&t.$m);
            if (t.size as usize) >= end {
                t.$m
            } else {
                None
            }
        }
    }};
}

/// Whether the gateway handed over its services.
pub fn available() -> bool {
    !HOST.load(Ordering::Acquire).is_null()
}

/// In `init`: the versioned error to refuse with when the gateway handed over no services (as C's
/// `HEIMDALL_REQUIRE_HOST`).
pub fn require() -> crate::Result<()> {
    if available() {
        return Ok(());
    }
    Err("this plugin needs host services (ABI 1.2); the gateway did not provide them: it speaks an older ABI. \
         Upgrade the gateway to one that speaks ABI 1.2"
        .into())
}

/// A host call's status other than `HEIMDALL_OK`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `HEIMDALL_NOT_FOUND`: no such key. (The SDK's `get`s answer `Ok(None)` instead.)
    NotFound,
    /// `HEIMDALL_CONFLICT`: a compare-and-set found another value. ([`Kv::cas`] answers `Ok(false)` instead.)
    Conflict,
    /// `HEIMDALL_E_LIMIT`: over a bound of the gateway (key or value size, metrics, labels, series, state keys or
    /// bytes, an overflowing increment); nothing was written.
    Limit,
    /// `HEIMDALL_E_INVALID`: a bad argument (metric name, a request handle that is not live, a non-integer value
    /// for `incr`).
    Invalid,
    /// `HEIMDALL_E_UNAVAILABLE`: no host services (an older gateway), or the redis backend cannot take a write or
    /// lease a count now.
    Unavailable,
    /// A status this SDK does not know.
    Other(i32),
}

impl Status {
    fn from_code(code: i32) -> Status {
        match code {
            2 => Status::NotFound,
            3 => Status::Conflict,
            4 => Status::Limit,
            5 => Status::Invalid,
            6 => Status::Unavailable,
            other => Status::Other(other),
        }
    }

    /// The header's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Status::NotFound => "HEIMDALL_NOT_FOUND",
            Status::Conflict => "HEIMDALL_CONFLICT",
            Status::Limit => "HEIMDALL_E_LIMIT",
            Status::Invalid => "HEIMDALL_E_INVALID",
            Status::Unavailable => "HEIMDALL_E_UNAVAILABLE",
            Status::Other(_) => "an unknown status",
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Status::NotFound => "not found",
            Status::Conflict => "the key holds another value",
            Status::Limit => "over a limit of the gateway",
            Status::Invalid => "invalid argument",
            Status::Unavailable => "unavailable",
            Status::Other(_) => "failed",
        }
    }
}

/// The error of a host call: which call, on which key or metric, and the status.
#[derive(Clone, Debug, PartialEq)]
pub struct HostError {
    pub op: &'static str,
    pub key: String,
    pub status: Status,
    /// For [`Kv::incr`] answering [`Status::Unavailable`] with the redis backend: this process's estimate of the
    /// total, usable to fail open.
    pub estimate: Option<i64>,
    detail: &'static str,
}

impl HostError {
    fn new(op: &'static str, key: &[u8], status: Status) -> HostError {
        let detail = if status == Status::Unavailable && !available() {
            "the gateway handed over no host services: it speaks an ABI older than 1.2"
        } else {
            ""
        };
        HostError { op, key: String::from_utf8_lossy(key).into_owned(), status, estimate: None, detail }
    }

    fn detailed(op: &'static str, key: &[u8], status: Status, detail: &'static str) -> HostError {
        HostError { detail, ..HostError::new(op, key, status) }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "heimdall: {}", self.op)?;
        if !self.key.is_empty() {
            write!(f, " {:?}", self.key)?;
        }
        write!(f, ": {}: {}", self.status.name(), self.status.meaning())?;
        if let Status::Other(code) = self.status {
            write!(f, " ({code})")?;
        }
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for HostError {}

fn check(op: &'static str, key: &[u8], code: i32) -> Result<(), HostError> {
    if code == 0 {
        Ok(())
    } else {
        Err(HostError::new(op, key, Status::from_code(code)))
    }
}

/// A pointer for a (possibly empty) buffer: never NULL, which means "delete" or "absent" to the host.
fn nonnull(b: &[u8]) -> *const u8 {
    static EMPTY: [u8; 1] = [0];
    if b.is_empty() {
        EMPTY.as_ptr()
    } else {
        b.as_ptr()
    }
}

/// The ABI's milliseconds: zero is "no expiry", a positive TTL under a millisecond counts as one (not zero, which
/// would keep the key forever).
fn ttl_ms(ttl: Duration) -> u64 {
    if ttl.is_zero() {
        0
    } else {
        u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
    }
}

/// The most a `get` allocates for one value, whatever length a host reports (the gateway's bounds are far below).
const MAX_VALUE_BYTES: usize = 64 << 20;

/// Reads a value with a first buffer, then one of the length the host reported (a few times, if it keeps changing).
fn read_value(
    op: &'static str,
    key: &[u8],
    get: impl Fn(*mut u8, usize, *mut usize) -> Option<i32>,
) -> Result<Option<Vec<u8>>, HostError> {
    let mut buf = vec![0u8; 256];
    for _ in 0..4 {
        let mut len = 0usize;
        let code = get(buf.as_mut_ptr(), buf.len(), &mut len).unwrap_or(6);
        match code {
            0 => {}
            2 => return Ok(None),
            other => return Err(HostError::new(op, key, Status::from_code(other))),
        }
        if len <= buf.len() {
            buf.truncate(len);
            return Ok(Some(buf));
        }
        if len > MAX_VALUE_BYTES {
            return Err(HostError::detailed(op, key, Status::Limit, "a value larger than the SDK reads"));
        }
        buf = vec![0u8; len];
    }
    Err(HostError::detailed(op, key, Status::Unavailable, "the value kept changing size"))
}

// ---- Log ----------------------------------------------------------------------------------------------------

/// A level of the gateway's logger (`HEIMDALL_LOG_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

fn log_for(request: u64, level: Level, msg: &str) {
    if let Some(f) = member!(log) {
        // SAFETY: a function of the host's table; msg is valid for the call, and the host copies it.
        unsafe { f(request, level as i32, msg.as_ptr(), msg.len()) }
    }
}

/// Writes `msg` through the gateway's logger with the plugin's name, for no request (init, cleanup); in a hook use
/// [`Ctx::log`], which adds the request id. Does nothing without host services: logging never fails.
pub fn log(level: Level, msg: &str) {
    log_for(0, level, msg)
}

// ---- The request's handle and state -------------------------------------------------------------------------

impl Ctx<'_> {
    /// The handle the gateway put first in the context (`{"request_handle":17,...}`): which request the host
    /// services' state and log lines are for. 0 when there is none (a context without one, as in a test).
    pub fn request_handle(&self) -> u64 {
        request_handle(self.raw())
    }

    /// Writes `msg` through the gateway's logger with the plugin's name and this request's id.
    pub fn log(&self, level: Level, msg: &str) {
        log_for(self.request_handle(), level, msg)
    }

    /// This request's own state: kept by the gateway from the request's first hook to its last (every stream chunk
    /// included), freed when it ends, never seen by other plugins.
    pub fn state(&self) -> State {
        State { request: self.request_handle() }
    }
}

/// Reads `"request_handle"`: first in the context as the host writes it, anywhere in one written by hand.
pub fn request_handle(ctx: &[u8]) -> u64 {
    const PREFIX: &[u8] = b"{\"request_handle\":";
    if let Some(rest) = ctx.strip_prefix(PREFIX) {
        let digits = rest.iter().take(20).take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 {
            return std::str::from_utf8(&rest[..digits]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
        }
    }
    #[derive(serde::Deserialize)]
    struct Handle {
        #[serde(default)]
        request_handle: u64,
    }
    serde_json::from_slice::<Handle>(ctx).map(|h| h.request_handle).unwrap_or(0)
}

/// A request's state (see [`Ctx::state`]). Bounds: 64 keys and 64 KiB a request (keys and values counted), by
/// default; past them [`Status::Limit`] and nothing is written.
#[derive(Clone, Copy, Debug)]
pub struct State {
    request: u64,
}

impl State {
    /// The request's handle (0: none).
    pub fn request(&self) -> u64 {
        self.request
    }

    fn live(&self, op: &'static str, key: &[u8]) -> Result<(), HostError> {
        if self.request == 0 {
            return Err(HostError::detailed(op, key, Status::Invalid, "the context has no request_handle"));
        }
        Ok(())
    }

    /// The value of `key`, or `None`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, HostError> {
        let key = key.as_ref();
        self.live("state get", key)?;
        let f = member!(state_get);
        read_value("state get", key, |buf, cap, len| {
            // SAFETY: a function of the host's table; key and buf are valid for the call.
            f.map(|f| unsafe { f(self.request, key.as_ptr(), key.len(), buf, cap, len) })
        })
    }

    /// Sets `key` to `value`.
    pub fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), HostError> {
        let (key, value) = (key.as_ref(), value.as_ref());
        self.live("state set", key)?;
        let Some(f) = member!(state_set) else { return Err(HostError::new("state set", key, Status::Unavailable)) };
        // SAFETY: as above; the host copies key and value.
        check("state set", key, unsafe { f(self.request, key.as_ptr(), key.len(), nonnull(value), value.len()) })
    }

    /// Removes `key` (a missing key is not an error).
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<(), HostError> {
        let key = key.as_ref();
        self.live("state remove", key)?;
        let Some(f) = member!(state_set) else { return Err(HostError::new("state remove", key, Status::Unavailable)) };
        // SAFETY: as above; a NULL value removes.
        check("state remove", key, unsafe { f(self.request, key.as_ptr(), key.len(), ptr::null(), 0) })
    }
}

// ---- Metrics ------------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Metric {
    name: String,
    id: u32,
    labels: usize,
}

fn define(kind: i32, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> Result<Metric, HostError> {
    let op = "metric define";
    if labels.iter().any(|l| l.is_empty() || l.contains([',', '\n'])) {
        return Err(HostError::detailed(op, name.as_bytes(), Status::Invalid, "an empty label name, or one with , or \\n"));
    }
    let Some(f) = member!(metric_define) else { return Err(HostError::new(op, name.as_bytes(), Status::Unavailable)) };
    let joined = labels.join(",");
    let mut id = 0u32;
    // SAFETY: a function of the host's table; every input is valid for the call and copied by the host.
    let code = unsafe {
        f(
            kind,
            name.as_ptr(),
            name.len(),
            help.as_ptr(),
            help.len(),
            nonnull(joined.as_bytes()),
            joined.len(),
            if buckets.is_empty() { ptr::null() } else { buckets.as_ptr() },
            buckets.len(),
            &mut id,
        )
    };
    check(op, name.as_bytes(), code)?;
    Ok(Metric { name: name.to_owned(), id, labels: labels.len() })
}

impl Metric {
    fn record(&self, op: &'static str, value: f64, label_values: &[&str]) -> Result<(), HostError> {
        let name = self.name.as_bytes();
        if label_values.len() != self.labels {
            return Err(HostError::detailed(op, name, Status::Invalid, "not one label value per label"));
        }
        if label_values.iter().any(|v| v.contains('\n')) {
            return Err(HostError::detailed(op, name, Status::Invalid, "a label value with a newline"));
        }
        let Some(f) = member!(metric_record) else { return Err(HostError::new(op, name, Status::Unavailable)) };
        let joined = label_values.join("\n");
        // SAFETY: as above.
        check(op, name, unsafe { f(self.id, nonnull(joined.as_bytes()), joined.len(), value) })
    }
}

/// A plugin-defined counter, in `/metrics` as `heimdall_plugin_<plugin>_<name>`.
#[derive(Clone, Debug)]
pub struct Counter(Metric);

impl Counter {
    /// Defines it (in `init`): `name` is 1-64 characters of `[A-Za-z0-9_]` starting with a letter or `_`; `labels`
    /// are the label names. Defining the same name again with the same labels gives the same counter.
    pub fn define(name: &str, help: &str, labels: &[&str]) -> Result<Counter, HostError> {
        define(0, name, help, labels, &[]).map(Counter)
    }

    /// Adds `value` (>= 0) to the series of `label_values` (in the order of the definition's labels).
    pub fn add(&self, value: f64, label_values: &[&str]) -> Result<(), HostError> {
        self.0.record("counter add", value, label_values)
    }

    /// Adds 1.
    pub fn inc(&self, label_values: &[&str]) -> Result<(), HostError> {
        self.add(1.0, label_values)
    }
}

/// A plugin-defined histogram, in `/metrics` as `heimdall_plugin_<plugin>_<name>`.
#[derive(Clone, Debug)]
pub struct Histogram(Metric);

impl Histogram {
    /// Defines it (in `init`) with its bucket upper bounds (increasing, at most 32; empty for the default ones).
    pub fn define(name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> Result<Histogram, HostError> {
        define(1, name, help, labels, buckets).map(Histogram)
    }

    /// Records `value` in the series of `label_values`.
    pub fn observe(&self, value: f64, label_values: &[&str]) -> Result<(), HostError> {
        self.0.record("histogram observe", value, label_values)
    }
}

// ---- Shared key-value store ---------------------------------------------------------------------------------

/// The gateway's shared key-value store: this plugin's namespace in it, the same on every worker and (with the
/// redis backend) every gateway on the same Redis. Keys are 1-512 bytes, values up to 64 KiB (the defaults);
/// docs/host-services.md says how consistent each backend is.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kv;

/// The shared store.
pub fn kv() -> Kv {
    Kv
}

fn key_ok(op: &'static str, key: &[u8]) -> Result<(), HostError> {
    if key.is_empty() {
        return Err(HostError::detailed(op, key, Status::Invalid, "an empty key"));
    }
    Ok(())
}

impl Kv {
    /// The value of `key`, or `None` (no such key, expired, or with redis not in this process's view yet: it is
    /// fetched in the background, so a later call may find it).
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, HostError> {
        let key = key.as_ref();
        key_ok("kv get", key)?;
        let f = member!(kv_get);
        read_value("kv get", key, |buf, cap, len| {
            // SAFETY: a function of the host's table; key and buf are valid for the call.
            f.map(|f| unsafe { f(key.as_ptr(), key.len(), buf, cap, len) })
        })
    }

    /// Sets `key` to `value`, expiring after `ttl` (zero: no expiry of its own).
    pub fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>, ttl: Duration) -> Result<(), HostError> {
        let (key, value) = (key.as_ref(), value.as_ref());
        key_ok("kv set", key)?;
        let Some(f) = member!(kv_set) else { return Err(HostError::new("kv set", key, Status::Unavailable)) };
        // SAFETY: as above; the host copies key and value.
        check("kv set", key, unsafe { f(key.as_ptr(), key.len(), nonnull(value), value.len(), ttl_ms(ttl)) })
    }

    /// Deletes `key`.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<(), HostError> {
        let key = key.as_ref();
        key_ok("kv delete", key)?;
        let Some(f) = member!(kv_set) else { return Err(HostError::new("kv delete", key, Status::Unavailable)) };
        // SAFETY: as above; a NULL value deletes.
        check("kv delete", key, unsafe { f(key.as_ptr(), key.len(), ptr::null(), 0, 0) })
    }

    /// Adds `delta` to the integer at `key` (a missing key counts as 0) and returns the new value. A key it
    /// creates expires after `ttl` (zero: never); an existing key keeps its expiry, so a counter per window is a
    /// key per window with the window as its TTL. With redis, [`Status::Unavailable`] comes with this process's
    /// estimate in [`HostError::estimate`].
    pub fn incr(&self, key: impl AsRef<[u8]>, delta: i64, ttl: Duration) -> Result<i64, HostError> {
        let key = key.as_ref();
        key_ok("kv incr", key)?;
        let Some(f) = member!(kv_incr) else { return Err(HostError::new("kv incr", key, Status::Unavailable)) };
        let mut value = 0i64;
        // SAFETY: as above.
        let code = unsafe { f(key.as_ptr(), key.len(), delta, ttl_ms(ttl), &mut value) };
        match check("kv incr", key, code) {
            Ok(()) => Ok(value),
            Err(mut e) => {
                if e.status == Status::Unavailable {
                    e.estimate = Some(value);
                }
                Err(e)
            }
        }
    }

    /// Compare-and-set: writes `value` (expiring after `ttl`) only if `key` now holds exactly `expected`
    /// (`None`: only if it does not exist). `Ok(true)` when written, `Ok(false)` when it held something else.
    /// Atomic within a process; across processes with redis it is optimistic (docs/host-services.md).
    pub fn cas(
        &self,
        key: impl AsRef<[u8]>,
        expected: Option<&[u8]>,
        value: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<bool, HostError> {
        let (key, value) = (key.as_ref(), value.as_ref());
        key_ok("kv cas", key)?;
        let Some(f) = member!(kv_cas) else { return Err(HostError::new("kv cas", key, Status::Unavailable)) };
        let (ep, el) = expected.map_or((ptr::null(), 0), |e| (nonnull(e), e.len()));
        // SAFETY: as above; a NULL expected means "only if absent".
        let code = unsafe { f(key.as_ptr(), key.len(), ep, el, nonnull(value), value.len(), ttl_ms(ttl)) };
        match code {
            0 => Ok(true),
            3 => Ok(false),
            other => Err(HostError::new("kv cas", key, Status::from_code(other))),
        }
    }
}

// ---- An in-memory host, for unit tests ----------------------------------------------------------------------

/// A host kept in the test's own memory, for a plugin's unit tests: [`memory::install`] hands the SDK a table whose
/// functions keep state, the shared store, metrics and log lines in this process, with the gateway's default bounds
/// and statuses (one process's worth, like the gateway's memory backend). Not for production: the gateway hands
/// over its own table.
pub mod memory {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use super::{HostTable, Level};

    #[derive(Default)]
    struct Mem {
        state: HashMap<u64, HashMap<Vec<u8>, Vec<u8>>>,
        kv: HashMap<Vec<u8>, (Vec<u8>, Option<Instant>)>,
        metrics: Vec<(i32, String, usize, HashMap<String, (f64, u64)>)>,
        logs: Vec<(u64, Level, String)>,
    }

    static MEM: Mutex<Option<Mem>> = Mutex::new(None);

    fn with<T>(f: impl FnOnce(&mut Mem) -> T) -> T {
        let mut g = MEM.lock().unwrap_or_else(|p| p.into_inner());
        f(g.get_or_insert_with(Mem::default))
    }

    unsafe fn bytes<'a>(p: *const u8, n: usize) -> &'a [u8] {
        if p.is_null() || n == 0 {
            &[]
        } else {
            unsafe { std::slice::from_raw_parts(p, n) }
        }
    }

    unsafe fn out(value: &[u8], buf: *mut u8, cap: usize, len: *mut usize) -> i32 {
        if len.is_null() || (buf.is_null() && cap > 0) {
            return 5;
        }
        unsafe {
            *len = value.len();
            if !buf.is_null() {
                std::ptr::copy_nonoverlapping(value.as_ptr(), buf, value.len().min(cap));
            }
        }
        0
    }

    unsafe extern "C" fn log(request: u64, level: i32, msg: *const u8, len: usize) {
        let level = match level {
            0 => Level::Debug,
            1 => Level::Info,
            2 => Level::Warn,
            _ => Level::Error,
        };
        let msg = String::from_utf8_lossy(unsafe { bytes(msg, len) }).into_owned();
        with(|m| m.logs.push((request, level, msg)));
    }

    #[allow(clippy::too_many_arguments)]
    unsafe extern "C" fn metric_define(
        kind: i32,
        name: *const u8,
        name_len: usize,
        _help: *const u8,
        _help_len: usize,
        labels: *const u8,
        labels_len: usize,
        _buckets: *const f64,
        buckets_len: usize,
        id: *mut u32,
    ) -> i32 {
        let name = String::from_utf8_lossy(unsafe { bytes(name, name_len) }).into_owned();
        let labels = unsafe { bytes(labels, labels_len) };
        let count = if labels.is_empty() { 0 } else { labels.iter().filter(|&&c| c == b',').count() + 1 };
        let valid = !name.is_empty()
            && name.len() <= 64
            && !name.as_bytes()[0].is_ascii_digit()
            && name.bytes().all(|c| c == b'_' || c.is_ascii_alphanumeric());
        if !valid || !(0..=1).contains(&kind) || buckets_len > 32 || id.is_null() {
            return 5;
        }
        with(|m| {
            if let Some(i) = m.metrics.iter().position(|x| x.1 == name) {
                if m.metrics[i].0 != kind || m.metrics[i].2 != count {
                    return 5;
                }
                unsafe { *id = i as u32 };
                return 0;
            }
            if m.metrics.len() >= 32 {
                return 4;
            }
            m.metrics.push((kind, name, count, HashMap::new()));
            unsafe { *id = (m.metrics.len() - 1) as u32 };
            0
        })
    }

    unsafe extern "C" fn metric_record(id: u32, values: *const u8, len: usize, value: f64) -> i32 {
        let values = String::from_utf8_lossy(unsafe { bytes(values, len) }).into_owned();
        with(|m| {
            let Some(metric) = m.metrics.get_mut(id as usize) else { return 5 };
            let given = if values.is_empty() && metric.2 != 1 { 0 } else { values.split('\n').count() };
            if given != metric.2 || !value.is_finite() || (metric.0 == 0 && value < 0.0) {
                return 5;
            }
            let series = metric.3.entry(values).or_default();
            series.0 += value;
            series.1 += 1;
            0
        })
    }

    unsafe extern "C" fn state_get(r: u64, key: *const u8, kl: usize, buf: *mut u8, cap: usize, len: *mut usize) -> i32 {
        let key = unsafe { bytes(key, kl) };
        with(|m| match m.state.get(&r).and_then(|s| s.get(key)) {
            _ if r == 0 => 5,
            Some(v) => unsafe { out(v, buf, cap, len) },
            None => 2,
        })
    }

    unsafe extern "C" fn state_set(r: u64, key: *const u8, kl: usize, value: *const u8, vl: usize) -> i32 {
        if r == 0 {
            return 5;
        }
        let key = unsafe { bytes(key, kl) }.to_vec();
        let remove = value.is_null();
        let value = unsafe { bytes(value, vl) }.to_vec();
        with(|m| {
            let s = m.state.entry(r).or_default();
            if remove {
                s.remove(&key);
                return 0;
            }
            let others: usize = s.iter().filter(|(k, _)| **k != key).map(|(k, v)| k.len() + v.len()).sum();
            if (!s.contains_key(&key) && s.len() >= 64) || others + key.len() + value.len() > 64 << 10 {
                return 4;
            }
            s.insert(key, value);
            0
        })
    }

    fn live(m: &mut Mem, key: &[u8]) -> Option<(Vec<u8>, Option<Instant>)> {
        let expired = matches!(m.kv.get(key), Some((_, Some(at))) if Instant::now() >= *at);
        if expired {
            m.kv.remove(key);
        }
        m.kv.get(key).cloned()
    }

    fn expiry(ttl_ms: u64) -> Option<Instant> {
        (ttl_ms > 0).then(|| Instant::now() + Duration::from_millis(ttl_ms))
    }

    fn key_bad(key: &[u8]) -> bool {
        key.is_empty() || key.len() > 512
    }

    unsafe extern "C" fn kv_get(key: *const u8, kl: usize, buf: *mut u8, cap: usize, len: *mut usize) -> i32 {
        let key = unsafe { bytes(key, kl) };
        if key_bad(key) {
            return 4;
        }
        with(|m| match live(m, key) {
            Some((v, _)) => unsafe { out(&v, buf, cap, len) },
            None => 2,
        })
    }

    unsafe extern "C" fn kv_set(key: *const u8, kl: usize, value: *const u8, vl: usize, ttl_ms: u64) -> i32 {
        let key = unsafe { bytes(key, kl) }.to_vec();
        if key_bad(&key) || vl > 64 << 10 {
            return 4;
        }
        let remove = value.is_null();
        let value = unsafe { bytes(value, vl) }.to_vec();
        with(|m| {
            if remove {
                m.kv.remove(&key);
            } else {
                m.kv.insert(key, (value, expiry(ttl_ms)));
            }
            0
        })
    }

    unsafe extern "C" fn kv_incr(key: *const u8, kl: usize, delta: i64, ttl_ms: u64, value: *mut i64) -> i32 {
        let key = unsafe { bytes(key, kl) }.to_vec();
        if key_bad(&key) {
            return 4;
        }
        if value.is_null() {
            return 5;
        }
        with(|m| {
            let (n, expires) = match live(m, &key) {
                Some((v, at)) => match std::str::from_utf8(&v).ok().and_then(|s| s.parse::<i64>().ok()) {
                    Some(n) => (n, at),
                    None => return 5,
                },
                None => (0, expiry(ttl_ms)),
            };
            let Some(n) = n.checked_add(delta) else { return 4 };
            m.kv.insert(key, (n.to_string().into_bytes(), expires));
            unsafe { *value = n };
            0
        })
    }

    unsafe extern "C" fn kv_cas(
        key: *const u8,
        kl: usize,
        expected: *const u8,
        el: usize,
        value: *const u8,
        vl: usize,
        ttl_ms: u64,
    ) -> i32 {
        let key = unsafe { bytes(key, kl) }.to_vec();
        if key_bad(&key) || vl > 64 << 10 {
            return 4;
        }
        let expected = (!expected.is_null()).then(|| unsafe { bytes(expected, el) }.to_vec());
        let value = unsafe { bytes(value, vl) }.to_vec();
        with(|m| {
            let now = live(m, &key).map(|(v, _)| v);
            if now != expected {
                return 3;
            }
            m.kv.insert(key, (value, expiry(ttl_ms)));
            0
        })
    }

    static TABLE: HostTable = HostTable {
        size: std::mem::size_of::<HostTable>() as u32,
        abi_version: crate::ABI_VERSION,
        log: Some(log),
        metric_define: Some(metric_define),
        metric_record: Some(metric_record),
        state_get: Some(state_get),
        state_set: Some(state_set),
        kv_get: Some(kv_get),
        kv_set: Some(kv_set),
        kv_incr: Some(kv_incr),
        kv_cas: Some(kv_cas),
    };

    /// Hands the SDK the in-memory host (what the gateway's heimdall_plugin_set_host does). Idempotent; the store
    /// is shared by every test of the process.
    pub fn install() {
        // SAFETY: a static table, valid forever.
        unsafe { super::__set_host(&TABLE) }
    }

    /// Takes the in-memory host away again, as a gateway older than ABI 1.2 would have it.
    pub fn uninstall() {
        // SAFETY: NULL removes the services.
        unsafe { super::__set_host(std::ptr::null()) }
    }

    /// Frees a request's state, as the gateway does when the request ends.
    pub fn end_request(request: u64) {
        with(|m| m.state.remove(&request));
    }

    /// The number of state keys a request holds.
    pub fn state_keys(request: u64) -> usize {
        with(|m| m.state.get(&request).map_or(0, |s| s.len()))
    }

    /// The lines logged so far: (request handle, level, message).
    pub fn logs() -> Vec<(u64, Level, String)> {
        with(|m| m.logs.clone())
    }

    /// A counter's total (or a histogram's sum) and the number of records, for newline-separated label values.
    pub fn metric(name: &str, label_values: &str) -> (f64, u64) {
        with(|m| {
            m.metrics.iter().find(|x| x.1 == name).and_then(|x| x.3.get(label_values).copied()).unwrap_or((0.0, 0))
        })
    }
}
