//! pii-redactor: masks emails, phone numbers and payment card numbers (Luhn-checked) in chat requests before they
//! leave the gateway, in responses, and in streamed chunks, including a pattern split across two chunks.
//!
//! Config: `{"mask": "[REDACTED]", "emails": true, "phones": true, "cards": true}` (these are the defaults).
//!
//! Uses the gateway's host services (ABI 1.2): the text a stream holds back between chunks lives in the request's
//! state, and the plugin counts what it masks in `/metrics` (`heimdall_plugin_pii_redactor_redactions_total`).

pub mod scan;
pub mod stream;

use heimdall_plugin::host::{self, Counter, Level, Status};
use heimdall_plugin::{
    ChatRequest, ChunkAction, Ctx, Json, Plugin, PostAction, PostInput, PreAction, Result, StreamChunk, Value,
};
use serde::Deserialize;

use scan::{might_match, redact, Patterns};

/// The key of the request's state under which a stream's held-back text waits for the next chunk.
const HELD: &str = "held";

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
    /// Messages, responses and stream chunks masked, by where ("request", "response", "stream").
    redactions: Counter,
}

impl PiiRedactor {
    /// Needs the host services (per-request state for streams): on a gateway older than ABI 1.2 it refuses to
    /// start, with the versioned message.
    pub fn new(config: Config) -> Result<Self> {
        host::require()?;
        Ok(PiiRedactor {
            mask: config.mask,
            patterns: Patterns { emails: config.emails, phones: config.phones, cards: config.cards },
            redactions: Counter::define("redactions_total", "Texts masked, by where.", &["where"])?,
        })
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

    /// Counts a masking and says so in the gateway's debug log, with the request id.
    fn masked(&self, ctx: &Ctx, place: &str) {
        let _ = self.redactions.inc(&[place]); // a metric that cannot be recorded never fails a request
        ctx.log(Level::Debug, &format!("masked PII in the {place}"));
    }
}

heimdall_plugin::export_plugin! {
    "pii-redactor",
    impl Plugin for PiiRedactor {
        fn init(config: Value) -> Result<Self> {
            PiiRedactor::new(heimdall_plugin::config(config)?)
        }

        /// Masks message contents before the request leaves. Unchanged requests (the usual case) are passed on as they
        /// came: not re-serialised, and not even parsed when the raw JSON holds no '@' and no run of 8 digits.
        fn pre_hook(&mut self, ctx: &Ctx, request: Json<ChatRequest>) -> Result<PreAction> {
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
            if changed {
                self.masked(ctx, "request");
            }
            Ok(if changed { PreAction::Request(req) } else { PreAction::Continue })
        }

        /// Masks the response's message contents. After a stream, this is the assembled response. (What a stream
        /// held back is in the request's state, which the gateway frees when the request ends.)
        fn post_hook(&mut self, ctx: &Ctx, result: PostInput) -> Result<PostAction> {
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
            if changed {
                self.masked(ctx, "response");
            }
            Ok(if changed { PostAction::Response(resp) } else { PostAction::Continue })
        }

        /// Masks streamed text, holding back a chunk's trailing characters that could be the start of a pattern until
        /// the next chunk (or the last one) shows whether they are.
        fn stream_chunk_hook(&mut self, ctx: &Ctx, chunk: Json<StreamChunk>) -> Result<ChunkAction> {
            if !self.patterns.any() {
                return Ok(ChunkAction::Continue);
            }
            let state = ctx.state();
            let held = state.get(HELD)?;
            let mut chunk = chunk.into_inner()?;
            let original = chunk.clone();
            let before = held.as_deref().map(stream::decode).unwrap_or_default();
            let (mut changed, keep) = stream::process(before.clone(), &mut chunk, self.patterns, &self.mask, true);
            let stored = if keep.is_empty() {
                if held.is_some() { state.remove(HELD) } else { Ok(()) }
            } else {
                state.set(HELD, stream::encode(&keep))
            };
            match stored {
                Ok(()) => {}
                // The state's bound reached: send everything now, masked chunk by chunk (a pattern split across
                // this chunk and the next then gets through: the price of bounded memory).
                Err(e) if e.status == Status::Limit => {
                    chunk = original;
                    changed = stream::process(before, &mut chunk, self.patterns, &self.mask, false).0;
                    let _ = state.remove(HELD);
                }
                Err(e) => return Err(e.into()),
            }
            if changed {
                self.masked(ctx, "stream");
            }
            Ok(if changed { ChunkAction::Replace(chunk) } else { ChunkAction::Continue })
        }
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use heimdall_plugin::{json, serde_json, Content};

    /// The plugin, with the SDK's in-memory host standing in for the gateway's services. Tests run in parallel on
    /// one store: each uses request handles of its own.
    fn plugin(config: Value) -> PiiRedactor {
        host::memory::install();
        PiiRedactor::init(config).unwrap()
    }

    const CTX: &[u8] = br#"{"request_handle":1,"request_id":"r1","route":"/v1/chat/completions","provider":"openai","model":"m","stream":true,"headers":{},"values":{}}"#;

    #[test]
    fn config_defaults_and_errors() {
        let p = plugin(json!({}));
        assert_eq!(p.mask, "[REDACTED]");
        assert_eq!(p.patterns, Patterns::ALL);
        let p = plugin(json!({"mask": "***", "phones": false}));
        assert_eq!((p.mask.as_str(), p.patterns.phones, p.patterns.cards), ("***", false, true));
        let err = PiiRedactor::init(json!({"emails": "yes"})).err().unwrap().to_string();
        assert!(err.starts_with("invalid config: invalid type"), "{err}");
        let err = PiiRedactor::init(json!({"email": true})).err().unwrap().to_string();
        assert!(err.starts_with("invalid config: unknown field `email`"), "{err}");
    }

    #[test]
    fn pre_hook_masks_messages_and_keeps_the_rest() {
        let mut p = plugin(json!({}));
        let req = json!({
            "model": "m", "temperature": 0.2,
            "messages": [
                {"role": "system", "content": "Be nice."},
                {"role": "user", "content": "I am bob@example.com, card 4111 1111 1111 1111, phone +1 (555) 123-4567."},
                {"role": "user", "content": [{"type": "text", "text": "or zoe@example.org"}, {"type": "image_url", "image_url": {"url": "https://x/1234567890123.png"}}]}
            ]
        })
        .to_string();
        let ctx = Ctx::new(CTX);
        let PreAction::Request(out) = p.pre_hook(&ctx, Json::new(req.as_bytes())).unwrap() else {
            panic!("expected a request")
        };
        assert_eq!(out.messages[0].content, Some(Content::Text("Be nice.".into())));
        assert_eq!(out.messages[1].text(), "I am [REDACTED], card [REDACTED], phone [REDACTED].");
        assert_eq!(out.messages[2].text(), "or [REDACTED]");
        // The image URL is not message text: left alone. Unknown fields are kept.
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["messages"][2]["content"][1]["image_url"]["url"], json!("https://x/1234567890123.png"));
        assert_eq!(v["temperature"], json!(0.2));
        assert!(ctx.values_set().is_empty());
    }

    #[test]
    fn pre_hook_continues_when_nothing_matches() {
        let mut p = plugin(json!({}));
        let ctx = Ctx::new(CTX);
        // No '@', no 8-digit run: not even parsed (the bytes are not valid JSON, which would fail if parsed).
        assert_eq!(p.pre_hook(&ctx, Json::new(b"{not json, 2 + 2")).unwrap(), PreAction::Continue);
        // Parsed, nothing masked: Continue, not a re-serialised copy.
        let req = br#"{"model":"m","messages":[{"role":"user","content":"Email me @ noon. Order 12345678 is late."}]}"#;
        assert_eq!(p.pre_hook(&ctx, Json::new(req)).unwrap(), PreAction::Continue);
        // All patterns off: nothing is looked at.
        let mut off = plugin(json!({"emails": false, "phones": false, "cards": false}));
        let req = br#"{"model":"m","messages":[{"role":"user","content":"bob@example.com"}]}"#;
        assert_eq!(off.pre_hook(&ctx, Json::new(req)).unwrap(), PreAction::Continue);
    }

    #[test]
    fn post_hook_masks_responses() {
        let mut p = plugin(json!({"mask": "<pii>"}));
        let ctx = Ctx::new(CTX);
        let resp = br#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Write to ann@example.com"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#;
        let PostAction::Response(out) = p.post_hook(&ctx, PostInput::Response(Json::new(resp))).unwrap() else {
            panic!()
        };
        assert_eq!(out.choices[0].message.text(), "Write to <pii>");
        assert_eq!(out.extra["created"], json!(1));
        let clean =
            br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}"#;
        assert_eq!(p.post_hook(&ctx, PostInput::Response(Json::new(clean))).unwrap(), PostAction::Continue);
        let err = br#"{"status_code":502,"message":"bob@example.com"}"#;
        assert_eq!(p.post_hook(&ctx, PostInput::Error(Json::new(err))).unwrap(), PostAction::Continue);
    }

