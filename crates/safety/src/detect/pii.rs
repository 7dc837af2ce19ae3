//! Personal data: e-mail addresses, phone numbers (UK, E.164, North American), payment
//! cards (Luhn), IBANs (mod-97), UK National Insurance and NHS numbers, US SSNs, IP
//! addresses. Regexes find candidates; `checks` decides.

use super::{Ctx, consistent_separators, digits, next_char, prev_char, re};
use crate::checks;
use crate::rule::Rule;
use regex::Regex;
use std::net::Ipv6Addr;

pub(crate) struct PiiRules {
    email: Regex,
    phone: Regex,
    card: Regex,
    iban: Regex,
    nino: Regex,
    nhs: Regex,
    ssn: Regex,
    ipv4: Regex,
    /// `...`, which can make a window look like a dotted quad (see [`number_facts`]).
    ellipsis: memchr::memmem::Finder<'static>,
}

const B: &str = r"(?-u:\b)";

impl PiiRules {
    pub fn new() -> Self {
        let octet = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
        Self {
            email: re(&format!(
                r"{B}[A-Za-z0-9._%+-]{{1,64}}@(?:[A-Za-z0-9-]{{1,63}}\.){{1,8}}[A-Za-z]{{2,24}}{B}"
            )),
            // International (+CC ...), UK national (0...), North American ((NXX) NXX-XXXX).
            phone: re(&format!(
                r"\+[1-9][0-9 ().-]{{6,20}}[0-9]|{B}0[1-35789][0-9 -]{{8,12}}[0-9]{B}|\(0[1-35789][0-9]{{1,4}}\) ?[0-9]{{3,4}}[ -]?[0-9]{{3,4}}{B}|(?:\([2-9][0-9]{{2}}\) ?|{B}[2-9][0-9]{{2}}[-. ])[2-9][0-9]{{2}}[-. ][0-9]{{4}}{B}"
            )),
            card: re(&format!(r"{B}[0-9](?:[ -]?[0-9]){{12,18}}{B}")),
            iban: re(&format!(
                r"{B}[A-Z]{{2}}[0-9]{{2}}(?: ?[A-Z0-9]){{11,30}}{B}"
            )),
            nino: re(&format!(
                r"{B}[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{{2}} ?[0-9]{{2}} ?[0-9]{{2}} ?[A-D]{B}"
            )),
            nhs: re(&format!(r"{B}[0-9]{{3}}[ -]?[0-9]{{3}}[ -]?[0-9]{{4}}{B}")),
            ssn: re(&format!(
                r"{B}([0-9]{{3}})[- ]([0-9]{{2}})[- ]([0-9]{{4}}){B}"
            )),
            ipv4: re(&format!(r"{B}(?:{octet}\.){{3}}{octet}{B}")),
            ellipsis: memchr::memmem::Finder::new("..."),
        }
    }

    pub fn detect(&self, ctx: &mut Ctx<'_>) {
        let text = ctx.norm;
        if memchr::memchr(b'@', text.as_bytes()).is_some() {
            for m in self.email.find_iter(text) {
                let local = &m.as_str()[..m.as_str().find('@').unwrap_or(0)];
                if !local.starts_with('.') && !local.ends_with('.') && !local.contains("..") {
                    ctx.value(Rule::PiiEmail, m.start(), m.end());
                }
            }
        }
        if memchr::memchr(b':', text.as_bytes()).is_some() {
            detect_ipv6(ctx);
        }
        // The number rules only look near digits: on prose this skips most of the text,
        // and windows end at whitespace so word boundaries are judged as on the whole text.
        let ellipsis = self.ellipsis.find(text.as_bytes()).is_some();
        let mut runs = Vec::new();
        for (a, b) in digit_windows(text) {
            self.detect_numbers(ctx, a, b, ellipsis, &mut runs);
        }
    }

