//! The JSON objects that cross the ABI, as serde types.
//!
//! Every object type keeps the fields it does not name in `extra` (`#[serde(flatten)]`), so a plugin that changes one
//! field and hands the object back loses nothing.
//!
//! Key order: `extra` keeps its members, and everything inside them, in the order they came (serde_json's
//! `preserve_order`). A type writes its named fields first, in a fixed order, then `extra`. The response-side types
//! ([`ChatResponse`], [`Choice`], [`StreamChunk`], [`ChunkChoice`]) follow OpenAI's order, and also write the few
//! members OpenAI puts between named fields (`created`, `logprobs`, ...) in that place, though they live in `extra`:
//! a response or chunk in OpenAI's order comes back out in the order it went in.

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A JSON object (`serde_json::Map<String, Value>`), in insertion order.
pub type Map = serde_json::Map<String, Value>;

/// The context object every hook receives first.
///
/// `{"request_id": "4b1c...", "route": "/v1/chat/completions", "provider": "openai", "model": "gpt-4o-mini",
///   "stream": false, "headers": {"user-agent": "curl/8.5"}, "values": {"cache_key": "9f2c"}}`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub route: String,
    /// Not known yet in TransportInterceptor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Not known yet in TransportInterceptor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub stream: bool,
    /// Request headers, lower-case names, without credentials. Values are strings (see [`Context::header`]).
    #[serde(default)]
    pub headers: Map,
    /// What plugins set with `{"context": {...}}` earlier in the same request.
    #[serde(default)]
    pub values: Map,
    #[serde(flatten)]
    pub extra: Map,
}

impl Context {
    /// A request header by its lower-case name. A header sent several times arrives as an array; this returns the first.
    pub fn header(&self, name: &str) -> Option<&str> {
        match self.headers.get(name)? {
            Value::String(s) => Some(s),
            Value::Array(items) => items.first().and_then(Value::as_str),
            _ => None,
        }
    }

    /// A context value set by an earlier hook.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }
}

/// A chat-completions request (OpenAI shape). Unknown fields (max_tokens, temperature, tools, response_format, ...) are
/// in `extra`; [`ChatRequest::max_tokens`] and its siblings read and set the token limits there.
///
/// Written as `model, messages, stream`, then `extra` in the order it came. Clients order a request's members in
/// different ways; one that put `model`, `messages` or `stream` after other members gets them moved to the front.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(flatten)]
    pub extra: Map,
}

impl ChatRequest {
    /// `max_tokens`, from `extra`: `None` when the request has none, or one that is not a non-negative integer.
    pub fn max_tokens(&self) -> Option<u64> {
        self.extra.get("max_tokens").and_then(Value::as_u64)
    }

    /// `max_completion_tokens` (OpenAI's newer name for the limit), from `extra`; `None` as for [`Self::max_tokens`].
    pub fn max_completion_tokens(&self) -> Option<u64> {
        self.extra.get("max_completion_tokens").and_then(Value::as_u64)
    }

    /// Sets `max_tokens` in `extra`: in its place when the request has one, else after the other members.
    pub fn set_max_tokens(&mut self, limit: u64) {
        self.extra.insert("max_tokens".into(), limit.into());
    }

    /// Sets `max_completion_tokens` in `extra`, in its place when the request has one.
    pub fn set_max_completion_tokens(&mut self, limit: u64) {
        self.extra.insert("max_completion_tokens".into(), limit.into());
    }
}

/// One message, in a request or in a response choice. `name`, `tool_calls`, `tool_call_id`, ... are in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub role: String,
    /// `None` is written as `"content": null` (an assistant message that only calls tools).
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(flatten)]
    pub extra: Map,
}

impl Message {
    pub fn new(role: impl Into<String>, text: impl Into<String>) -> Self {
        Message { role: role.into(), content: Some(Content::Text(text.into())), extra: Map::new() }
    }

