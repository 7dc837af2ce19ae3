//! Normalised views of a text, and the offset maps that lead every match back to the
//! caller's original bytes.
//!
//! Detectors never run on the raw text: an attacker can hide a key behind full-width
//! digits, a zero-width space or Cyrillic look-alikes. They run on the NFKC view (invisible
//! characters removed, a few confusables folded) or on the "words" view (lower case, every
//! run of punctuation and spaces collapsed to one separator). Each view carries an
//! [`OffsetMap`] so a finding's span can be translated back and redaction edits exactly
//! the characters the caller sent.

use crate::finding::Span;
use crate::rule::Rule;
use std::borrow::Cow;
use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::{IsNormalized, UnicodeNormalization};

/// A run of the output that came from a run of the input. `linear` runs map byte for
/// byte (ASCII copied as is); other runs map as a whole (a normalised cluster).
#[derive(Clone, Copy, Debug)]
struct Seg {
    out: usize,
    out_len: usize,
    inp: usize,
    inp_len: usize,
    linear: bool,
}

/// Maps byte offsets of a derived text back to byte offsets of its source.
#[derive(Clone, Debug, Default)]
pub(crate) struct OffsetMap {
    segs: Vec<Seg>,
    out_len: usize,
    inp_len: usize,
    identity: bool,
}

impl OffsetMap {
    pub(crate) fn identity(len: usize) -> Self {
        Self {
            segs: Vec::new(),
            out_len: len,
            inp_len: len,
            identity: true,
        }
    }

    fn push(&mut self, out_len: usize, inp_len: usize, linear: bool) {
        debug_assert!(!linear || out_len == inp_len);
        if linear
            && let Some(last) = self.segs.last_mut()
            && last.linear
            && last.out + last.out_len == self.out_len
            && last.inp + last.inp_len == self.inp_len
        {
            last.out_len += out_len;
            last.inp_len += inp_len;
        } else {
            self.segs.push(Seg {
                out: self.out_len,
                out_len,
                inp: self.inp_len,
                inp_len,
                linear,
            });
        }
        self.out_len += out_len;
        self.inp_len += inp_len;
    }

    /// Translate `[start, end)` of the derived text (on its char boundaries, non-empty)
    /// into the smallest source range that produced it.
    pub(crate) fn map(&self, start: usize, end: usize) -> Span {
        if self.identity {
            return Span::new(start, end);
        }
        debug_assert!(start < end && end <= self.out_len);
        let i = self.segs.partition_point(|s| s.out + s.out_len <= start);
        let s = self.segs[i];
        let from = if s.linear {
            s.inp + (start - s.out)
        } else {
            s.inp
        };
        let j = self.segs.partition_point(|s| s.out + s.out_len < end);
        let e = self.segs[j];
        let to = if e.linear {
            e.inp + (end - e.out)
        } else {
            e.inp + e.inp_len
        };
        Span::new(from, to)
    }
}

/// A run of invisible characters found while normalising.
#[derive(Clone, Debug)]
pub(crate) struct InvisibleRun {
    pub rule: Rule,
    pub span: Span,
    pub count: usize,
    pub first: char,
    /// ASCII smuggled in Unicode tag characters (U+E0020..U+E007E), decoded.
    pub hidden: String,
}

/// The NFKC view of a text.
pub(crate) struct Normalised<'a> {
    pub text: Cow<'a, str>,
    pub map: OffsetMap,
    pub invisible: Vec<InvisibleRun>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Invisible {
    /// Zero-width and formatting characters that render as nothing.
    ZeroWidth,
    /// Joiners, which are legitimate inside emoji and some scripts.
    Joiner,
    /// Directional marks: legitimate in right-to-left text, removed but not reported.
    Mark,
    /// Embeddings, overrides and isolates: can reorder what a reviewer sees.
    BidiControl,
    /// Tag characters and supplementary variation selectors: can carry a hidden payload.
    Tag,
}

