//! Hand-written scanners for emails, phone numbers and payment card numbers. One pass over the bytes each, no
//! allocation unless something matches; all patterns are ASCII, so every position they report is a char boundary.

/// Which patterns to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patterns {
    pub emails: bool,
    pub phones: bool,
    pub cards: bool,
}

impl Patterns {
    pub const ALL: Patterns = Patterns { emails: true, phones: true, cards: true };

    pub fn any(&self) -> bool {
        self.emails || self.phones || self.cards
    }
}

/// What a match is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Email,
    Phone,
    Card,
}

/// A match: bytes `start..end` of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
}

/// The longest an email can be (64 for the local part, "@", 253 for the domain, rounded up).
pub const EMAIL_MAX: usize = 320;

/// Every match in `text`, in order, not overlapping.
pub fn find(text: &str, p: Patterns) -> Vec<Span> {
    let b = text.as_bytes();
    let mut spans = Vec::new();
    if p.emails {
        find_emails(text, &mut spans);
    }
    if p.phones || p.cards {
        let emails = spans.len();
        find_numbers(b, p, &mut spans);
        if emails > 0 {
            // Drop numbers inside emails (there are none in practice: a digit run inside an email has a letter or
            // '@' next to it, so it is not a number's boundary), then order by position.
            let (e, n) = spans.split_at(emails);
            let keep: Vec<Span> =
                n.iter().copied().filter(|s| !e.iter().any(|m| s.start < m.end && m.start < s.end)).collect();
            spans.truncate(emails);
            spans.extend(keep);
            spans.sort_by_key(|s| s.start);
        }
    }
    spans
}

/// `text` with every match replaced by `mask`, or None when nothing matched.
pub fn redact(text: &str, p: Patterns, mask: &str) -> Option<String> {
    let spans = find(text, p);
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for s in &spans {
        out.push_str(&text[at..s.start]);
        out.push_str(mask);
        at = s.end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

/// Where the tail of a streamed text that could still become (part of) a match starts: `text[..cut]` can be redacted
/// and sent now, `text[cut..]` must wait for the next chunk.
///
/// The cut is placed where no match can span it, whatever comes next: the last character must not be one that a
/// match could continue from (an email character, a digit, a separator after a digit, a word character that would
/// glue to a number), and the characters on either side of the cut must not be ones that a match could join
/// ([`joined`]). So redacting `text[..cut]` on its own, then the rest with what follows, gives exactly what redacting
/// the whole text gives (tested over every split point, and on random texts). The tail is at most HOLD_MAX bytes:
/// past that (a 320-byte run of email characters, say), the guarantee is given up for bounded memory.
pub fn hold_from(text: &str, p: Patterns) -> usize {
    let n = text.len();
    let Some(last) = text.chars().next_back() else { return 0 };
    let numbers = p.phones || p.cards;
    let continues = (p.emails && is_email_ch(last))
        || (numbers && (is_number_start(last) || is_group_end(last) || is_word_ch(last)))
        || (numbers && is_separator(last) && text[..n - 1].chars().next_back().is_some_and(is_group_end));
    if !continues {
        return n;
    }
    let mut cut = n - last.len_utf8();
    while let Some(before) = text[..cut].chars().next_back() {
        let at = text[cut..].chars().next().unwrap_or(' ');
        if !joined(before, at, p) {
            break;
        }
        cut -= before.len_utf8();
    }
    // Separators at the start of the tail belong to no match (the character before them joins nothing): send them.
    let b = text.as_bytes();
    while cut < n && (matches!(b[cut], b' ' | b')') || (!p.emails && matches!(b[cut], b'-' | b'.'))) {
        cut += 1;
    }
    if n - cut > HOLD_MAX {
        cut = capped(text, n - HOLD_MAX);
    }
    cut
}

/// The most a stream holds back per choice: an email's maximum length.
pub const HOLD_MAX: usize = EMAIL_MAX;

/// Whether one match could contain both `before` and the `at` that follows it.
fn joined(before: char, at: char, p: Patterns) -> bool {
    if p.emails && is_email_ch(before) && is_email_ch(at) {
        return true;
    }
    (p.phones || p.cards)
        && ((is_number_ch(before) && is_number_ch(at))
            // "abc555": the word decides that 555 is not a number's start
            || (is_word_ch(before) && is_number_start(at))
            // "555abc": the word decides that 555 is not a number's end
            || (is_group_end(before) && is_word_ch(at)))
}

fn is_number_ch(c: char) -> bool {
    c.is_ascii() && is_number_char(c as u8)
}

fn is_number_start(c: char) -> bool {
    c.is_ascii_digit() || c == '+' || c == '('
}

fn is_group_end(c: char) -> bool {
    c.is_ascii_digit() || c == ')'
}

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '.')
}