    fn chunk_json(content: Option<&str>, finish: Option<&str>) -> String {
        json!({"id": "c", "object": "chat.completion.chunk", "model": "m",
               "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]})
        .to_string()
    }

    /// Runs the chunks through the hook; returns what the client sees.
    fn run_stream(p: &mut PiiRedactor, ctx: &[u8], pieces: &[&str]) -> String {
        let mut seen = String::new();
        let mut all: Vec<String> = pieces.iter().map(|s| chunk_json(Some(s), None)).collect();
        all.push(chunk_json(None, Some("stop")));
        for c in &all {
            let action = p.stream_chunk_hook(&Ctx::new(ctx), Json::new(c.as_bytes())).unwrap();
            let chunk: StreamChunk = match action {
                ChunkAction::Continue => serde_json::from_str(c).unwrap(),
                ChunkAction::Replace(chunk) => chunk,
                other => panic!("unexpected {other:?}"),
            };
            seen.push_str(chunk.choices[0].delta.content.as_deref().unwrap_or(""));
        }
        seen
    }

    #[test]
    fn stream_chunks_with_a_card_split_across_them() {
        let mut p = plugin(json!({}));
        let ctx = br#"{"request_handle":10,"request_id":"r10","stream":true}"#;
        let seen = run_stream(
            &mut p,
            ctx,
            &["My card is 4111 11", "11 1111 1111 and my mail is jo", "e@exa", "mple.com. Bye"],
        );
        assert_eq!(seen, "My card is [REDACTED] and my mail is [REDACTED]. Bye");
        assert_eq!(host::memory::state_keys(10), 0, "nothing held after the final chunk");
        assert_eq!(host::memory::metric("redactions_total", "stream").1 >= 2, true, "counted in the metric");
        assert!(host::memory::logs().iter().any(|(r, l, m)| *r == 10 && *l == Level::Debug && m == "masked PII in the stream"));
    }

    #[test]
    fn held_text_waits_in_the_request_state() {
        let mut p = plugin(json!({}));
        let ctx = br#"{"request_handle":11,"request_id":"r11","stream":true}"#;
        let c = chunk_json(Some("cut short mid-wo"), None);
        p.stream_chunk_hook(&Ctx::new(ctx), Json::new(c.as_bytes())).unwrap();
        assert_eq!(host::memory::state_keys(11), 1, "the held text is in the request's state, not the plugin");
        let resp = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"cut short mid-wo"},"finish_reason":null}]}"#;
        p.post_hook(&Ctx::new(ctx), PostInput::Response(Json::new(resp))).unwrap();
        host::memory::end_request(11); // the gateway frees it when the request ends
        assert_eq!(host::memory::state_keys(11), 0);
    }

    #[test]
    fn a_stream_without_a_request_handle_is_an_error() {
        let mut p = plugin(json!({}));
        let c = chunk_json(Some("text"), None);
        let err = p.stream_chunk_hook(&Ctx::new(br#"{"request_id":"x"}"#), Json::new(c.as_bytes())).unwrap_err();
        assert!(err.to_string().contains("HEIMDALL_E_INVALID") && err.to_string().contains("no request_handle"), "{err}");
    }

    #[test]
    fn concurrent_streams_do_not_mix() {
        let mut p = plugin(json!({}));
        let a = br#"{"request_handle":20,"request_id":"a","stream":true}"#;
        let b = br#"{"request_handle":21,"request_id":"b","stream":true}"#;
        let send = |p: &mut PiiRedactor, ctx: &[u8], text: Option<&str>, fin: Option<&str>| {
            let c = chunk_json(text, fin);
            match p.stream_chunk_hook(&Ctx::new(ctx), Json::new(c.as_bytes())).unwrap() {
                ChunkAction::Continue => text.unwrap_or("").to_owned(),
                ChunkAction::Replace(ch) => ch.choices[0].delta.content.clone().unwrap_or_default(),
                other => panic!("{other:?}"),
            }
        };
        let mut sa = String::new();
        let mut sb = String::new();
        sa += &send(&mut p, a, Some("a: 4111 1111 "), None);
        sb += &send(&mut p, b, Some("b: 555-123-"), None);
        sa += &send(&mut p, a, Some("1111 1111 end"), None);
        sb += &send(&mut p, b, Some("4567 end"), None);
        sa += &send(&mut p, a, None, Some("stop"));
        sb += &send(&mut p, b, None, Some("stop"));
        assert_eq!(sa, "a: [REDACTED] end");
        assert_eq!(sb, "b: [REDACTED] end");
        assert_eq!(host::memory::state_keys(20) + host::memory::state_keys(21), 0);
    }
}