fn invisible_kind(c: char) -> Option<Invisible> {
    match c {
        '\u{200B}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}' => {
            Some(Invisible::ZeroWidth)
        }
        '\u{200C}' | '\u{200D}' => Some(Invisible::Joiner),
        '\u{200E}' | '\u{200F}' | '\u{061C}' => Some(Invisible::Mark),
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => Some(Invisible::BidiControl),
        '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}' => Some(Invisible::Tag),
        _ => None,
    }
}

/// Latin look-alikes from Cyrillic and Greek that NFKC leaves alone. Folding them lets
/// `іgnore previous instructions` (Cyrillic і) match; spans still point at the original.
fn fold_confusable(c: char) -> char {
    match c {
        'а' | 'α' => 'a',
        'е' | 'ε' => 'e',
        'о' | 'ο' => 'o',
        'р' | 'ρ' => 'p',
        'с' => 'c',
        'у' => 'y',
        'х' => 'x',
        'і' | 'ι' => 'i',
        'ј' => 'j',
        'ѕ' => 's',
        'ԁ' => 'd',
        'һ' => 'h',
        'ν' => 'v',
        'А' | 'Α' => 'A',
        'В' | 'Β' => 'B',
        'Е' | 'Ε' => 'E',
        'К' | 'Κ' => 'K',
        'М' | 'Μ' => 'M',
        'Н' | 'Η' => 'H',
        'О' | 'Ο' => 'O',
        'Р' | 'Ρ' => 'P',
        'С' => 'C',
        'Т' | 'Τ' => 'T',
        'Х' | 'Χ' => 'X',
        'У' | 'Υ' => 'Y',
        'І' | 'Ι' => 'I',
        'Ј' => 'J',
        'Ѕ' => 'S',
        'Ζ' => 'Z',
        'Ν' => 'N',
        _ => c,
    }
}

fn char_at(text: &str, i: usize) -> char {
    text[i..].chars().next().expect("index inside text")
}

fn is_non_starter(c: char) -> bool {
    !c.is_ascii() && canonical_combining_class(c) != 0
}

/// The position of the first non-ASCII byte in `b`, eight bytes at a time.
fn find_non_ascii(b: &[u8]) -> Option<usize> {
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes")) & HIGHS;
        if x != 0 {
            // Little-endian: the lowest set bit belongs to the first such byte.
            return Some(at + x.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|b| !b.is_ascii())
        .map(|p| at + p)
}

/// Build the NFKC view. Normalisation is applied per cluster (a starter and the combining
/// marks after it), which is what lets every output byte be traced to its input cluster.
pub(crate) fn normalise(text: &str) -> Normalised<'_> {
    if text.is_ascii() {
        return Normalised {
            text: Cow::Borrowed(text),
            map: OffsetMap::identity(text.len()),
            invisible: Vec::new(),
        };
    }
    let bytes = text.as_bytes();
    let len = text.len();
    let mut out = String::with_capacity(len);
    let mut map = OffsetMap::default();
    let mut hidden: Vec<(Invisible, usize, char)> = Vec::new();
    let mut p = 0;
    while p < len {
        let q = p + find_non_ascii(&bytes[p..]).unwrap_or(len - p);
        // An ASCII letter followed by a combining mark composes with it, so it belongs to
        // the next cluster rather than to the byte-for-byte run.
        let run_end = if q < len && q > p && is_non_starter(char_at(text, q)) {
            q - 1
        } else {
            q
        };
        if run_end > p {
            out.push_str(&text[p..run_end]);
            map.push(run_end - p, run_end - p, true);
        }
        if run_end >= len {
            break;
        }
        let c = char_at(text, run_end);
        if let Some(kind) = invisible_kind(c) {
            hidden.push((kind, run_end, c));
            map.push(0, c.len_utf8(), false);
            p = run_end + c.len_utf8();
            continue;
        }
        let mut end = run_end + c.len_utf8();
        while end < len {
            let n = char_at(text, end);
            if is_non_starter(n) {
                end += n.len_utf8();
            } else {
                break;
            }
        }
        let before = out.len();
        if end == run_end + c.len_utf8()
            && unicode_normalization::is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes
        {
            // A lone character already in NFKC (most accented letters, dashes, CJK):
            // its normal form is itself.
            out.push(fold_confusable(c));
        } else {
            out.extend(text[run_end..end].nfkc().map(fold_confusable));
        }
        map.push(out.len() - before, end - run_end, false);
        p = end;
    }
    let invisible = group_invisible(text, &hidden);
    Normalised {
        text: Cow::Owned(out),
        map,
        invisible,
    }
}