    /// The message's text: the string content, or its text parts joined with "\n".
    pub fn text(&self) -> String {
        self.content.as_ref().map(Content::text).unwrap_or_default()
    }
}

/// Message content: a string, or an array of parts (`{"type": "text", "text": ...}`, `{"type": "image_url", ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl Content {
    /// The text: the string, or the text parts joined with "\n".
    pub fn text(&self) -> String {
        match self {
            Content::Text(s) => s.clone(),
            Content::Parts(parts) => parts.iter().filter_map(|p| p.text.as_deref()).collect::<Vec<_>>().join("\n"),
        }
    }

    /// Calls `f` on every piece of text (the string, or each text part), in place.
    pub fn for_each_text_mut(&mut self, mut f: impl FnMut(&mut String)) {
        match self {
            Content::Text(s) => f(s),
            Content::Parts(parts) => parts.iter_mut().filter_map(|p| p.text.as_mut()).for_each(f),
        }
    }
}

impl From<String> for Content {
    fn from(s: String) -> Self {
        Content::Text(s)
    }
}

impl From<&str> for Content {
    fn from(s: &str) -> Self {
        Content::Text(s.to_owned())
    }
}

/// One part of an array content. `text` is set for `"type": "text"`; `image_url`, `input_audio`, ... are in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(flatten)]
    pub extra: Map,
}

/// A `chat.completion` response.
///
/// Written as `id, object, created, model, choices, usage`, then the rest of `extra` (`service_tier`,
/// `system_fingerprint`, ...): OpenAI's order. `created` is in `extra` (`resp.extra["created"]`), but written in its
/// place. Empty strings and a `None` usage are left out.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ChatResponse {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub usage: Option<Usage>,
    /// `created`, `system_fingerprint`, ...
    #[serde(flatten)]
    pub extra: Map,
}

/// The members of `extra` a [`ChatResponse`] writes in their own place rather than at the end.
const RESPONSE_PLACED: &[&str] = &["created"];

impl Serialize for ChatResponse {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if !self.id.is_empty() {
            map.serialize_entry("id", &self.id)?;
        }
        if !self.object.is_empty() {
            map.serialize_entry("object", &self.object)?;
        }
        placed(&mut map, &self.extra, RESPONSE_PLACED)?;
        if !self.model.is_empty() {
            map.serialize_entry("model", &self.model)?;
        }
        map.serialize_entry("choices", &self.choices)?;
        if let Some(usage) = &self.usage {
            map.serialize_entry("usage", usage)?;
        }
        rest(&mut map, &self.extra, RESPONSE_PLACED)?;
        map.end()
    }
}

impl Content {
    /// Appends text: to the string, or to the last text part (a new text part when there is none).
    pub fn push_text(&mut self, text: &str) {
        match self {
            Content::Text(s) => s.push_str(text),
            Content::Parts(parts) => match parts.iter_mut().rev().find(|p| p.kind == "text") {
                Some(ContentPart { text: Some(s), .. }) => s.push_str(text),
                _ => parts.push(ContentPart { kind: "text".into(), text: Some(text.into()), extra: Map::new() }),
            },
        }
    }
}

impl ChatResponse {
    /// Appends text to the answer (the first choice's message), whether it is a string or parts. Returns false, and
    /// changes nothing, when there is no choice or the message has no content (a tool call). For a streamed answer
    /// use [`StreamChunk::append_text_if_last`] in the chunk hook, and leave the assembled response that PostHook
    /// then sees alone (`ctx.get()?.stream`), or the text comes twice.
    pub fn append_text(&mut self, text: &str) -> bool {
        match self.choices.first_mut().and_then(|c| c.message.content.as_mut()) {
            Some(content) => {
                content.push_text(text);
                true
            }
            None => false,
        }
    }