    fn detect_numbers(
        &self,
        ctx: &mut Ctx<'_>,
        a: usize,
        b: usize,
        ellipsis: bool,
        runs: &mut Vec<NumberRun>,
    ) {
        let text = ctx.norm;
        let window = &text[a..b];
        // Cards, NHS numbers, SSNs and phone numbers are spelt only with `[0-9 ().+-]`, so
        // each of their matches lies inside one maximal stretch of those characters (a
        // "run"), and matches in different runs never interact. Each regex is therefore
        // run only on the runs with enough digits for a match that can pass its checks,
        // from the run's start (look-behind still sees the window) to just past its end.
        // The findings, and their order, are exactly those of the regex over the window.
        // The search of a run stops once what is left of it has too few digits for a
        // match that can pass the checks (see `matches_in`).
        let shapes = number_facts(window.as_bytes(), ellipsis, runs);
        for r in runs.iter().filter(|r| r.digits >= 13) {
            for m in matches_in(&self.card, window, r, 13) {
                if consistent_separators(m.as_str()) && checks::is_card(&digits(m.as_str())) {
                    ctx.value(Rule::PiiCard, a + m.start(), a + m.end());
                }
            }
        }
        for r in runs.iter().filter(|r| r.digits >= 10) {
            for m in matches_in(&self.nhs, window, r, 10) {
                if consistent_separators(m.as_str()) && checks::is_nhs_number(&digits(m.as_str())) {
                    ctx.value(Rule::PiiNhsNumber, a + m.start(), a + m.end());
                }
            }
        }
        for r in runs.iter().filter(|r| r.digits >= 9) {
            let hay = &window[..r.hay_end];
            let mut at = r.start;
            while let Some(c) = digits_from(hay, at, 9)
                .then(|| self.ssn.captures_at(hay, at))
                .flatten()
            {
                let m = c.get(0).expect("whole match");
                let n = |i: usize| c[i].parse::<u32>().unwrap_or(0);
                if consistent_separators(m.as_str()) && checks::is_us_ssn(n(1), n(2), n(3)) {
                    ctx.value(Rule::PiiUsSsn, a + m.start(), a + m.end());
                }
                at = m.end();
            }
        }
        if shapes.letters_then_digits {
            self.detect_iban(ctx, a, window);
            if runs.iter().any(|r| r.digits >= 6) {
                self.detect_nino(ctx, a, window);
            }
        }
        // `is_phone` wants 8 to 15 digits after a `+`, otherwise 10 or 11.
        for r in runs
            .iter()
            .filter(|r| r.digits >= 10 || r.plus && r.digits >= 8)
        {
            for m in matches_in(&self.phone, window, r, 8) {
                if is_phone(text, a + m.start(), m.as_str()) {
                    ctx.value(Rule::PiiPhone, a + m.start(), a + m.end());
                }
            }
        }
        if shapes.dotted_quad {
            self.detect_ipv4(ctx, a, window);
        }
    }

    fn detect_nino(&self, ctx: &mut Ctx<'_>, a: usize, window: &str) {
        for m in self.nino.find_iter(window) {
            let compact: Vec<u8> = m.as_str().bytes().filter(|b| *b != b' ').collect();
            if checks::is_uk_nino(&compact) {
                ctx.value(Rule::PiiUkNino, a + m.start(), a + m.end());
            }
        }
    }

    fn detect_ipv4(&self, ctx: &mut Ctx<'_>, a: usize, window: &str) {
        let text = ctx.norm;
        // An address has at least four digits: once the rest of the window has fewer, no
        // further match exists.
        let mut at = 0;
        while let Some(m) = digits_from(window, at, 4)
            .then(|| self.ipv4.find_at(window, at))
            .flatten()
        {
            at = m.end();
            if !is_version(text, a + m.start(), a + m.end()) {
                ctx.value(Rule::PiiIpv4, a + m.start(), a + m.end());
            }
        }
    }

    /// The number rules the plain way, for tests: each regex over the whole window and
    /// every match checked, in the order `detect_numbers` reports them.
    #[cfg(test)]
    fn detect_numbers_reference(&self, ctx: &mut Ctx<'_>, a: usize, b: usize) {
        let text = ctx.norm;
        let window = &text[a..b];
        let checked = |re: &Regex, check: &dyn Fn(&str, usize) -> bool| -> Vec<(usize, usize)> {
            re.find_iter(window)
                .filter(|m| check(m.as_str(), a + m.start()))
                .map(|m| (a + m.start(), a + m.end()))
                .collect()
        };
        let card = checked(&self.card, &|m, _| {
            consistent_separators(m) && checks::is_card(&digits(m))
        });
        let nhs = checked(&self.nhs, &|m, _| {
            consistent_separators(m) && checks::is_nhs_number(&digits(m))
        });
        for (rule, found) in [(Rule::PiiCard, card), (Rule::PiiNhsNumber, nhs)] {
            for (start, end) in found {
                ctx.value(rule, start, end);
            }
        }
        for c in self.ssn.captures_iter(window) {
            let m = c.get(0).expect("whole match");
            let n = |i: usize| c[i].parse::<u32>().unwrap_or(0);
            if consistent_separators(m.as_str()) && checks::is_us_ssn(n(1), n(2), n(3)) {
                ctx.value(Rule::PiiUsSsn, a + m.start(), a + m.end());
            }
        }
        self.detect_iban(ctx, a, window);
        self.detect_nino(ctx, a, window);
        let phone = checked(&self.phone, &|m, start| is_phone(text, start, m));
        let ipv4 = checked(&self.ipv4, &|m, start| {
            !is_version(text, start, start + m.len())
        });
        for (rule, found) in [(Rule::PiiPhone, phone), (Rule::PiiIpv4, ipv4)] {
            for (start, end) in found {
                ctx.value(rule, start, end);
            }
        }
    }