fn is_word_ch(c: char) -> bool {
    c.is_ascii() && is_word(c as u8)
}

/// A cut forced inside a long run, moved forward to the start of a word or digit group, so that what is held back
/// does not begin in the middle of one. (A word longer than the cap is sent whole: it can't be part of a match.)
fn capped(text: &str, at: usize) -> usize {
    if at == 0 {
        return 0;
    }
    let mut i = at;
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    let glue = |c: char| c.is_alphanumeric() || c == '_';
    let mut prev_word = text[..i].chars().next_back().is_some_and(glue);
    for (j, c) in text[i..].char_indices() {
        let word = glue(c);
        if !(word && prev_word) {
            return i + j;
        }
        prev_word = word;
    }
    text.len()
}

/// Cheap test on raw JSON: false when no match can be in it, so the hook can skip parsing. Conservative: any `\u`
/// escape (which could hide an '@' or a digit) says "maybe".
pub fn might_match(raw: &[u8], p: Patterns) -> bool {
    if raw.windows(2).any(|w| w == b"\\u") {
        return true;
    }
    if p.emails && raw.contains(&b'@') {
        return true;
    }
    if p.phones || p.cards {
        // A phone has 8 digits or more, a card 13; count digits in runs of number characters.
        let mut digits = 0;
        for &c in raw {
            if c.is_ascii_digit() {
                digits += 1;
                if digits >= 8 {
                    return true;
                }
            } else if !is_number_char(c) {
                digits = 0;
            }
        }
    }
    false
}

// ---------------------------------------------------------------------------------------------------------------
// Emails: local@domain.tld
// ---------------------------------------------------------------------------------------------------------------

fn is_local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// A local-part character: ASCII ones, and the letters of Latin, Greek and Cyrillic scripts (below U+0590), so that
/// "zoë@example.com" is matched whole. Other scripts (CJK, ...) stop the local part: they are often written without
/// a space before an address.
fn is_local_ch(c: char) -> bool {
    if c.is_ascii() {
        is_local_char(c as u8)
    } else {
        (c as u32) < 0x0590 && c.is_alphanumeric()
    }
}

fn is_domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-')
}

fn is_email_ch(c: char) -> bool {
    is_local_ch(c) || c == '@'
}

fn find_emails(text: &str, spans: &mut Vec<Span>) {
    let b = text.as_bytes();
    let mut last_end = 0;
    let mut at = 0;
    while let Some(off) = b[at..].iter().position(|&c| c == b'@') {
        let a = at + off;
        at = a + 1;
        if a < last_end {
            continue;
        }
        // Local part: back over local characters (at most 64 bytes), then skip leading dots.
        let mut start = text[last_end..a]
            .char_indices()
            .rev()
            .take_while(|&(_, c)| is_local_ch(c))
            .last()
            .map_or(a, |(i, _)| last_end + i);
        while start < a && b[start] == b'.' {
            start += 1;
        }
        if start == a || a - start > 64 || b[a - 1] == b'.' {
            continue;
        }
        // Domain: labels of letters, digits and '-', separated by single dots; the last one (the TLD) alphabetic.
        let mut end = a + 1;
        while end < b.len() && is_domain_char(b[end]) {
            end += 1;
        }
        let Some(end) = domain_end(&b[a + 1..end]).map(|len| a + 1 + len) else { continue };
        spans.push(Span { start, end, kind: Kind::Email });
        last_end = end;
        at = end;
    }
}