    /// A minimal `chat.completion` with one assistant message, for short-circuits (a cache hit, a canned answer).
    pub fn assistant(model: impl Into<String>, text: impl Into<String>) -> Self {
        ChatResponse {
            id: String::new(),
            object: "chat.completion".into(),
            model: model.into(),
            choices: vec![Choice {
                index: 0,
                message: Message::new("assistant", text),
                finish_reason: Some("stop".into()),
                extra: Map::new(),
            }],
            usage: None,
            extra: Map::new(),
        }
    }
}

/// One choice of a [`ChatResponse`]. Written as `index, message, logprobs, finish_reason`, then the rest of `extra`
/// (OpenAI's order; `logprobs` is in `extra`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub message: Message,
    /// `None` is written as `"finish_reason": null`.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// `logprobs`, ...
    #[serde(flatten)]
    pub extra: Map,
}

/// The members of `extra` a [`Choice`] or a [`ChunkChoice`] writes in their own place rather than at the end.
const CHOICE_PLACED: &[&str] = &["logprobs"];

impl Serialize for Choice {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("index", &self.index)?;
        map.serialize_entry("message", &self.message)?;
        placed(&mut map, &self.extra, CHOICE_PLACED)?;
        map.serialize_entry("finish_reason", &self.finish_reason)?;
        rest(&mut map, &self.extra, CHOICE_PLACED)?;
        map.end()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(flatten)]
    pub extra: Map,
}

/// A `chat.completion.chunk`, one streamed event.
///
/// Written as `id, object, created, model, service_tier, system_fingerprint, choices, usage`, then the rest of
/// `extra`: OpenAI's order. `created`, `service_tier` and `system_fingerprint` are in `extra`, but written in their
/// place. Empty strings and a `None` usage (`"usage": null` too) are left out.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct StreamChunk {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub usage: Option<Usage>,
    /// `created`, `system_fingerprint`, ...
    #[serde(flatten)]
    pub extra: Map,
}

impl StreamChunk {
    /// Whether this is the answer's last chunk: its first choice has a `finish_reason`.
    pub fn is_last(&self) -> bool {
        self.choices.first().is_some_and(|c| c.finish_reason.is_some())
    }

    /// Appends text to the streamed answer: on its last chunk only (see [`StreamChunk::is_last`]), added to the
    /// delta's content. Returns whether the chunk changed: return `ChunkAction::Replace(chunk)` then, and
    /// `ChunkAction::Continue` otherwise.
    pub fn append_text_if_last(&mut self, text: &str) -> bool {
        if !self.is_last() {
            return false;
        }
        let delta = &mut self.choices[0].delta;
        delta.content.get_or_insert_with(String::new).push_str(text);
        true
    }
}

/// The members of `extra` a [`StreamChunk`] writes in their own place rather than at the end: `created` after
/// `object`, the other two before `choices`.
const CHUNK_AFTER_OBJECT: &[&str] = &["created"];
const CHUNK_BEFORE_CHOICES: &[&str] = &["service_tier", "system_fingerprint"];
const CHUNK_PLACED: &[&str] = &["created", "service_tier", "system_fingerprint"];

impl Serialize for StreamChunk {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if !self.id.is_empty() {
            map.serialize_entry("id", &self.id)?;
        }
        if !self.object.is_empty() {
            map.serialize_entry("object", &self.object)?;
        }
        placed(&mut map, &self.extra, CHUNK_AFTER_OBJECT)?;
        if !self.model.is_empty() {
            map.serialize_entry("model", &self.model)?;
        }
        placed(&mut map, &self.extra, CHUNK_BEFORE_CHOICES)?;
        map.serialize_entry("choices", &self.choices)?;
        if let Some(usage) = &self.usage {
            map.serialize_entry("usage", usage)?;
        }
        rest(&mut map, &self.extra, CHUNK_PLACED)?;
        map.end()
    }
}

/// One choice of a [`StreamChunk`]. Written as `index, delta, logprobs, finish_reason`, then the rest of `extra`
/// (OpenAI's order; `logprobs` is in `extra`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: Delta,
    /// Set on the choice's last chunk; `None` is written as `"finish_reason": null`.
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Map,
}