    fn detect_iban(&self, ctx: &mut Ctx<'_>, a: usize, window: &str) {
        for m in self.iban.find_iter(window) {
            // The candidate may run on into a following upper-case word; take exactly the
            // country's length of characters where that is known.
            let chars: Vec<(usize, u8)> = m
                .as_str()
                .bytes()
                .enumerate()
                .filter(|(_, b)| *b != b' ')
                .collect();
            let take = checks::iban_expected_length(&m.as_str().as_bytes()[..2])
                .unwrap_or(chars.len())
                .min(chars.len());
            let compact: Vec<u8> = chars[..take].iter().map(|&(_, b)| b).collect();
            if checks::is_iban(&compact) {
                let end = a + m.start() + chars[take - 1].0 + 1;
                ctx.value(Rule::PiiIban, a + m.start(), end);
            }
        }
    }
}

/// A maximal stretch of `[0-9 ().+-]` holding at least 6 digits.
#[derive(Debug, PartialEq, Eq)]
struct NumberRun {
    start: usize,
    /// Just past the run and the character that ends it, so a regex searching the run
    /// judges a word boundary at its end as it would on the whole window.
    hay_end: usize,
    digits: usize,
    plus: bool,
}

/// What `number_facts` knows about each byte.
const DIGIT: u8 = 1;
/// `[0-9 ().+-]`, the characters of a number run.
const NUMBERISH: u8 = 2;
const UPPER: u8 = 4;
const BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = match c {
            b'0'..=b'9' => DIGIT | NUMBERISH,
            b' ' | b'(' | b')' | b'.' | b'+' | b'-' => NUMBERISH,
            b'A'..=b'Z' => UPPER,
            _ => 0,
        };
        b += 1;
    }
    t
};

/// The run `[start, end)` with `digits` digits, if it has enough to matter (6).
fn number_run(b: &[u8], start: usize, digits: usize, plus: bool, end: usize) -> Option<NumberRun> {
    if digits < 6 {
        return None;
    }
    // The ending character may be multi-byte: take all of it.
    let mut hay_end = (end + 1).min(b.len());
    while hay_end < b.len() && (b[hay_end] & 0xC0) == 0x80 {
        hay_end += 1;
    }
    Some(NumberRun {
        start,
        hay_end,
        digits,
        plus,
    })
}

