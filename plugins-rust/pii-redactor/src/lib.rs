//! pii-redactor: masks emails, phone numbers and payment card numbers (Luhn-checked) in chat requests before they
//! leave the gateway, in responses, and in streamed chunks, including a pattern split across two chunks.
//!
//! Config: `{"mask": "[REDACTED]", "emails": true, "phones": true, "cards": true}` (these are the defaults).

pub mod scan;
pub mod stream;

use std::borrow::Cow;
use std::time::{Duration, Instant};

use heimdall_plugin::{
    ChatRequest, ChunkAction, Context, Ctx, Json, Plugin, PostAction, PostInput, PreAction, Result, StreamChunk, Value,
};
use serde::Deserialize;

use scan::{might_match, redact, Patterns};
use stream::Streams;

/// Streams with text held back at once, at most (each holds a few hundred bytes at most).
const MAX_STREAMS: usize = 10_000;
/// A stream with no chunk for this long is forgotten (when room is needed).
const STREAM_TTL: Duration = Duration::from_secs(600);

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mask: String,
    pub emails: bool,
    pub phones: bool,
    pub cards: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { mask: "[REDACTED]".into(), emails: true, phones: true, cards: true }
    }
}

pub struct PiiRedactor {
    mask: String,
    patterns: Patterns,
    streams: Streams,
}

/// The two context fields the hooks need, read without allocating.
#[derive(Deserialize)]
struct Ids<'a> {
    #[serde(borrow, default)]
    request_id: Cow<'a, str>,
    #[serde(default)]
    stream: bool,
}

impl PiiRedactor {
    pub fn new(config: Config) -> Self {
        PiiRedactor {
            mask: config.mask,
            patterns: Patterns { emails: config.emails, phones: config.phones, cards: config.cards },
            streams: Streams::new(MAX_STREAMS, STREAM_TTL),
        }
    }

    /// Redacts a string in place; true if anything was masked.
    fn redact_in_place(&self, text: &mut String) -> bool {
        match redact(text, self.patterns, &self.mask) {
            Some(r) => {
                *text = r;
                true
            }
            None => false,
        }
    }

    /// Requests with text held back (for tests and diagnostics).
    pub fn streams_held(&self) -> usize {
        self.streams.len()
    }
}

impl Plugin for PiiRedactor {
    fn init(config: Value) -> Result<Self> {
        Ok(PiiRedactor::new(heimdall_plugin::config(config)?))
    }

    /// Masks message contents before the request leaves. Unchanged requests (the usual case) are passed on as they
    /// came: not re-serialised, and not even parsed when the raw JSON holds no '@' and no run of 8 digits.
    fn pre_hook(&mut self, _ctx: &Ctx, request: Json<ChatRequest>) -> Result<PreAction> {
        if !self.patterns.any() || !might_match(request.raw(), self.patterns) {
            return Ok(PreAction::Continue);
        }
        let mut req = request.into_inner()?;
        let mut changed = false;
        for message in &mut req.messages {
            if let Some(content) = message.content.as_mut() {
                content.for_each_text_mut(|t| changed |= self.redact_in_place(t));
            }
        }
        Ok(if changed { PreAction::Request(req) } else { PreAction::Continue })
    }

    /// Masks the response's message contents. After a stream, this is the assembled response, and the stream's
    /// held-back state (if any is left, e.g. the stream was cut short) is dropped.
    fn post_hook(&mut self, ctx: &Ctx, result: PostInput) -> Result<PostAction> {
        if !self.streams.is_empty() {
            let ids: Ids = ctx.parse_as()?;
            if ids.stream {
                self.streams.finish(&ids.request_id);
            }
        }
        let PostInput::Response(response) = result else { return Ok(PostAction::Continue) };
        if !self.patterns.any() || !might_match(response.raw(), self.patterns) {
            return Ok(PostAction::Continue);
        }
        let mut resp = response.into_inner()?;
        let mut changed = false;
        for choice in &mut resp.choices {
            if let Some(content) = choice.message.content.as_mut() {
                content.for_each_text_mut(|t| changed |= self.redact_in_place(t));
            }
        }
        Ok(if changed { PostAction::Response(resp) } else { PostAction::Continue })
    }

    /// Masks streamed text, holding back a chunk's trailing characters that could be the start of a pattern until
    /// the next chunk (or the last one) shows whether they are.
    fn stream_chunk_hook(&mut self, ctx: &Json<Context>, chunk: Json<StreamChunk>) -> Result<ChunkAction> {
        if !self.patterns.any() {
            return Ok(ChunkAction::Continue);
        }
        let ids: Ids = ctx.parse_as()?;
        let mut chunk = chunk.into_inner()?;
        let changed = self.streams.process(&ids.request_id, &mut chunk, self.patterns, &self.mask, Instant::now());
        Ok(if changed { ChunkAction::Replace(chunk) } else { ChunkAction::Continue })
    }
}

heimdall_plugin::export_plugin!(PiiRedactor, "pii-redactor", [pre_hook, post_hook, stream_chunk_hook]);