impl Serialize for ChunkChoice {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("index", &self.index)?;
        map.serialize_entry("delta", &self.delta)?;
        placed(&mut map, &self.extra, CHOICE_PLACED)?;
        map.serialize_entry("finish_reason", &self.finish_reason)?;
        rest(&mut map, &self.extra, CHOICE_PLACED)?;
        map.end()
    }
}

/// Writes the members of `extra` named in `keys`, those it has, in that order: members OpenAI writes between two
/// named fields.
fn placed<M: SerializeMap>(map: &mut M, extra: &Map, keys: &[&str]) -> Result<(), M::Error> {
    for &key in keys {
        if let Some(value) = extra.get(key) {
            map.serialize_entry(key, value)?;
        }
    }
    Ok(())
}

/// Writes the members of `extra` not in `placed`, in their order.
fn rest<M: SerializeMap>(map: &mut M, extra: &Map, placed: &[&str]) -> Result<(), M::Error> {
    for (key, value) in extra {
        if !placed.contains(&key.as_str()) {
            map.serialize_entry(key, value)?;
        }
    }
    Ok(())
}

/// What a chunk adds to a choice's message. `tool_calls`, `refusal`, ... are in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(flatten)]
    pub extra: Map,
}

/// The error object: what PostHook receives when the result is an error, and what a hook returns to fail a request
/// on purpose or abort a stream.
///
/// `{"status_code": 429, "message": "slow down", "type": "rate_limit_error", "code": "rate_limited",
///   "allow_fallbacks": false}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub status_code: u16,
    #[serde(default)]
    pub message: String,
    /// OpenAI's error type: invalid_request_error, rate_limit_error, permission_error, server_error, ...
    #[serde(rename = "type", default)]
    pub error_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Whether the gateway may try the request's fallback models instead.
    #[serde(default = "yes")]
    pub allow_fallbacks: bool,
    #[serde(flatten)]
    pub extra: Map,
}

fn yes() -> bool {
    true
}

impl ApiError {
    /// An error with the OpenAI type that goes with the status (429 -> rate_limit_error, 403 -> permission_error, ...).
    pub fn new(status_code: u16, message: impl Into<String>) -> Self {
        let error_type = match status_code {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        };
        ApiError {
            status_code,
            message: message.into(),
            error_type: error_type.into(),
            code: None,
            allow_fallbacks: true,
            extra: Map::new(),
        }
    }

    pub fn with_type(mut self, error_type: impl Into<String>) -> Self {
        self.error_type = error_type.into();
        self
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Whether the gateway may try the request's fallback models (default true).
    pub fn allow_fallbacks(mut self, allow: bool) -> Self {
        self.allow_fallbacks = allow;
        self
    }
}

/// What TransportInterceptor sees of the raw HTTP request (the body comes separately, as received).
///
/// `{"method": "POST", "path": "/v1/chat/completions", "headers": {"content-type": "application/json", ...}}`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRequest {
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub path: String,
    /// All headers, lower-case names, credentials included.
    #[serde(default)]
    pub headers: Map,
    #[serde(flatten)]
    pub extra: Map,
}

impl HttpRequest {
    /// A header by its lower-case name (the first value of a repeated header).
    pub fn header(&self, name: &str) -> Option<&str> {
        match self.headers.get(name)? {
            Value::String(s) => Some(s),
            Value::Array(items) => items.first().and_then(Value::as_str),
            _ => None,
        }
    }
}

/// An HTTP answer given by TransportInterceptor instead of the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpResponse {
    pub status_code: u16,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub headers: Map,
    #[serde(default)]
    pub body: Value,
}

impl HttpResponse {
    pub fn new(status_code: u16, body: Value) -> Self {
        HttpResponse { status_code, headers: Map::new(), body }
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), Value::String(value.into()));
        self
    }
}