/// The length of the valid domain at the start of `d` (a run of domain characters), or None.
fn domain_end(d: &[u8]) -> Option<usize> {
    let mut labels = 0;
    let mut good_end = None;
    let mut i = 0;
    while i < d.len() {
        let s = i;
        while i < d.len() && d[i] != b'.' {
            i += 1;
        }
        let label = &d[s..i];
        if label.is_empty() || label.len() > 63 || label[0] == b'-' || label[label.len() - 1] == b'-' {
            break;
        }
        labels += 1;
        if labels >= 2 && label.len() >= 2 && label.iter().all(u8::is_ascii_alphabetic) {
            good_end = Some(i);
        }
        if i < d.len() {
            i += 1; // the dot
        }
    }
    good_end.filter(|&e| e <= 253)
}

// ---------------------------------------------------------------------------------------------------------------
// Numbers: cards and phones
// ---------------------------------------------------------------------------------------------------------------

fn is_number_char(c: u8) -> bool {
    c.is_ascii_digit() || matches!(c, b' ' | b'-' | b'.' | b'(' | b')' | b'+')
}

/// Letters, digits and '_' glue a number to a word: "ABC4111..." or "4111...xyz" is an identifier, not a number.
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// A group of digits in a run, maybe in parentheses.
#[derive(Debug, Clone, Copy)]
struct Group {
    start: usize, // the '(' for a parenthesised group
    end: usize,   // after the ')' for a parenthesised group
    digits_start: usize,
    digits: usize,
    paren: bool,
    /// The separator before this group: b' ', b'-', b'.', or 0 (first group, or right after a ')').
    sep: u8,
}

fn find_numbers(b: &[u8], p: Patterns, spans: &mut Vec<Span>) {
    let mut i = 0;
    let mut groups: Vec<Group> = Vec::new();
    while i < b.len() {
        let c = b[i];
        let starts = c.is_ascii_digit() || c == b'+' || c == b'(';
        if !starts || (i > 0 && is_word(b[i - 1])) {
            // Skip the rest of a digit run glued to a word.
            if c.is_ascii_digit() {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            } else {
                i += 1;
            }
            continue;
        }
        let plus = c == b'+';
        let end = parse_run(b, if plus { i + 1 } else { i }, &mut groups);
        if groups.is_empty() {
            i += 1;
            continue;
        }
        // A run glued to a word on the right: its last group is not a number's end.
        let mut usable = groups.len();
        if end < b.len() && is_word(b[end]) {
            usable -= 1;
        }
        match_run(b, &groups[..usable], plus, p, spans);
        i = end.max(i + 1);
    }
}

/// Parses groups from `i`: digits or "(digits)", joined by one separator (' ', '-', '.'), or by nothing after a ')'.
/// Returns where the run ends.
fn parse_run(b: &[u8], mut i: usize, groups: &mut Vec<Group>) -> usize {
    groups.clear();
    let mut sep = 0u8;
    let mut end = i;
    loop {
        let start = i;
        let paren = i < b.len() && b[i] == b'(';
        if paren {
            i += 1;
        }
        let digits_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = i - digits_start;
        if digits == 0 || digits > 19 {
            break;
        }
        if paren {
            if i < b.len() && b[i] == b')' {
                i += 1;
            } else {
                break;
            }
        }
        groups.push(Group { start, end: i, digits_start, digits, paren, sep });
        end = i;
        // What joins the next group.
        if i + 1 < b.len() && matches!(b[i], b' ' | b'-' | b'.') && (b[i + 1].is_ascii_digit() || b[i + 1] == b'(') {
            sep = b[i];
            i += 1;
        } else if paren && i < b.len() && b[i].is_ascii_digit() {
            sep = 0;
        } else {
            break;
        }
    }
    end
}

/// Finds cards in a run, then phone numbers in what is left of it.
fn match_run(b: &[u8], g: &[Group], plus: bool, p: Patterns, spans: &mut Vec<Span>) {
    let mut rest_from = 0; // groups before this index are used
    if p.cards {
        let mut i = 0;
        while i < g.len() {
            match card_at(b, g, i, plus) {
                Some(j) => {
                    if p.phones && rest_from < i {
                        phone_in(&g[rest_from..i], plus && rest_from == 0, spans);
                    }
                    spans.push(Span { start: g[i].digits_start, end: g[j].end, kind: Kind::Card });
                    i = j + 1;
                    rest_from = i;
                }
                None => i += 1,
            }
        }
    }
    if p.phones && rest_from < g.len() {
        phone_in(&g[rest_from..], plus && rest_from == 0, spans);
    }
}

