//! Redaction of streamed text, where a pattern can be split across chunks ("my card is 4111 1111" + " 1111 1111").
//!
//! For each request (and choice), the trailing characters of a chunk that could still become part of a pattern are
//! held back and sent in front of the next chunk's text; the choice's last chunk (the one with a finish_reason) sends
//! everything. Memory is bounded: at most EMAIL_MAX bytes per choice, at most `max_requests` requests at once; state
//! is dropped at a request's last chunk, by `finish` (PostHook, after the stream), or after `ttl` without a chunk.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use heimdall_plugin::StreamChunk;

use crate::scan::{hold_from, redact, Patterns};

pub struct Streams {
    requests: HashMap<String, Held>,
    max_requests: usize,
    ttl: Duration,
}

struct Held {
    touched: Instant,
    /// (choice index, text held back)
    choices: Vec<(u32, String)>,
}

impl Streams {
    pub fn new(max_requests: usize, ttl: Duration) -> Self {
        Streams { requests: HashMap::new(), max_requests, ttl }
    }

    /// Requests with text held back.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Bytes held back, over all requests.
    pub fn held_bytes(&self) -> usize {
        self.requests.values().flat_map(|h| h.choices.iter()).map(|(_, s)| s.len()).sum()
    }

    /// Forgets a request (its stream has ended).
    pub fn finish(&mut self, request_id: &str) {
        self.requests.remove(request_id);
    }

    /// Redacts the chunk's text in place, holding back what could continue in the next chunk. Returns whether the
    /// chunk changed (when it did not, the hook can let it through untouched).
    pub fn process(&mut self, request_id: &str, chunk: &mut StreamChunk, p: Patterns, mask: &str, now: Instant) -> bool {
        let mut held = self.requests.remove(request_id);
        // Hold back only if there is room for this request; if not, each chunk is redacted on its own (a pattern
        // split across chunks then gets through: the price of bounded memory under an extreme number of streams).
        let can_hold = held.is_some() || self.has_room(now);
        let mut keep: Vec<(u32, String)> = Vec::new();
        let mut changed = false;

        for choice in &mut chunk.choices {
            let before = held.as_mut().and_then(|h| take_choice(&mut h.choices, choice.index)).unwrap_or_default();
            let content = choice.delta.content.as_deref().unwrap_or("");
            let last = choice.finish_reason.is_some();
            if before.is_empty() && content.is_empty() {
                continue;
            }
            let text: Cow<str> = if before.is_empty() { Cow::Borrowed(content) } else { Cow::Owned(before + content) };
            let cut = if last || !can_hold { text.len() } else { hold_from(&text, p) };
            let (now_part, later) = text.split_at(cut);
            if !later.is_empty() {
                keep.push((choice.index, later.to_owned()));
            }
            let emitted = redact(now_part, p, mask).map_or(Cow::Borrowed(now_part), Cow::Owned);
            if emitted != content {
                changed = true;
                choice.delta.content = Some(emitted.into_owned());
            }
        }

        // Choices of this request that were held but had no text in this chunk stay held.
        if let Some(h) = held {
            keep.extend(h.choices);
        }
        if !keep.is_empty() {
            self.requests.insert(request_id.to_owned(), Held { touched: now, choices: keep });
        }
        changed
    }

    fn has_room(&mut self, now: Instant) -> bool {
        if self.requests.len() < self.max_requests {
            return true;
        }
        let ttl = self.ttl;
        self.requests.retain(|_, h| now.duration_since(h.touched) < ttl);
        self.requests.len() < self.max_requests
    }
}

fn take_choice(choices: &mut Vec<(u32, String)>, index: u32) -> Option<String> {
    let at = choices.iter().position(|(i, _)| *i == index)?;
    Some(choices.swap_remove(at).1)
}