/// The number runs and shapes of a window, the runs into `runs` (cleared first): the
/// same answers as [`number_runs`] and [`NumberShapes::of`], reading only the stretches of
/// `[0-9 ().+-]` that hold a digit (found eight bytes at a time) instead of every byte.
/// `ellipsis` may be false only if `b` holds no `...`.
///
/// Every digit lies in such a stretch, so every run with digits is read whole. The shapes
/// need nothing else. `letters_then_digits` holds at `i` only if `b[i + 1]` is an
/// upper-case letter followed by two digits or by a space and two digits, i.e. only two
/// bytes before the start of a run with digits. A stretch of `[0-9.]` with three dots
/// either holds a digit (so lies in a run read here, which starts after a character that
/// resets the count) or is all dots, holding `...`.
fn number_facts(b: &[u8], ellipsis: bool, runs: &mut Vec<NumberRun>) -> NumberShapes {
    runs.clear();
    let mut shapes = NumberShapes {
        letters_then_digits: false,
        dotted_quad: ellipsis
            && memchr::memchr_iter(b'.', b).any(|d| b.get(d + 1..d + 3) == Some(b"..")),
    };
    let mut i = 0;
    while let Some(p) = find_digit(&b[i..]) {
        // The run holding this digit: back to its start (the byte before the last run's
        // end is not in a run, so this never reaches into it), then forward to its end.
        let mut start = i + p;
        while start > 0 && BYTE_CLASS[usize::from(b[start - 1])] & NUMBERISH != 0 {
            start -= 1;
        }
        if !shapes.letters_then_digits && start >= 2 {
            shapes.letters_then_digits = letters_then_digits_at(b, start - 2);
        }
        let (mut digits, mut plus, mut dots) = (0, false, 0usize);
        let mut end = start;
        while let Some(&c) = b.get(end) {
            let class = BYTE_CLASS[usize::from(c)];
            if class & NUMBERISH == 0 {
                break;
            }
            if class & DIGIT != 0 {
                digits += 1;
            } else if c == b'.' {
                dots += 1;
                shapes.dotted_quad |= dots >= 3;
            } else {
                plus |= c == b'+';
                dots = 0;
            }
            end += 1;
        }
        runs.extend(number_run(b, start, digits, plus, end));
        i = end;
    }
    shapes
}

#[cfg(test)]
fn number_runs(b: &[u8]) -> Vec<NumberRun> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !matches!(b[i], b'0'..=b'9' | b' ' | b'(' | b')' | b'.' | b'+' | b'-') {
            i += 1;
            continue;
        }
        let start = i;
        let (mut digits, mut plus) = (0, false);
        while i < b.len() {
            match b[i] {
                b'0'..=b'9' => digits += 1,
                b'+' => plus = true,
                b' ' | b'(' | b')' | b'.' | b'-' => {}
                _ => break,
            }
            i += 1;
        }
        runs.extend(number_run(b, start, digits, plus, i));
    }
    runs
}

/// The matches of `re` that start inside run `r` of `window`, in order, as long as the
/// rest of the run holds at least `min_digits` digits. Every later match lies in that
/// rest, so with `min_digits` the fewest digits a match needs to be reported, stopping
/// early leaves out only matches that would be rejected, and saves a regex call (most of
/// the cost on short runs) per run.
fn matches_in<'h>(
    re: &'h Regex,
    window: &'h str,
    r: &NumberRun,
    min_digits: usize,
) -> impl Iterator<Item = regex::Match<'h>> + 'h {
    let hay = &window[..r.hay_end];
    let mut at = r.start;
    std::iter::from_fn(move || {
        if !digits_from(hay, at, min_digits) {
            return None;
        }
        let m = re.find_at(hay, at)?;
        at = m.end();
        Some(m)
    })
}

/// Whether the dotted quad `text[start..end]` is part of a longer dotted number, as in the
/// version `1.2.3.4.5`, rather than an address.
fn is_version(text: &str, start: usize, end: usize) -> bool {
    let (before, after) = (&text.as_bytes()[..start], &text.as_bytes()[end..]);
    let dotted_before = before.len() >= 2
        && before[before.len() - 1] == b'.'
        && before[before.len() - 2].is_ascii_digit();
    let dotted_after = after.len() >= 2 && after[0] == b'.' && after[1].is_ascii_digit();
    dotted_before || dotted_after
}

/// Whether `hay[at..]` holds at least `n` ASCII digits.
fn digits_from(hay: &str, at: usize, n: usize) -> bool {
    n == 0
        || hay.as_bytes()[at..]
            .iter()
            .filter(|b| b.is_ascii_digit())
            .nth(n - 1)
            .is_some()
}

/// Whether an IBAN or a National Insurance number can start at `b[i]`: both regexes
/// begin with `\b[A-Z][A-Z] ?[0-9]{2}` (the IBAN one without the space), and `b` is the
/// haystack they search, so its start is a word boundary.
fn letters_then_digits_at(b: &[u8], i: usize) -> bool {
    let at = |k: usize| b.get(i + k).copied().unwrap_or(0);
    let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
    let digits_from = |k: usize| at(k).is_ascii_digit() && at(k + 1).is_ascii_digit();
    boundary
        && at(0).is_ascii_uppercase()
        && at(1).is_ascii_uppercase()
        && (digits_from(2) || at(2) == b' ' && digits_from(3))
}

