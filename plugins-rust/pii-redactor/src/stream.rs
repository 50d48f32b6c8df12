//! Redaction of streamed text, where a pattern can be split across chunks ("my card is 4111 1111" + " 1111 1111").
//!
//! For each request (and choice), the trailing characters of a chunk that could still become part of a pattern are
//! held back and sent in front of the next chunk's text; the choice's last chunk (the one with a finish_reason) sends
//! everything. What is held back lives in the request's own state, kept by the gateway (host services, ABI 1.2)
//! from one chunk hook to the next and freed when the request ends: the plugin keeps no map of its own. At most
//! EMAIL_MAX bytes per choice are held.

use std::borrow::Cow;

use heimdall_plugin::{serde_json, StreamChunk};

use crate::scan::{hold_from, redact, Patterns};

/// What a request holds back: (choice index, text), in the request's state between chunks.
pub type Held = Vec<(u32, String)>;

/// The held text as stored in the request's state.
pub fn encode(held: &Held) -> Vec<u8> {
    serde_json::to_vec(held).unwrap_or_default()
}

/// The held text from the request's state; nothing for bytes that are not ours.
pub fn decode(bytes: &[u8]) -> Held {
    serde_json::from_slice(bytes).unwrap_or_default()
}

/// Redacts the chunk's text in place, after the text `held` back from the request's earlier chunks; holds back what
/// could continue in the next chunk when `can_hold`. Returns whether the chunk changed (when it did not, the hook
/// lets it through untouched) and what to hold now.
pub fn process(mut held: Held, chunk: &mut StreamChunk, p: Patterns, mask: &str, can_hold: bool) -> (bool, Held) {
    let mut keep: Held = Vec::new();
    let mut changed = false;

    for choice in &mut chunk.choices {
        let before = take_choice(&mut held, choice.index).unwrap_or_default();
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

    // Choices that were held but had no text in this chunk stay held.
    keep.extend(held);
    (changed, keep)
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
    use std::collections::HashMap;

    /// The gateway's per-request state, as far as these tests need it: what each request holds, through the
    /// encoding the plugin stores.
    #[derive(Default)]
    struct Streams(HashMap<String, Vec<u8>>);

    impl Streams {
        fn process(&mut self, id: &str, chunk: &mut StreamChunk, p: Patterns, mask: &str) -> bool {
            let held = self.0.remove(id).map(|b| decode(&b)).unwrap_or_default();
            let (changed, keep) = super::process(held, chunk, p, mask, true);
            if !keep.is_empty() {
                self.0.insert(id.to_owned(), encode(&keep));
            }
            changed
        }
        fn len(&self) -> usize {
            self.0.len()
        }
        fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
        fn held_bytes(&self) -> usize {
            self.0.values().flat_map(|b| decode(b)).map(|(_, s)| s.len()).sum()
        }
    }

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
        for piece in pieces {
            let mut c = chunk(0, Some(piece), false);
            s.process(id, &mut c, p, M);
            out.push_str(c.choices[0].delta.content.as_deref().unwrap_or(""));
        }
        let mut c = chunk(0, None, true);
        s.process(id, &mut c, p, M);
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
        let mut s = Streams::default();
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
        let mut s = Streams::default();
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
        let mut s = Streams::default();
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
        let mut s = Streams::default();
        // Nothing to hold, nothing to mask: untouched.
        let mut c = chunk(0, Some("Hello, "), false);
        assert!(!s.process("r", &mut c, p, M));
        assert_eq!(c, chunk(0, Some("Hello, "), false));
        // The role-only first chunk and an empty final chunk with nothing held: untouched.
        let mut c = chunk(0, None, false);
        assert!(!s.process("r", &mut c, p, M));
        // A trailing word is held back, then sent with the next chunk.
        let mut c = chunk(0, Some("world"), false);
        assert!(s.process("r", &mut c, p, M));
        assert_eq!(c.choices[0].delta.content.as_deref(), Some(""));
        assert_eq!((s.len(), s.held_bytes()), (1, 5));
        let mut c = chunk(0, Some("!"), false);
        assert!(s.process("r", &mut c, p, M));
        assert_eq!(c.choices[0].delta.content.as_deref(), Some("world!"));
        assert!(s.is_empty());
    }

    #[test]
    fn requests_and_choices_are_separate() {
        let p = Patterns::ALL;
        let mut s = Streams::default();
        let mut a = chunk(0, Some("card 4111 1111"), false);
        let mut b = chunk(0, Some("call 555-123"), false);
        let mut b1 = chunk(1, Some("mail bob@"), false);
        s.process("A", &mut a, p, M);
        s.process("B", &mut b, p, M);
        s.process("B", &mut b1, p, M);
        assert_eq!(s.len(), 2);
        let mut a = chunk(0, Some(" 1111 1111. Bye"), false);
        let mut b = chunk(0, Some("-4567 ok"), true);
        let mut b1 = chunk(1, Some("example.com ok"), true);
        s.process("A", &mut a, p, M);
        s.process("B", &mut b, p, M);
        s.process("B", &mut b1, p, M);
        // Request A's first chunk sent "card ", its second sends the card (masked) and holds "Bye".
        assert_eq!(a.choices[0].delta.content.as_deref(), Some("[X]. "));
        assert_eq!(b.choices[0].delta.content.as_deref(), Some("[X] ok"));
        assert_eq!(b1.choices[0].delta.content.as_deref(), Some("[X] ok"));
        assert_eq!(s.len(), 1);
        let mut a = chunk(0, None, true);
        s.process("A", &mut a, p, M);
        assert_eq!(a.choices[0].delta.content.as_deref(), Some("Bye"));
        assert!(s.is_empty());
    }

    #[test]
    fn holding_back_is_bounded_and_can_be_refused() {
        let p = Patterns::ALL;
        let mut s = Streams::default();
        // A long run is held back only up to the cap.
        let mut c = chunk(0, Some(&"ab.".repeat(10_000)), false);
        s.process("f", &mut c, p, M);
        assert!(s.held_bytes() <= crate::scan::EMAIL_MAX);
        // When the state cannot hold it (its bound reached), each chunk is redacted on its own.
        let mut c = chunk(0, Some("card 4111 1111"), false);
        let (changed, keep) = process(Vec::new(), &mut c, p, M, false);
        assert!(!changed && keep.is_empty());
        // Held text of a choice with no text in this chunk stays held.
        let mut c = chunk(1, Some("x"), false);
        let (_, keep) = process(vec![(0, "4111".into())], &mut c, p, M, true);
        assert!(keep.contains(&(0, "4111".into())));
    }
}
