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
    pub fn process(
        &mut self,
        request_id: &str,
        chunk: &mut StreamChunk,
        p: Patterns,
        mask: &str,
        now: Instant,
    ) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{redact, Patterns};
    use heimdall_plugin::{ChunkChoice, Delta};

    const M: &str = "[X]";

    fn chunk(index: u32, content: Option<&str>, finish: bool) -> StreamChunk {
        StreamChunk {
            id: "c".into(),
            object: "chat.completion.chunk".into(),
            choices: vec![ChunkChoice {
                index,
                delta: Delta { content: content.map(str::to_owned), ..Delta::default() },
                finish_reason: finish.then(|| "stop".to_owned()),
                ..ChunkChoice::default()
            }],
            ..StreamChunk::default()
        }
    }

    /// Streams `pieces` (the last chunk carries the finish_reason and no text, as OpenAI sends it) and returns what
    /// the client receives, concatenated.
    fn stream(s: &mut Streams, id: &str, pieces: &[&str], p: Patterns) -> String {
        let mut out = String::new();
        let now = Instant::now();
        for piece in pieces {
            let mut c = chunk(0, Some(piece), false);
            s.process(id, &mut c, p, M, now);
            out.push_str(c.choices[0].delta.content.as_deref().unwrap_or(""));
        }
        let mut c = chunk(0, None, true);
        s.process(id, &mut c, p, M, now);
        out.push_str(c.choices[0].delta.content.as_deref().unwrap_or(""));
        out
    }

    fn whole(text: &str, p: Patterns) -> String {
        redact(text, p, M).unwrap_or_else(|| text.to_owned())
    }

    const SAMPLES: &[&str] = &[
        "My card is 4111 1111 1111 1111, thanks.",
        "Reach john.doe+x@example.co.uk or call +1 (555) 123-4567!",
        "4111111111111111",
        "mail: zoë@example.com",
        "Numbers 1234 5678 1234 5678 and 2024-01-15 stay; 555.123.4567 goes.",
        "連絡先はtest@example.jpです 📞 +44 20 7946 0958",
        "no pii here at all, just words",
        "a@b.co a@b.co 5555555555554444 06 12 34 56 78",
    ];

    #[test]
    fn split_anywhere_in_two_or_three_chunks() {
        let p = Patterns::ALL;
        let mut s = Streams::new(100, Duration::from_secs(60));
        for text in SAMPLES {
            let want = whole(text, p);
            let cuts: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
            for &i in &cuts {
                let got = stream(&mut s, "r", &[&text[..i], &text[i..]], p);
                assert_eq!(got, want, "split at {i}: {:?} + {:?}", &text[..i], &text[i..]);
                for &j in cuts.iter().filter(|&&j| j >= i) {
                    let got = stream(&mut s, "r", &[&text[..i], &text[i..j], &text[j..]], p);
                    assert_eq!(got, want, "split at {i}, {j}");
                }
            }
            assert!(s.is_empty(), "state is dropped at the last chunk");
        }
    }

    #[test]
    fn token_by_token() {
        let p = Patterns::ALL;
        let mut s = Streams::new(100, Duration::from_secs(60));
        for text in SAMPLES {
            // One character per chunk: the worst case for split patterns.
            let pieces: Vec<&str> = text.char_indices().map(|(i, c)| &text[i..i + c.len_utf8()]).collect();
            assert_eq!(stream(&mut s, "r", &pieces, p), whole(text, p), "{text}");
        }
    }

    /// Random texts from an alphabet dense in pattern characters, cut at random points.
    #[test]
    fn random_texts_and_splits() {
        let alphabet: Vec<char> = "0123456789     --..()+@abcxyz.é,!\n".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut s = Streams::new(100, Duration::from_secs(60));
        for round in 0..3000 {
            let p = match round % 4 {
                0 => Patterns::ALL,
                1 => Patterns { emails: false, phones: true, cards: true },
                2 => Patterns { emails: true, phones: false, cards: false },
                _ => Patterns { emails: false, phones: false, cards: true },
            };
            let len = 1 + next(80);
            let mut text: String = (0..len).map(|_| alphabet[next(alphabet.len())]).collect();
            // Plant real patterns now and then.
            for planted in ["4111 1111 1111 1111", "a.b@ex.com", "555-123-4567", "+44 20 7946 0958"] {
                if next(3) == 0 {
                    let at = text.char_indices().map(|(i, _)| i).nth(next(text.chars().count())).unwrap_or(0);
                    text.insert_str(at, planted);
                }
            }
            let mut pieces = Vec::new();
            let mut at = 0;
            while at < text.len() {
                let mut end = (at + 1 + next(12)).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                pieces.push(&text[at..end]);
                at = end;
            }
            assert_eq!(stream(&mut s, "r", &pieces, p), whole(&text, p), "{text:?} in {pieces:?}");
        }
        assert!(s.is_empty());
    }

    #[test]
    fn unchanged_chunks_are_not_replaced() {
        let p = Patterns::ALL;
        let mut s = Streams::new(100, Duration::from_secs(60));
        let now = Instant::now();
        // Nothing to hold, nothing to mask: untouched.
        let mut c = chunk(0, Some("Hello, "), false);
        assert!(!s.process("r", &mut c, p, M, now));
        assert_eq!(c, chunk(0, Some("Hello, "), false));
        // The role-only first chunk and an empty final chunk with nothing held: untouched.
        let mut c = chunk(0, None, false);
        assert!(!s.process("r", &mut c, p, M, now));
        // A trailing word is held back, then sent with the next chunk.
        let mut c = chunk(0, Some("world"), false);
        assert!(s.process("r", &mut c, p, M, now));
        assert_eq!(c.choices[0].delta.content.as_deref(), Some(""));
        assert_eq!((s.len(), s.held_bytes()), (1, 5));
        let mut c = chunk(0, Some("!"), false);
        assert!(s.process("r", &mut c, p, M, now));
        assert_eq!(c.choices[0].delta.content.as_deref(), Some("world!"));
        assert!(s.is_empty());
    }

    #[test]
    fn requests_and_choices_are_separate() {
        let p = Patterns::ALL;
        let mut s = Streams::new(100, Duration::from_secs(60));
        let now = Instant::now();
        let mut a = chunk(0, Some("card 4111 1111"), false);
        let mut b = chunk(0, Some("call 555-123"), false);
        let mut b1 = chunk(1, Some("mail bob@"), false);
        s.process("A", &mut a, p, M, now);
        s.process("B", &mut b, p, M, now);
        s.process("B", &mut b1, p, M, now);
        assert_eq!(s.len(), 2);
        let mut a = chunk(0, Some(" 1111 1111. Bye"), false);
        let mut b = chunk(0, Some("-4567 ok"), true);
        let mut b1 = chunk(1, Some("example.com ok"), true);
        s.process("A", &mut a, p, M, now);
        s.process("B", &mut b, p, M, now);
        s.process("B", &mut b1, p, M, now);
        // Request A's first chunk sent "card ", its second sends the card (masked) and holds "Bye".
        assert_eq!(a.choices[0].delta.content.as_deref(), Some("[X]. "));
        assert_eq!(b.choices[0].delta.content.as_deref(), Some("[X] ok"));
        assert_eq!(b1.choices[0].delta.content.as_deref(), Some("[X] ok"));
        assert_eq!(s.len(), 1);
        let mut a = chunk(0, None, true);
        s.process("A", &mut a, p, M, now);
        assert_eq!(a.choices[0].delta.content.as_deref(), Some("Bye"));
        assert!(s.is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let p = Patterns::ALL;
        let mut s = Streams::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for id in ["a", "b", "c"] {
            let mut c = chunk(0, Some("held"), false);
            s.process(id, &mut c, p, M, t0);
        }
        assert_eq!(s.len(), 3);
        // Full: a new stream is redacted chunk by chunk, without holding back.
        let mut c = chunk(0, Some("not held"), false);
        assert!(!s.process("d", &mut c, p, M, t0));
        assert_eq!(c.choices[0].delta.content.as_deref(), Some("not held"));
        assert_eq!(s.len(), 3);
        // After the TTL, idle streams make room.
        let later = t0 + Duration::from_secs(61);
        let mut c = chunk(0, Some("held"), false);
        assert!(s.process("e", &mut c, p, M, later));
        assert_eq!(s.len(), 1);
        // finish() forgets a request (PostHook after the stream).
        s.finish("e");
        assert!(s.is_empty());
        // A long run is held back only up to the caps.
        let mut c = chunk(0, Some(&"ab.".repeat(10_000)), false);
        s.process("f", &mut c, p, M, later);
        assert!(s.held_bytes() <= crate::scan::EMAIL_MAX);
    }
}