/// The last group of the longest card that starts at group `i`, if any: 13 to 19 digits that pass the Luhn check, in
/// one group or in groups of 3 to 6 digits joined by spaces or dashes.
fn card_at(b: &[u8], g: &[Group], i: usize, plus: bool) -> Option<usize> {
    if g[i].paren || (i == 0 && plus) {
        return None;
    }
    let mut best = None;
    let mut total = 0;
    let mut ranges: Vec<std::ops::Range<usize>> = Vec::with_capacity(6);
    for j in i..g.len() {
        let x = &g[j];
        if j > i && (x.paren || !matches!(x.sep, b' ' | b'-')) {
            break;
        }
        total += x.digits;
        if total > 19 {
            break;
        }
        ranges.push(x.digits_start..x.digits_start + x.digits);
        let grouped_ok = j == i || g[i..=j].iter().all(|x| (3..=6).contains(&x.digits));
        if total >= 13 && grouped_ok && luhn_ranges(b, &ranges) {
            best = Some(j);
        }
    }
    best
}

/// The Luhn check over the digits in `ranges` of `b`.
fn luhn_ranges(b: &[u8], ranges: &[std::ops::Range<usize>]) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for r in ranges.iter().rev() {
        for &c in b[r.clone()].iter().rev() {
            let mut d = u32::from(c - b'0');
            if double {
                d *= 2;
                if d > 9 {
                    d -= 9;
                }
            }
            sum += d;
            double = !double;
        }
    }
    sum % 10 == 0
}

/// The Luhn check of a digit string ("4111111111111111"); false if it has anything but digits.
pub fn luhn(digits: &str) -> bool {
    let all = 0..digits.len();
    !digits.is_empty()
        && digits.bytes().all(|c| c.is_ascii_digit())
        && luhn_ranges(digits.as_bytes(), std::slice::from_ref(&all))
}

/// Whether `g` (the rest of a run once cards are taken out) is a phone number; if so it is added to `spans`.
///
/// Matched: "+" and 8 to 15 digits in any grouping ("+14155552671", "+44 20 7946 0958", "+1 (555) 123-4567");
/// without "+", 10 to 15 digits in 2 to 6 groups whose last group has 4 digits or more ("555-123-4567",
/// "(555) 123-4567", "1-800-555-1234", "030 12345678"), or five pairs ("06 12 34 56 78"). Dots only as in
/// "555.123.4567". Not matched: a plain digit run without "+" (an id), dates ("2024-01-15 ..."), thousands
/// ("1 000 000 000"), IP addresses, 7-digit local numbers.
fn phone_in(g: &[Group], plus: bool, spans: &mut Vec<Span>) {
    if g.is_empty() {
        return;
    }
    let digits: usize = g.iter().map(|x| x.digits).sum();
    let n = g.len();
    let dots = g[1..].iter().filter(|x| x.sep == b'.').count();
    let ok = if dots > 0 {
        // 555.123.4567 only
        dots == n - 1
            && n == 3
            && !g.iter().any(|x| x.paren)
            && g[0].digits == 3
            && g[1].digits == 3
            && g[2].digits == 4
    } else if plus {
        (8..=15).contains(&digits) && n <= 7
    } else {
        let last = g[n - 1].digits;
        let pairs = n == 5 && g.iter().all(|x| x.digits == 2 && !x.paren);
        (10..=15).contains(&digits) && (2..=6).contains(&n) && (last >= 4 || pairs) && !looks_like_date(g)
    };
    if ok {
        let start = if plus { g[0].start - 1 } else { g[0].start };
        spans.push(Span { start, end: g[n - 1].end, kind: Kind::Phone });
    }
}