/// Group adjacent invisible characters of one kind into runs and keep the ones worth
/// reporting.
fn group_invisible(text: &str, chars: &[(Invisible, usize, char)]) -> Vec<InvisibleRun> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (kind, start, first) = chars[i];
        let mut end = start + first.len_utf8();
        let mut j = i + 1;
        while j < chars.len() && chars[j].0 == kind && chars[j].1 == end {
            end += chars[j].2.len_utf8();
            j += 1;
        }
        let count = j - i;
        let group = &chars[i..j];
        i = j;
        let rule = match kind {
            Invisible::Mark => continue,
            // A byte-order mark at the very start is an encoding artefact, not an attack.
            Invisible::ZeroWidth if start == 0 && count == 1 && first == '\u{FEFF}' => continue,
            Invisible::ZeroWidth => Rule::ObfuscationZeroWidth,
            Invisible::Joiner => {
                // Joiners between non-ASCII characters build emoji and shape Indic and
                // Arabic scripts; next to ASCII they only serve to split words.
                let prev = text[..start].chars().next_back();
                let next = text[end..].chars().next();
                let near_ascii = prev.is_some_and(|c| c.is_ascii_alphanumeric())
                    || next.is_some_and(|c| c.is_ascii_alphanumeric());
                if !near_ascii {
                    continue;
                }
                Rule::ObfuscationZeroWidth
            }
            Invisible::BidiControl => Rule::ObfuscationBidiOverride,
            Invisible::Tag => Rule::ObfuscationTagCharacters,
        };
        let hidden = if rule == Rule::ObfuscationTagCharacters {
            group
                .iter()
                .filter_map(|&(_, _, c)| {
                    let cp = c as u32;
                    (0xE0020..=0xE007E)
                        .contains(&cp)
                        .then(|| char::from((cp - 0xE0000) as u8))
                })
                .collect()
        } else {
            String::new()
        };
        runs.push(InvisibleRun {
            rule,
            span: Span::new(start, end),
            count,
            first,
            hidden,
        });
    }
    runs
}

