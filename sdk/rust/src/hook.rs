//! What hooks receive (lazily parsed JSON inputs, the context) and what they return (actions).

use std::cell::{OnceCell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::types::{ApiError, ChatRequest, ChatResponse, Context, HttpResponse, Map, StreamChunk};

/// A failure of the plugin itself: the hook returns a non-OK status with this message, the host logs it and carries
/// on as if the hook had not run. (To fail a *request* on purpose, return an action with an [`ApiError`] instead.)
/// Any error converts into it with `?`, and so do `String` and `&str` (`Err("bad config".into())`).
pub type Error = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result<T, heimdall_plugin::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A JSON input, exactly as the host passed it, parsed only when (and if) the hook asks.
///
/// A hook that decides from the raw bytes (or does not look at all) never pays for parsing. The bytes are valid only
/// during the call: the hook gets `Json<'_, T>`, and what it keeps must be copied or owned.
pub struct Json<'a, T> {
    raw: &'a [u8],
    parsed: OnceCell<T>,
    _type: PhantomData<fn() -> T>,
}

impl<'a, T> Json<'a, T> {
    /// Wraps raw bytes (the SDK does this for hooks; useful in tests).
    pub fn new(raw: &'a [u8]) -> Self {
        Json { raw, parsed: OnceCell::new(), _type: PhantomData }
    }

    /// The bytes as the host passed them (any whitespace; maybe an earlier plugin's output).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The bytes as text.
    pub fn as_str(&self) -> Result<&'a str> {
        std::str::from_utf8(self.raw).map_err(|e| format!("input is not UTF-8: {e}").into())
    }

    /// True when the host passed nothing (len 0).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Parses into any other type, without caching. Borrowing types work: a
    /// `#[derive(Deserialize)] struct Id<'a> { #[serde(borrow)] request_id: Cow<'a, str> }` reads one field and allocates
    /// nothing.
    pub fn parse_as<U: Deserialize<'a>>(&self) -> Result<U> {
        serde_json::from_slice(self.raw).map_err(|e| format!("invalid JSON input: {e}").into())
    }

    /// Parses into an untyped `serde_json::Value`, without caching.
    pub fn value(&self) -> Result<Value> {
        self.parse_as()
    }
}

impl<'a, T: DeserializeOwned> Json<'a, T> {
    /// The parsed object, parsed on the first call and cached.
    pub fn get(&self) -> Result<&T> {
        if let Some(v) = self.parsed.get() {
            return Ok(v);
        }
        let v: T = self.parse_as()?;
        Ok(self.parsed.get_or_init(|| v))
    }

    /// The parsed object, owned (no copy if `get` already parsed it): for a hook that modifies and returns it.
    pub fn into_inner(self) -> Result<T> {
        match self.parsed.into_inner() {
            Some(v) => Ok(v),
            None => serde_json::from_slice(self.raw).map_err(|e| format!("invalid JSON input: {e}").into()),
        }
    }
}

impl<T> fmt::Debug for Json<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Json({})", String::from_utf8_lossy(self.raw))
    }
}

/// The context of the request, for TransportInterceptor, PreHook and PostHook: read it (lazily, like [`Json`]), and set
/// context values that later hooks of the same request see, in any plugin.
///
/// ```ignore
/// let id = &ctx.get()?.request_id;
/// ctx.set_value("cache_key", "9f2c");
/// ctx.remove_value("stale_key");
/// ```
pub struct Ctx<'a> {
    json: Json<'a, Context>,
    set: RefCell<Map>,
}

impl<'a> Ctx<'a> {
    pub fn new(raw: &'a [u8]) -> Self {
        Ctx { json: Json::new(raw), set: RefCell::new(Map::new()) }
    }

    /// Sets a context value, sent with the hook's result whatever the action (Continue included).
    pub fn set_value(&self, key: impl Into<String>, value: impl Into<Value>) {
        self.set.borrow_mut().insert(key.into(), value.into());
    }

    /// Removes a context value (sends it as null).
    pub fn remove_value(&self, key: impl Into<String>) {
        self.set.borrow_mut().insert(key.into(), Value::Null);
    }

    /// The values set so far in this call.
    pub fn values_set(&self) -> Map {
        self.set.borrow().clone()
    }

    pub(crate) fn take_values(&self) -> Map {
        std::mem::take(&mut *self.set.borrow_mut())
    }
}

impl<'a> Deref for Ctx<'a> {
    type Target = Json<'a, Context>;
    fn deref(&self) -> &Json<'a, Context> {
        &self.json
    }
}

impl fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ctx({:?}, set {:?})", self.json, self.set.borrow())
    }
}

/// What PostHook sees: the response, or the error.
#[derive(Debug)]
pub enum PostInput<'a> {
    Response(Json<'a, ChatResponse>),
    Error(Json<'a, ApiError>),
}

impl PostInput<'_> {
    pub fn is_error(&self) -> bool {
        matches!(self, PostInput::Error(_))
    }
}

/// TransportInterceptor's result. Context values go through [`Ctx::set_value`].
#[derive(Debug, Clone, PartialEq)]
pub enum TransportAction {
    /// Change nothing.
    Continue,
    /// Set or remove headers (a `Value::Null` value removes one), and/or replace the body.
    Rewrite { headers: Map, body: Option<Value> },
    /// Answer the HTTP request here; nothing after this plugin runs, not even the provider.
    Respond(HttpResponse),
}

impl TransportAction {
    /// `Rewrite` that sets one header (chain with `set_header`, `remove_header`, `with_body`).
    pub fn set_header(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.header(name.into(), Value::String(value.into()))
    }

    pub fn remove_header(self, name: impl Into<String>) -> Self {
        self.header(name.into(), Value::Null)
    }

    pub fn with_body(self, new_body: Value) -> Self {
        match self {
            TransportAction::Rewrite { headers, .. } => TransportAction::Rewrite { headers, body: Some(new_body) },
            _ => TransportAction::Rewrite { headers: Map::new(), body: Some(new_body) },
        }
    }

    fn header(self, name: String, value: Value) -> Self {
        let (mut headers, body) = match self {
            TransportAction::Rewrite { headers, body } => (headers, body),
            _ => (Map::new(), None),
        };
        headers.insert(name, value);
        TransportAction::Rewrite { headers, body }
    }
}

/// PreHook's result. Context values go through [`Ctx::set_value`].
#[derive(Debug, Clone, PartialEq)]
pub enum PreAction {
    /// Pass the request on unchanged (the host parses nothing: the fast path).
    Continue,
    /// Replace the request for later plugins and the provider.
    Request(ChatRequest),
    /// Short-circuit with a response (a cache hit): the provider and later PreHooks are skipped.
    Response(ChatResponse),
    /// Short-circuit with an error (validation, rate limiting).
    Error(ApiError),
}

/// PostHook's result. Context values go through [`Ctx::set_value`].
#[derive(Debug, Clone, PartialEq)]
pub enum PostAction {
    Continue,
    /// Replace the response, or recover from an error with a response.
    Response(ChatResponse),
    /// Replace the error, or invalidate a response.
    Error(ApiError),
}

/// StreamChunkHook's result.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkAction {
    Continue,
    /// Replace the chunk.
    Replace(StreamChunk),
    /// Drop the chunk; later plugins and the client never see it.
    Drop,
    /// End the stream with an error; the client gets it as the stream's last event. (Named as PreAction's and
    /// PostAction's error results are; it was `Abort` before.)
    Error(ApiError),
}