/// Cheap facts about a digit window that IBAN, NI number and IPv4 matches need. Each is
/// a necessary condition for its rules, so skipping a regex when it is false changes no
/// finding: it only saves running the regex.
#[derive(Debug, Default, PartialEq, Eq)]
struct NumberShapes {
    /// At a word boundary, two upper-case letters then two digits (after at most one
    /// space): how IBANs and National Insurance numbers start.
    letters_then_digits: bool,
    /// Three dots within one stretch of `[0-9.]`, as in every IPv4 address.
    dotted_quad: bool,
}

#[cfg(test)]
impl NumberShapes {
    fn of(b: &[u8]) -> Self {
        let mut shapes = Self::default();
        let mut dots = 0usize;
        for (i, &c) in b.iter().enumerate() {
            match c {
                b'0'..=b'9' => {}
                b'.' => {
                    dots += 1;
                    shapes.dotted_quad |= dots >= 3;
                }
                _ => dots = 0,
            }
            if c.is_ascii_uppercase() && !shapes.letters_then_digits {
                shapes.letters_then_digits = letters_then_digits_at(b, i);
            }
        }
        shapes
    }
}

/// IPv6 candidates grow outwards from each colon over hex digits, colons and dots (for
/// the IPv4-mapped tail), and are then parsed by the standard library.
fn detect_ipv6(ctx: &mut Ctx<'_>) {
    let text = ctx.norm;
    let b = text.as_bytes();
    let part = |c: u8| c.is_ascii_hexdigit() || c == b':' || c == b'.';
    let mut next_from = 0;
    for colon in memchr::memchr_iter(b':', b) {
        if colon < next_from {
            continue;
        }
        let mut start = colon;
        while start > 0 && part(b[start - 1]) {
            start -= 1;
        }
        let mut end = colon + 1;
        while end < b.len() && part(b[end]) {
            end += 1;
        }
        next_from = end;
        let raw = &text[start..end];
        let lead = raw.len() - raw.trim_start_matches('.').len();
        let start = start + lead;
        let mut cand = raw[lead..].trim_end_matches('.');
        while cand.ends_with(':') && !cand.ends_with("::") {
            cand = &cand[..cand.len() - 1];
        }
        let end = start + cand.len();
        let groups = cand.split(':').filter(|g| !g.is_empty()).count();
        let bounded = !prev_char(text, start).is_some_and(|c| c.is_alphanumeric())
            && !next_char(text, end).is_some_and(|c| c.is_alphanumeric());
        let has_digit = cand.bytes().any(|c| c.is_ascii_digit());
        if bounded
            && has_digit
            && groups >= 2
            && cand.matches(':').count() >= 2
            && cand.parse::<Ipv6Addr>().is_ok()
        {
            ctx.value(Rule::PiiIpv6, start, end);
        }
    }
}