/// YYYY-MM-DD anywhere in the groups.
fn looks_like_date(g: &[Group]) -> bool {
    g.windows(3)
        .any(|w| w[0].digits == 4 && w[1].sep == b'-' && w[1].digits <= 2 && w[2].sep == b'-' && w[2].digits <= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "[X]";

    fn r(text: &str) -> String {
        redact(text, Patterns::ALL, M).unwrap_or_else(|| text.to_owned())
    }

    fn kinds(text: &str) -> Vec<(Kind, &str)> {
        find(text, Patterns::ALL).into_iter().map(|s| (s.kind, &text[s.start..s.end])).collect()
    }

    #[test]
    fn luhn_check() {
        for good in ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117", "79927398713", "0"]
        {
            assert!(luhn(good), "{good}");
        }
        for bad in ["4111111111111112", "1234567812345678", "79927398710", "", "4111 1111"] {
            assert!(!luhn(bad), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(r("mail john.doe+tag@example.co.uk now"), "mail [X] now");
        assert_eq!(r("<a@b.io>, (x_y-z@sub.domain.org)."), "<[X]>, ([X]).");
        assert_eq!(r("Reach me at JOHN@EXAMPLE.COM."), "Reach me at [X].");
        assert_eq!(kinds("x a@b.com y c@d.net"), vec![(Kind::Email, "a@b.com"), (Kind::Email, "c@d.net")]);
        // Not emails.
        for text in [
            "user@localhost",
            "a@b",
            "@example.com",
            "x@.com",
            "x@-a.com",
            "x@a.c",
            "x@a.123",
            "rate is 5 @ 3.50",
            "@@",
            "foo.@bar.com",
        ] {
            assert_eq!(r(text), text, "{text}");
        }
        // A leading dot is not part of the local part; a trailing dot is not part of the domain.
        assert_eq!(r("...john@example.com..."), "...[X]...");
        // Non-ASCII letters stop the local part.
        assert_eq!(r("é john@example.com"), "é [X]");
        // Too long for a local part.
        let long = format!("{}@example.com", "a".repeat(65));
        assert_eq!(r(&long), long);
    }

    #[test]
    fn cards() {
        assert_eq!(r("card 4111 1111 1111 1111 ok"), "card [X] ok");
        assert_eq!(r("card 4111-1111-1111-1111."), "card [X].");
        assert_eq!(r("4111111111111111"), "[X]");
        assert_eq!(r("amex 3782 822463 10005"), "amex [X]");
        assert_eq!(r("mc:5555555555554444;"), "mc:[X];");
        assert_eq!(kinds("4111 1111 1111 1111"), vec![(Kind::Card, "4111 1111 1111 1111")]);
        // A trailing number after the card is not swallowed.
        assert_eq!(r("4111 1111 1111 1111 2 times"), "[X] 2 times");
    }

    #[test]
    fn random_digit_runs_are_not_cards() {
        for text in [
            "order 1234567812345678 shipped", // 16 digits, Luhn fails
            "1234 5678 1234 5678",            // grouped, Luhn fails
            "id 41111111111111111111111",     // 23 digits: too long
            "x4111111111111111",              // glued to a word
            "4111111111111111abc",
            "1 2 3 4 5 6 7 8 9 1 2 3 0", // single digits
            "ts 1700000000123",          // 13-digit timestamp, Luhn fails
        ] {
            assert_eq!(r(text), text, "{text}");
        }
    }

    #[test]
    fn phones() {
        for (text, want) in [
            ("call 555-123-4567 now", "call [X] now"),
            ("call (555) 123-4567", "call [X]"),
            ("call (555)123-4567", "call [X]"),
            ("call +1 (555) 123-4567", "call [X]"),
            ("call +1-555-123-4567.", "call [X]."),
            ("call 1-800-555-1234", "call [X]"),
            ("call 555.123.4567", "call [X]"),
            ("uk +44 20 7946 0958", "uk [X]"),
            ("e164 +14155552671!", "e164 [X]!"),
            ("de 030 12345678", "de [X]"),
            ("fr 06 12 34 56 78", "fr [X]"),
        ] {
            assert_eq!(r(text), want, "{text}");
        }
        assert_eq!(kinds("+1 (555) 123-4567"), vec![(Kind::Phone, "+1 (555) 123-4567")]);
    }

    #[test]
    fn not_phones() {
        for text in [
            "id 5551234567",         // plain run, no '+'
            "on 2024-01-15 12:30",   // date and time
            "2024-01-15 2024-02-20", // two dates
            "pay 1 000 000 000 now", // thousands
            "ip 192.168.100.100",    // IP address
            "version 1.2.3.4567",
            "call 555-1234", // 7 digits, no area code
            "pages 10-20",
            "abc555-123-4567", // glued to a word
            "555-123-4567xyz",
            "+123",
        ] {
            assert_eq!(r(text), text, "{text}");
        }
    }

    #[test]
    fn mixed_and_disabled_patterns() {
        let text = "a@b.com, 4111 1111 1111 1111, 555-123-4567";
        assert_eq!(r(text), "[X], [X], [X]");
        let only_cards = Patterns { emails: false, phones: false, cards: true };
        assert_eq!(redact(text, only_cards, M).unwrap(), "a@b.com, [X], 555-123-4567");
        let only_emails = Patterns { emails: true, phones: false, cards: false };
        assert_eq!(redact(text, only_emails, M).unwrap(), "[X], 4111 1111 1111 1111, 555-123-4567");
        let none = Patterns { emails: false, phones: false, cards: false };
        assert_eq!(redact(text, none, M), None);
        // A card and a phone in one run of numbers.
        assert_eq!(r("4111111111111111 555-123-4567"), "[X] [X]");
        // Digits inside an email are the email's.
        assert_eq!(kinds("x 5551234567890@example.com"), vec![(Kind::Email, "5551234567890@example.com")]);
    }

    #[test]
    fn unicode_text_is_safe() {
        assert_eq!(r("🙂 émail: zoë@example.com — 📞 +44 20 7946 0958 ✓"), "🙂 émail: [X] — 📞 [X] ✓");
        assert_eq!(r("пишите: иван@example.ru"), "пишите: [X]");
        // CJK stops the local part (no space is needed before an address).
        assert_eq!(r("連絡先はtest@example.jpです"), "連絡先は[X]です");
        assert_eq!(r("日本語 test@example.jp 日本語"), "日本語 [X] 日本語");
        assert_eq!(r(""), "");
    }

    #[test]
    fn hold_back_points() {
        let p = Patterns::ALL;
        fn cut(t: &str) -> &str {
            &t[hold_from(t, Patterns::ALL)..]
        }
        assert_eq!(cut("hello world"), "world");
        assert_eq!(cut("hello world "), "");
        assert_eq!(cut("hello world!"), "");
        assert_eq!(cut("my card is 4111 1111"), "4111 1111");
        assert_eq!(cut("call (555) "), "(555) ");
        assert_eq!(cut("call +"), "+");
        assert_eq!(cut("mail john.doe@exa"), "john.doe@exa");
        assert_eq!(cut("done."), "done.");
        assert_eq!(cut("日本語"), "");
        assert_eq!(cut("hi zoë"), "zoë");
        assert_eq!(cut("x éx555-12 "), "éx555-12 ");
        // An email run that ends a number run: the whole number is held with it.
        assert_eq!(cut("ok +44 20 7946 0958.3z"), "+44 20 7946 0958.3z");
        // Emails off: words are not held, numbers are.
        let numbers = Patterns { emails: false, phones: true, cards: true };
        assert_eq!(&"hello world "[hold_from("hello world ", numbers)..], "");
        assert_eq!(&"pin 1234"[hold_from("pin 1234", numbers)..], "1234");
        // Bounded: a long run is held back only for its last HOLD_MAX bytes, cut at a word start.
        // A word longer than that can't be (part of) an email: it is sent whole.
        assert_eq!(hold_from(&"x".repeat(1000), p), 1000);
        let dotted = "ab.".repeat(300) + "cd";
        let held = dotted.len() - hold_from(&dotted, p);
        assert!(held <= EMAIL_MAX && held > 300, "{held}");
        assert!(dotted[hold_from(&dotted, p)..].starts_with("ab") || dotted[hold_from(&dotted, p)..].starts_with('.'));
        let digits = "1 ".repeat(400);
        assert!(digits.len() - hold_from(&digits, numbers) <= HOLD_MAX);
        let accents = "é".repeat(400);
        assert_eq!(hold_from(&accents, p), accents.len());
    }

    #[test]
    fn prefilter() {
        let p = Patterns::ALL;
        assert!(!might_match(br#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi there, 2 + 2?"}]}"#, p));
        assert!(might_match(br#"{"content":"a@b.com"}"#, p));
        assert!(might_match(br#"{"content":"555-123-4567"}"#, p));
        assert!(might_match(br#"{"content":"\u0040"}"#, p));
        assert!(might_match(br#"{"content":"call\n555-123-4567"}"#, p));
        assert!(!might_match(br#"{"content":"a@b.com"}"#, Patterns { emails: false, phones: true, cards: true }));
    }
}