/// The "words" view of a normalised text: letters and digits lower-cased, every run of
/// other characters collapsed to `" "`, or to `" . "` when it ends a clause, so phrase
/// rules match whatever spacing, punctuation or case an author used.
pub(crate) fn words(norm: &str) -> (String, OffsetMap) {
    let bytes = norm.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(norm.len() + 8);
    let mut map = OffsetMap::default();
    let n = bytes.len();
    let mut i = 0;
    while i < n {
        // The common case, copied byte for byte: ASCII letters and digits, and single
        // separators between them that do not end a clause.
        let start = i;
        while i < n {
            let b = bytes[i];
            let copied = b.is_ascii_alphanumeric()
                || (b.is_ascii()
                    && !matches!(b, b'.' | b'!' | b'?' | b';' | b':')
                    && i > start
                    && bytes[i - 1].is_ascii_alphanumeric()
                    && i + 1 < n
                    && bytes[i + 1].is_ascii_alphanumeric());
            if !copied {
                break;
            }
            i += 1;
        }
        if i > start {
            out.extend(bytes[start..i].iter().map(|&b| {
                if b.is_ascii_alphanumeric() {
                    b.to_ascii_lowercase()
                } else {
                    b' '
                }
            }));
            map.push(i - start, i - start, true);
            continue;
        }
        if !bytes[i].is_ascii() {
            let c = char_at(norm, i);
            if c.is_alphanumeric() {
                let before = out.len();
                let mut buf = [0u8; 4];
                for l in c.to_lowercase() {
                    out.extend_from_slice(l.encode_utf8(&mut buf).as_bytes());
                }
                map.push(out.len() - before, c.len_utf8(), false);
                i += c.len_utf8();
                continue;
            }
        }
        let start = i;
        let mut clause_end = false;
        while i < bytes.len() {
            let b = bytes[i];
            let (alnum, width, c) = if b.is_ascii() {
                (b.is_ascii_alphanumeric(), 1, char::from(b))
            } else {
                let c = char_at(norm, i);
                (c.is_alphanumeric(), c.len_utf8(), c)
            };
            if alnum {
                break;
            }
            clause_end |= matches!(c, '.' | '!' | '?' | ';' | ':');
            i += width;
        }
        let sep: &[u8] = if clause_end { b" . " } else { b" " };
        out.extend_from_slice(sep);
        // A one-byte separator written as one space maps byte for byte; marking it linear
        // lets it merge with the words around it, so the map stays a handful of segments.
        map.push(sep.len(), i - start, sep.len() == 1 && i - start == 1);
    }
    let out = String::from_utf8(out).expect("ASCII and whole UTF-8 characters only");
    (out, map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_is_borrowed_and_maps_to_itself() {
        let n = normalise("plain text");
        assert!(matches!(n.text, Cow::Borrowed(_)));
        assert_eq!(n.map.map(2, 5), Span::new(2, 5));
    }

    #[test]
    fn fullwidth_and_invisible_characters_map_back() {
        // Full-width "AK" then a zero-width space then "IA".
        let text = "x ＡＫ\u{200B}IA y";
        let n = normalise(text);
        assert_eq!(n.text, "x AKIA y");
        let at = n.text.find("AKIA").unwrap();
        let span = n.map.map(at, at + 4);
        assert_eq!(&text[span.start..span.end], "ＡＫ\u{200B}IA");
        assert_eq!(n.invisible.len(), 1);
        assert_eq!(n.invisible[0].rule, Rule::ObfuscationZeroWidth);
    }

    #[test]
    fn find_non_ascii_finds_the_first_one() {
        let text = "plain ascii text, then é and more";
        for start in 0..text.len() {
            let b = &text.as_bytes()[start..];
            assert_eq!(find_non_ascii(b), b.iter().position(|c| !c.is_ascii()));
        }
        assert_eq!(find_non_ascii(b"only ascii here, nothing else"), None);
    }

    #[test]
    fn lone_characters_normalise_as_a_whole_cluster_would() {
        // Every character on its own, against the general path.
        for c in (0x80..=0x10_FFFF).filter_map(char::from_u32) {
            if invisible_kind(c).is_some() {
                continue;
            }
            let text = c.to_string();
            let expected: String = text.nfkc().map(fold_confusable).collect();
            assert_eq!(normalise(&text).text, expected, "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn combining_marks_stay_with_their_base() {
        let text = "cafe\u{301} ok";
        let n = normalise(text);
        assert_eq!(n.text, "café ok");
        let at = n.text.find("ok").unwrap();
        assert_eq!(n.map.map(at, at + 2), Span::new(text.len() - 2, text.len()));
        let e = n.text.find('é').unwrap();
        let s = n.map.map(e, e + 'é'.len_utf8());
        assert_eq!(&text[s.start..s.end], "e\u{301}");
    }

    #[test]
    fn tag_characters_are_decoded() {
        let smuggled: String = "hi"
            .chars()
            .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
            .collect();
        let text = format!("ok{smuggled}");
        let n = normalise(&text);
        assert_eq!(n.text, "ok");
        assert_eq!(n.invisible[0].rule, Rule::ObfuscationTagCharacters);
        assert_eq!(n.invisible[0].hidden, "hi");
    }

    #[test]
    fn joiners_inside_emoji_are_not_reported() {
        let n = normalise("family 👨\u{200D}👩\u{200D}👧 photo");
        assert!(n.invisible.is_empty());
        let n = normalise("ig\u{200D}nore");
        assert_eq!(n.invisible.len(), 1);
    }

    #[test]
    fn words_view_collapses_punctuation_and_case() {
        let (w, map) = words("Ignore (ALL)   previous... Instructions!");
        assert_eq!(w, "ignore all previous . instructions . ");
        let at = w.find("previous").unwrap();
        assert_eq!(map.map(at, at + 8), Span::new(15, 23));
    }
}