/// The position of the first ASCII digit in `b`, eight bytes at a time.
fn find_digit(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        // Digits are the bytes that become 0..=9 when xored with b'0'; a byte below 10 is
        // found by the borrow test (exact about whether one exists, not which).
        let t = x ^ (u64::from(b'0') * ONES);
        if t.wrapping_sub(10 * ONES) & !t & HIGHS != 0 {
            return chunk.iter().position(u8::is_ascii_digit).map(|p| at + p);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(u8::is_ascii_digit)
        .map(|p| at + p)
}

/// Stretches of text around digits (merged when close), widened to whitespace.
fn digit_windows(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while let Some(p) = find_digit(&b[i..]) {
        let first = i + p;
        let mut last = first;
        // The window goes on while the next digit is at most 40 bytes further (stepping
        // straight over a digit that follows the last).
        loop {
            if b.get(last + 1).is_some_and(u8::is_ascii_digit) {
                last += 1;
            } else if let Some(q) = find_digit(&b[last + 1..(last + 41).min(b.len())]) {
                last += 1 + q;
            } else {
                break;
            }
        }
        let floor = out.last().map_or(0, |w| w.1);
        let mut s = first.saturating_sub(8).max(floor);
        while s > floor && !b[s - 1].is_ascii_whitespace() {
            s -= 1;
        }
        let mut e = (last + 6).min(b.len());
        while e < b.len() && !b[e].is_ascii_whitespace() {
            e += 1;
        }
        match out.last_mut() {
            Some(prev) if s <= prev.1 => prev.1 = prev.1.max(e),
            _ => out.push((s, e)),
        }
        i = e.max(last + 1);
        if i >= b.len() {
            break;
        }
    }
    out
}

/// Decide whether a phone candidate is a plausible number for its format.
fn is_phone(text: &str, start: usize, cand: &str) -> bool {
    let d = digits(cand);
    if prev_char(text, start).is_some_and(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    if cand.contains("..") || cand.contains("--") || cand.contains("  ") {
        return false;
    }
    let opens = cand.matches('(').count();
    if opens != cand.matches(')').count() || opens > 1 {
        return false;
    }
    if cand.starts_with('+') {
        // E.164: up to 15 digits including the country code.
        (8..=15).contains(&d.len())
    } else if d[0] == b'0' {
        // UK national numbers: 0 then 9 or 10 digits.
        (10..=11).contains(&d.len())
    } else {
        d.len() == 10
    }
}

#[cfg(test)]
mod tests {
    use crate::Rule;
    use crate::detect::test_support::{has, lacks};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn number_facts_are_number_runs_and_shapes(
            text in "[0-9 ().+.-]{0,30}|[0-9A-Z .+é-]{0,60}|[0-9AB.x ]{0,40}|[0-9A-Da-c .()+_-]{0,80}",
        ) {
            let b = text.as_bytes();
            let mut runs = vec![super::NumberRun { start: 1, hay_end: 2, digits: 7, plus: true }];
            let exact_ellipsis = memchr::memmem::find(b, b"...").is_some();
            for ellipsis in [true, exact_ellipsis] {
                let shapes = super::number_facts(b, ellipsis, &mut runs);
                prop_assert_eq!(&runs, &super::number_runs(b));
                prop_assert_eq!(shapes, super::NumberShapes::of(b));
            }
        }

        #[test]
        #[test]
        fn iban_and_nino_matches_need_letters_then_digits(
            text in "[A-Z0-9 a_é]{0,40}|(x|_|é| )?[A-D][A-Z] ?[0-9]{2} ?[0-9A-Z ]{0,30}",
        ) {
            static RULES: std::sync::LazyLock<super::PiiRules> =
                std::sync::LazyLock::new(super::PiiRules::new);
            let b = text.as_bytes();
            if RULES.iban.is_match(&text) || RULES.nino.is_match(&text) {
                let shapes = super::number_facts(b, true, &mut Vec::new());
                prop_assert!(shapes.letters_then_digits, "{:?}", text);
            }
        }

        /// The number rules find what each regex finds over the whole window, checked:
        /// searching only the runs with enough digits, and skipping the rules whose
        /// shapes are absent, loses nothing.
        #[test]
        fn number_rules_find_what_the_plain_regexes_find(
            text in "([0-9]{1,5}|[ ().+-]|[A-Z]{1,2}|[a-z]{1,3}|\\.\\.\\.|\\n|é){0,40}",
            pieces in proptest::collection::vec(proptest::sample::select(vec![
                "+44 20 7946 0958", "943 476 5919", "536-22-1234", "4111 1111 1111 1111",
                "GB82 WEST 1234 5698 7654 32", "AB 12 34 56 C", "192.168.10.1", "1.2.3.4.5",
                "(415) 555-2671", "07700 900123", "+14155552671", "DE89370400440532013000",
            ]), 0..4),
        ) {
            static RULES: std::sync::LazyLock<super::PiiRules> =
                std::sync::LazyLock::new(super::PiiRules::new);
            let text = pieces.iter().fold(text, |t, p| format!("{t} {p}{t}"));
            let norm = crate::view::normalise(&text);
            let lower = norm.text.to_ascii_lowercase();
            let empty = crate::view::OffsetMap::default();
            let ctx = || crate::detect::Ctx {
                norm: &norm.text,
                lower: lower.as_bytes(),
                norm_map: &norm.map,
                words: "",
                words_map: &empty,
                out: Vec::new(),
            };
            let windows = super::digit_windows(&norm.text);
            for (a, b) in windows.into_iter().chain([(0, norm.text.len())]) {
                let (mut fast, mut plain) = (ctx(), ctx());
                let ellipsis = memchr::memmem::find(norm.text.as_bytes(), b"...").is_some();
                RULES.detect_numbers(&mut fast, a, b, ellipsis, &mut Vec::new());
                RULES.detect_numbers_reference(&mut plain, a, b);
                prop_assert_eq!(fast.out, plain.out, "{:?} in {:?}", &norm.text[a..b], text);
            }
        }

        #[test]
        fn find_digit_finds_the_first_digit(b in proptest::collection::vec(any::<u8>(), 0..40), digit in 0u8..10, at in 0usize..40) {
            let mut b = b;
            for x in &mut b {
                if x.is_ascii_digit() {
                    *x = b'x';
                }
            }
            prop_assert_eq!(super::find_digit(&b), None);
            if at < b.len() {
                b[at] = b'0' + digit;
                prop_assert_eq!(super::find_digit(&b), Some(at));
            }
        }
    }

    #[test]
    fn emails() {
        has(
            "mail jane.doe+tag@example.co.uk today",
            Rule::PiiEmail,
            "jane.doe+tag@example.co.uk",
        );
        lacks("ping me @ the office", Rule::PiiEmail);
        lacks("user@localhost has no TLD", Rule::PiiEmail);
    }

    #[test]
    fn phones() {
        has(
            "Call +44 20 7946 0958 now",
            Rule::PiiPhone,
            "+44 20 7946 0958",
        );
        has("E.164 +14155552671.", Rule::PiiPhone, "+14155552671");
        has("Office: 020 7946 0958", Rule::PiiPhone, "020 7946 0958");
        has("mobile 07700 900123", Rule::PiiPhone, "07700 900123");
        has("US (415) 555-2671", Rule::PiiPhone, "(415) 555-2671");
        lacks("released on 2024-01-15 as version 3", Rule::PiiPhone);
        lacks("+12 is not a number", Rule::PiiPhone);
    }

    #[test]
    fn cards() {
        has(
            "card 4111 1111 1111 1111 exp",
            Rule::PiiCard,
            "4111 1111 1111 1111",
        );
        has("amex 3782-822463-10005", Rule::PiiCard, "3782-822463-10005");
        lacks("card 4111 1111 1111 1112 exp", Rule::PiiCard);
        lacks("order 1234567812345670", Rule::PiiCard);
    }

    #[test]
    fn ibans() {
        has(
            "pay GB82 WEST 1234 5698 7654 32 ASAP",
            Rule::PiiIban,
            "GB82 WEST 1234 5698 7654 32",
        );
        has(
            "DE89370400440532013000",
            Rule::PiiIban,
            "DE89370400440532013000",
        );
        lacks("pay GB82 WEST 1234 5698 7654 33", Rule::PiiIban);
    }

    #[test]
    fn ninos() {
        has("NI number AB 12 34 56 C.", Rule::PiiUkNino, "AB 12 34 56 C");
        lacks("sample QQ123456C", Rule::PiiUkNino);
        lacks("prefix GB123456A", Rule::PiiUkNino);
    }

    #[test]
    fn nhs_numbers() {
        has("NHS no 943 476 5919", Rule::PiiNhsNumber, "943 476 5919");
        lacks("NHS no 943 476 5918", Rule::PiiNhsNumber);
    }

    #[test]
    fn ssns() {
        has("SSN 536-22-1234", Rule::PiiUsSsn, "536-22-1234");
        lacks("SSN 666-22-1234", Rule::PiiUsSsn);
        lacks("SSN 536-00-1234", Rule::PiiUsSsn);
        lacks("SSN 912-22-1234", Rule::PiiUsSsn);
    }

    #[test]
    fn ip_addresses() {
        has("host 192.168.10.1 down", Rule::PiiIpv4, "192.168.10.1");
        lacks("version 1.2.3.4.5", Rule::PiiIpv4);
        lacks("999.1.1.1", Rule::PiiIpv4);
        has(
            "addr 2001:db8::8a2e:370:7334 up",
            Rule::PiiIpv6,
            "2001:db8::8a2e:370:7334",
        );
        has("mapped ::ffff:192.0.2.1", Rule::PiiIpv6, "::ffff:192.0.2.1");
        lacks("at 10:30:45 we met", Rule::PiiIpv6);
        lacks("std::vector and a::b", Rule::PiiIpv6);
        lacks("mac 00:1A:2B:3C:4D:5E", Rule::PiiIpv6);
    }

    #[test]
    fn fullwidth_digits_are_normalised() {
        let text = "card ４１１１ １１１１ １１１１ １１１１ end";
        has(text, Rule::PiiCard, "４１１１ １１１１ １１１１ １１１１");
    }
}
